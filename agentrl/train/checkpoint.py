"""Checkpoints written atomically: everything goes to a temp dir that is renamed into place when complete.

A checkpoint holds the model (safetensors) and tokenizer, the optimizer, every RNG the run draws from, and
the trainer state, so that a resumed run continues exactly as an unbroken one would.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

PREFIX = "step-"


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "sampler": generator.get_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["sampler"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def save_checkpoint(
    ckpt_dir: Path, step: int, model, tokenizer, optimizer, generator: torch.Generator, state: dict, keep: int
) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()  # one bar per checkpoint would drown the training progress bar
    final = ckpt_dir / f"{PREFIX}{step:06d}"
    tmp = ckpt_dir / f".tmp-{PREFIX}{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    torch.save(
        {"optimizer": optimizer.state_dict() if optimizer else None, "rng": rng_state(generator)},
        tmp / "trainer.pt",
    )
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp dirs of an interrupted save are ignored)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file())


def load_trainer_state(path: Path) -> tuple[dict, dict]:
    """(state.json contents, {optimizer, rng}) of a checkpoint."""
    state = json.loads((path / "state.json").read_text())
    extra = torch.load(path / "trainer.pt", weights_only=False)
    return state, extra
