"""agentrl: reinforcement-learning post-training of tool-using LLM agents."""

from agentrl.errors import AgentRLError

__version__ = "0.1.0"
__all__ = ["AgentRLError", "__version__"]
