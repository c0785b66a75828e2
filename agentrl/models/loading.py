"""Load the policy: a local `transformers` directory, or the tiny default built from the task's text."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from agentrl.config import ModelConfig
from agentrl.errors import AgentRLError
from agentrl.models import lora
from agentrl.models.tiny import build_tiny_model, train_tokenizer

END_OF_TURN_NAMES = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|end_of_turn|>")
"""Tokens that end a turn in common chat templates: generation stops at them where the vocabulary has them."""


def load_pretrained(path: str | Path, device: str = "cpu", dtype: str = "float32", trainable_adapter: bool = False):
    """(model, tokenizer) from a local directory; never reaches for a hub. A LoRA checkpoint (an adapter) loads
    onto its base weights, merged, or with `trainable_adapter` as a PeftModel that trains on (`--resume`)."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(path)
    if lora.is_adapter(path):
        base, _ = load_pretrained(lora.adapter_base(path), device, dtype)
        return lora.load_adapter(base, path, trainable_adapter), tokenizer
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=getattr(torch, dtype))
    return model.to(device), tokenizer


def load_tokenizer(path: str | Path):
    """The tokenizer of a local model directory, with a pad token (EOS where it has none) and a chat template."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file() and not lora.is_adapter(path):
        raise AgentRLError(f"model.path={path}: not a transformers model directory (no config.json there)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise AgentRLError(f"model.path={path}: the tokenizer has no chat template; agentrl needs one")
    return tokenizer


def load_policy(cfg: ModelConfig, texts: Iterable[str], seed: int, device: str = "cpu", dtype: str = "float32"):
    """The configured policy: `cfg.path` if set, else a fresh tiny model with a tokenizer trained on `texts`."""
    if cfg.path:
        return load_pretrained(cfg.path, device, dtype)
    tokenizer = train_tokenizer(texts, cfg.vocab_size)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_tiny_model(tokenizer, cfg)
    return model.to(device=device, dtype=getattr(torch, dtype)), tokenizer


def enable_checkpointing(model) -> None:
    """transformers' activation (gradient) checkpointing of every decoder layer, by its newer name where it has it."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def bf16_is_emulated(device: str) -> bool:
    """True on a CPU without native bfloat16 instructions (AVX512-BF16 or AMX), where bf16 math is emulated."""
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return str(device).startswith("cpu") and not native


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """Every id that ends a turn: EOS, the model's generation-config EOS ids, and the common end-of-turn tokens."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    vocab = tokenizer.get_vocab()
    ids.update(vocab[name] for name in END_OF_TURN_NAMES if name in vocab)
    return sorted(i for i in ids if i is not None)
