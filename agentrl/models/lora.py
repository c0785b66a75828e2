"""LoRA through `peft` (the `lora` extra): adapters on the policy's linear layers.

A LoRA run trains only the adapters. Its KL reference is the same model with the adapter switched off
(`AdapterOff`), not a second copy. Checkpoints hold the adapter and name their base (the run's `sft_model`), so
`load_pretrained` of a checkpoint gives the merged model (evals, engines) or, for `--resume`, the base with its
adapter still trainable.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from agentrl.config import LoraConfig
from agentrl.errors import AgentRLError

ADAPTER_CONFIG = "adapter_config.json"


def require_peft() -> None:
    if importlib.util.find_spec("peft") is None:
        raise AgentRLError("model.lora needs peft: pip install 'agentrl[lora]' (or pip install peft)")


def linear_layer_names(model) -> list[str]:
    """Names of the model's linear layers that LoRA can adapt (the output head excluded)."""
    head = model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and m is not head
        }
    )


def add_lora(model, settings: LoraConfig, base: Path | None = None):
    """`model` with fresh LoRA adapters (peft's PeftModel), only they trainable; `base` is recorded as the
    directory its checkpoints load their base weights from."""
    require_peft()
    import peft

    names = linear_layer_names(model)
    targets = settings.target_modules or names
    unknown = [t for t in targets if t not in names]
    if unknown:
        raise AgentRLError(
            f"model.lora.target_modules: {', '.join(unknown)} match no linear layer of this model; "
            f"its linear layers: {', '.join(names)}"
        )
    config = peft.LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    wrapped = peft.get_peft_model(model, config)
    if base is not None:
        wrapped.peft_config["default"].base_model_name_or_path = str(Path(base).resolve())
    return wrapped


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> Path:
    """The directory of the full weights an adapter checkpoint applies to."""
    base = json.loads((Path(path) / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base or not (Path(base) / "config.json").is_file():
        raise AgentRLError(f"{path}: a LoRA adapter whose base model {base!r} is not a model directory here")
    return Path(base)


def load_adapter(model, path: str | Path, trainable: bool):
    """`model` (the base weights) with the adapter at `path`: trainable (resume), or merged into a plain model."""
    require_peft()
    from peft import PeftModel

    wrapped = PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
    return wrapped if trainable else wrapped.merge_and_unload()


def merged_weights(model) -> dict[str, torch.Tensor]:
    """A LoRA policy's weights with its adapter merged in, under the base model's parameter names: what an engine
    that holds plain weights loads. Computed out of place (merging in place and back would make the base weights
    drift by rounding at every sync). Tied duplicates are dropped, as `safetensors.torch.save_model` does."""
    base, adapter = model.get_base_model(), model.active_adapter
    merged: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in base.state_dict().items():
        if ".lora_" in name or tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        path, marker, leaf = name.rpartition(".base_layer.")
        if marker:
            name = f"{path}.{leaf}"
            if leaf == "weight":
                tensor = tensor + base.get_submodule(path).get_delta_weight(adapter)
        merged[name] = tensor.detach().contiguous()
    return merged


def is_lora(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


class AdapterOff:
    """The KL reference of a LoRA run: the policy itself with its adapter switched off (no second copy)."""

    def __init__(self, model):
        self.model = model
        self.config = model.config

    def __call__(self, **inputs):
        with self.model.disable_adapter():
            return self.model(**inputs)

    def get_decoder(self):
        decoder = self.model.get_decoder()

        def without_adapter(**inputs):
            with self.model.disable_adapter():
                return decoder(**inputs)

        return without_adapter

    def get_output_embeddings(self):
        return self.model.get_output_embeddings()  # never adapted (`linear_layer_names` leaves the head out)
