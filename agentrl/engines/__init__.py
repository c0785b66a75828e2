"""Generation engines: `hf` (transformers, the default, CPU or one GPU) and `vllm` (GPUs)."""

from agentrl.config import EngineConfig
from agentrl.engines.base import Engine, Generation, SamplingParams, StopRule
from agentrl.engines.hf import HFEngine
from agentrl.models.loading import stop_token_ids

__all__ = ["Engine", "Generation", "HFEngine", "SamplingParams", "StopRule", "build_engine"]


def build_engine(cfg: EngineConfig, model, tokenizer, max_length: int, seed: int = 0) -> Engine:
    """The configured engine over the trainer's `model`. vLLM is imported only when chosen.

    A `vllm` engine holds a copy of the weights: call its `sync_weights(model)` after each optimizer update,
    and `close()` it at the end. The `hf` engine reads `model` itself and needs neither.
    """
    eos = stop_token_ids(tokenizer, model)
    if cfg.backend == "vllm":
        from agentrl.engines.vllm import VLLMEngine

        return VLLMEngine(
            model,
            eos,
            max_length,
            seed,
            dtype=cfg.dtype,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            kv_cache_gb=cfg.kv_cache_gb,
            enforce_eager=cfg.enforce_eager,
        )
    return HFEngine(model, eos, tokenizer.pad_token_id, max_length, seed)
