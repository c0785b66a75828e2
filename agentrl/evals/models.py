"""Which weights a model reference names: a transformers directory, a run (its newest checkpoint), or a
checkpoint inside a run; each with a readable label and a fingerprint that changes when the weights do."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from agentrl.errors import AgentRLError
from agentrl.evals.spec import ModelRef
from agentrl.train.checkpoint import PREFIX, list_checkpoints
from agentrl.train.rundir import RunDir

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


@dataclass(frozen=True)
class ResolvedModel:
    label: str
    path: Path
    """The transformers directory loaded."""
    run: Path | None = None
    """The run directory this model comes from (its metrics.jsonl gives the training curves)."""
    step: int | None = None
    """RL step of a run's checkpoint (0 for the model before RL)."""

    @property
    def fingerprint(self) -> str:
        """Changes when the directory's weights change (path, sizes and modification times of weight files)."""
        files = sorted(p for p in self.path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        raw = json.dumps([str(self.path.resolve()), stats])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def describe(self) -> dict:
        run = str(self.run) if self.run else None
        return {"label": self.label, "path": str(self.path), "run": run, "step": self.step}


def _is_run(path: Path) -> bool:
    """A run directory holds the trainer's config.yaml beside its checkpoints or its model before RL."""
    return (path / "config.yaml").is_file() and ((path / "checkpoints").is_dir() or (path / "sft_model").is_dir())


def _checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix(PREFIX))


def resolve_model(ref: ModelRef) -> ResolvedModel:
    path = Path(ref.path)
    if not path.is_dir():
        raise AgentRLError(f"model {ref.path}: no such directory (give a transformers model dir or a run dir)")
    if _is_run(path) and not (path / "config.json").is_file():
        run = RunDir(path)
        checkpoints = list_checkpoints(run.checkpoints)
        if not checkpoints:
            raise AgentRLError(
                f"model {ref.path}: the run has no checkpoint yet; give {path / 'sft_model'} for the model before RL"
            )
        step = _checkpoint_step(checkpoints[-1])
        return ResolvedModel(ref.label or f"{path.name} after RL (step {step})", checkpoints[-1], path, step)
    if not (path / "config.json").is_file():
        raise AgentRLError(f"model {ref.path}: not a transformers model directory (no config.json) nor a run directory")
    if path.name == "sft_model" and _is_run(path.parent):
        return ResolvedModel(ref.label or f"{path.parent.name} before RL", path, path.parent, 0)
    if path.name.startswith(PREFIX) and path.parent.name == "checkpoints" and _is_run(path.parent.parent):
        step = _checkpoint_step(path)
        return ResolvedModel(ref.label or f"{path.parent.parent.name} step {step}", path, path.parent.parent, step)
    return ResolvedModel(ref.label or path.name, path)


def resolve_models(refs: list[ModelRef]) -> list[ResolvedModel]:
    """Resolve every reference; labels are made unique (a suffix #2, #3 ...) so tables stay readable."""
    models = [resolve_model(ref) for ref in refs]
    seen: dict[str, int] = {}
    out = []
    for model in models:
        seen[model.label] = seen.get(model.label, 0) + 1
        if seen[model.label] > 1:
            model = ResolvedModel(f"{model.label} #{seen[model.label]}", model.path, model.run, model.step)
        out.append(model)
    return out
