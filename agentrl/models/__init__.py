"""Policy models: the tiny default built locally, or any local `transformers` causal-LM directory."""

from agentrl.models.loading import load_policy
from agentrl.models.tiny import build_tiny_model, train_tokenizer

__all__ = ["build_tiny_model", "load_policy", "train_tokenizer"]
