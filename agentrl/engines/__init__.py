"""Generation engines: `hf` (transformers, the default, CPU or one GPU) and `vllm` (GPUs)."""

from agentrl.engines.base import Engine, Generation, SamplingParams, StopRule
from agentrl.engines.hf import HFEngine

__all__ = ["Engine", "Generation", "HFEngine", "SamplingParams", "StopRule"]
