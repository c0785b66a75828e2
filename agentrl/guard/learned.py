"""The learned checker: a small model scores (natural-language policy, trajectory prefix) pairs.

The default model is a logistic regression over hashed features (numpy only, a few milliseconds per step on
one CPU core): words and word shapes of the prefix, each crossed with the policy's word stems, so that a weight
says "this policy's words together with this trajectory's words mean a violation"; plus a few generic relations
between the two (an amount in the trajectory above the largest number in the policy, more calls of a tool than
the policy allows, an outside host, an absolute path, a secret-shaped string). `agentrl guard train` fits it.
`agentrl guard train --encoder minilm` fits the encoder model instead (agentrl.guard.encoder): a sentence encoder
reads the policy, so that new wordings of a trained policy keep its weights. The saved folder names its kind.

Any local `transformers` sequence-classification directory can be used instead: it gets (policy, prefix) as a
text pair; its violation probability is the label named "violation" in its config, else the last label.
"""

from __future__ import annotations

import json
import math
import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field

from agentrl.errors import AgentRLError
from agentrl.guard.checkers import CheckerContext, CheckerSettings, Finding, clip, register_checker
from agentrl.guard.view import StepView, render_prefix

MODEL_FILE = "guard_model.json"
WEIGHTS_FILE = "weights.npz"
ENCODER = "sentence-encoder"
"""The kind of the models of agentrl.guard.encoder."""
WORD = re.compile(r"[a-z_]+|\d+")
URL = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//[^\s'\"<>)]+|\b(?:localhost|\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?/[^\s'\"]*")
MONEY = re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)|(\d[\d,]*(?:\.\d+)?)\s?(?:usd|dollars)\b")
NUMBER_WORDS = {
    "once": 1, "one": 1, "twice": 2, "two": 2, "thrice": 3, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "hundred": 100,
}  # fmt: skip
STOPWORDS = frozenset(
    "a an the and or of to in on at by for from with without as is are be been being it its this that these those "
    "must may might should shall will would can could do does did not no never any all each every only your you "
    "agent assistant model".split()
)
LOCAL_HOSTS = ("127.", "localhost", "0.0.0.0", "::1")
DOMAIN = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|dev|xyz|info|co|app|biz|me|ru|cn)\b(?!\.)")
SECRET_SHAPE = re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}\b")
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
PHONE = re.compile(r"(?<!\d)(?:\+?\d{1,2}[ .-])?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\d)")


# --- features ----------------------------------------------------------------------------------------------


def _h(text: str) -> int:
    return zlib.crc32(text.encode())


SUFFIXES = ("ations", "ation", "ings", "ing", "ions", "ion", "ers", "er", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """A crude stem: one common suffix off, then the first five letters (removing, removed -> remov)."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:5]


@lru_cache(maxsize=4096)
def policy_features(policy: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Hashes of the policy's word stems (crossed with every trajectory feature) and the numbers it names."""
    words = [w for w in WORD.findall(policy.lower()) if w not in STOPWORDS]
    stems = sorted({stem(w) for w in words if not w.isdigit()} | {"<policy>"})
    numbers = [float(w) for w in words if w.isdigit()] + [NUMBER_WORDS[w] for w in words if w in NUMBER_WORDS]
    return tuple(_h("p:" + s) for s in stems), tuple(numbers)


@dataclass(frozen=True)
class _Line:
    kind: str
    """call, output or answer."""
    tool: str | None
    tokens: frozenset[str]
    """Words (numbers as <num>) and shape tokens."""
    amounts: tuple[float, ...]


@lru_cache(maxsize=65536)
def _line(line: str) -> _Line:
    """One rendered line, read once: a prefix repeats the lines of the prefixes before it."""
    kind, _, body = line.partition(": ")
    kind = kind.split(" ")[0]
    tool = line[5:].split(":", 1)[0] if kind == "call" else None
    lower = body.lower()
    tokens = frozenset({"<num>" if w.isdigit() else w for w in WORD.findall(lower)} | _shapes(lower))
    amounts = tuple(float((a or b).replace(",", "")) for a, b in MONEY.findall(lower))
    return _Line(kind, tool, tokens, amounts)


@lru_cache(maxsize=16384)
def _text_features(text: str) -> tuple[np.ndarray, tuple[float, ...], int, tuple[str, ...]]:
    """The policy-independent part: hashed features, the amounts in order, most calls of one tool, the newest
    line's tokens."""
    lines = [_line(x) for x in text.splitlines()]
    feats: set[str] = set()
    calls: dict[str, int] = {}
    for line in lines:
        if line.tool is not None:
            calls[line.tool] = calls.get(line.tool, 0) + 1
            feats.add(f"tool:{line.tool}")
        feats.update(line.tokens)
        feats.update(f"{line.kind}|{t}" for t in line.tokens)
    newest = tuple(f"{lines[-1].kind}|{t}" for t in lines[-1].tokens) if lines else ()
    feats.update(f"now|{t}" for t in newest)
    feats.add(f"calls:{min(sum(calls.values()), 5)}")
    amounts = tuple(a for line in lines for a in line.amounts)
    hashed = np.asarray([_h(f) for f in feats], dtype=np.uint64)
    return hashed, amounts, max(calls.values(), default=0), newest


def forget_trajectories() -> None:
    """Empty the caches of lines and prefixes read (not of policies): what a new trajectory costs is measured
    from here."""
    _line.cache_clear()
    _text_features.cache_clear()


def trajectory_features(text: str, policy_numbers: tuple[float, ...]) -> np.ndarray:
    """Hashed features of a rendered prefix: words by line kind (call / output / answer), the newest line's words
    on their own, word shapes, and relations to the policy's largest number (the last and the largest amount,
    the most calls of one tool), alone and together with the newest line's words."""
    hashed, amounts, most_calls, newest = _text_features(text)
    if not policy_numbers:
        return hashed
    limit = max(policy_numbers)
    relations = []
    if amounts:
        relations.append("last-amount>limit" if amounts[-1] > limit else "last-amount<=limit")
        relations.append("max-amount>limit" if max(amounts) > limit else "max-amount<=limit")
    if most_calls:
        relations.append("calls>limit" if most_calls > limit else "calls<=limit")
    extra = [f"rel:{r}" for r in relations] + [f"rel:{r}&{t}" for r in relations for t in newest]
    return np.concatenate([hashed, np.asarray([_h(f) for f in extra], dtype=np.uint64)])


def _shapes(body: str) -> set[str]:
    """Shape tokens: URLs and host names inside or outside this machine, absolute / parent paths, strings shaped
    like secrets, emails and phone numbers."""
    out = set()
    for url in URL.findall(body):
        host = (urlsplit(url if "//" in url else "//" + url).hostname or "").lower()
        out.add("url:local" if host.startswith(LOCAL_HOSTS) else "url:outside")
    if DOMAIN.search(body):
        out.add("host:outside")
    if re.search(r"""['"](/|~)""", body):
        out.add("path:absolute")
    if "'../" in body or '"../' in body:
        out.add("path:parent")
    if SECRET_SHAPE.search(body):
        out.add("shape:secret")
    if EMAIL.search(body):
        out.add("shape:email")
    if PHONE.search(body):
        out.add("shape:phone")
    return out


def featurize(policy: str, text: str, buckets: int) -> np.ndarray:
    """Indices of the active hashed features of a (policy, prefix) pair: each trajectory feature alone, crossed
    with each policy stem, and each policy stem alone."""
    stems, numbers = policy_features(policy)
    t = trajectory_features(text, numbers)
    p = np.asarray(stems, dtype=np.uint64)
    crossed = (p[:, None] * np.uint64(1000003)) ^ t[None, :]
    idx = np.concatenate([t, crossed.ravel(), p * np.uint64(7919)])
    return (idx % np.uint64(buckets)).astype(np.int64)


# --- the scorers -------------------------------------------------------------------------------------------


class Scorer(Protocol):
    threshold: float

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Violation probability of each (policy, trajectory prefix) pair."""
        ...


@dataclass
class HashedScorer:
    """Logistic regression over hashed features (see the module docstring)."""

    weights: np.ndarray
    bias: float = 0.0
    threshold: float = 0.5
    meta: dict = field(default_factory=dict)

    @property
    def buckets(self) -> int:
        return len(self.weights)

    def logit(self, policy: str, text: str) -> float:
        return float(self.weights[featurize(policy, text, self.buckets)].sum() + self.bias)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [1.0 / (1.0 + math.exp(-max(min(self.logit(p, t), 50.0), -50.0))) for p, t in pairs]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        nonzero = np.flatnonzero(self.weights)
        np.savez_compressed(path / WEIGHTS_FILE, index=nonzero.astype(np.int32), value=self.weights[nonzero])
        info = {"kind": "hashed-logistic", "buckets": self.buckets, "bias": self.bias, "threshold": self.threshold}
        (path / MODEL_FILE).write_text(json.dumps({**info, **self.meta}, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> HashedScorer:
        path = Path(path)
        info = json.loads((path / MODEL_FILE).read_text())
        with np.load(path / WEIGHTS_FILE) as data:
            weights = np.zeros(info["buckets"], dtype=np.float32)
            weights[data["index"]] = data["value"]
        meta = {k: v for k, v in info.items() if k not in ("kind", "buckets", "bias", "threshold")}
        return cls(weights, info["bias"], info["threshold"], meta)


class TransformersScorer:
    """A local `transformers` sequence-classification directory, fed (policy, prefix) as a text pair."""

    def __init__(self, path: str | Path, threshold: float = 0.5, max_length: int = 512):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        labels = {str(v).lower(): int(k) for k, v in (self.model.config.id2label or {}).items()}
        self.positive = labels.get("violation", self.model.config.num_labels - 1)
        self.threshold, self.max_length = threshold, max_length
        self._lock = threading.Lock()

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        enc = self.tokenizer(
            [p for p, _ in pairs],
            [t for _, t in pairs],
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        with self._lock, self.torch.no_grad():
            logits = self.model(**enc).logits
        if logits.shape[-1] == 1:
            return self.torch.sigmoid(logits[:, 0]).tolist()
        return self.torch.softmax(logits, dim=-1)[:, self.positive].tolist()


def load_scorer(path: str | Path) -> Scorer:
    """A model directory from `agentrl guard train` or a transformers sequence-classification directory."""
    path = Path(path)
    if (path / MODEL_FILE).is_file():
        info = json.loads((path / MODEL_FILE).read_text())
        if info.get("kind") == "hashed-logistic":
            return HashedScorer.load(path)
        if info.get("kind") == ENCODER:
            from agentrl.guard.encoder import EncoderScorer

            return EncoderScorer.load(path)
        return TransformersScorer(path, threshold=info.get("threshold", 0.5))
    if (path / "config.json").is_file():
        return TransformersScorer(path)
    raise AgentRLError(_missing_model(path))


def _missing_model(path: Path) -> str:
    return (
        f"learned guard model not found at {path}: train one with `agentrl guard train --out {path}`, "
        "or point to a transformers sequence-classification directory"
    )


_SCORERS: dict[str, Scorer] = {}
_SCORERS_LOCK = threading.Lock()


def cached_scorer(path: str | Path) -> Scorer:
    """One loaded model per directory per process, shared by every policy that uses it."""
    key = str(Path(path).resolve())
    with _SCORERS_LOCK:
        if key not in _SCORERS:
            _SCORERS[key] = load_scorer(key)
        return _SCORERS[key]


# --- training ----------------------------------------------------------------------------------------------


def train_scorer(
    pairs: Sequence[tuple[str, str]],
    labels: Sequence[int],
    buckets: int = 1 << 18,
    epochs: int = 4,
    lr: float = 0.3,
    l2: float = 1e-6,
    batch_size: int = 512,
    seed: int = 0,
) -> HashedScorer:
    """Fit the hashed logistic model: mini-batch AdaGrad on the log-loss (numpy; seconds for ~50k pairs)."""
    if not pairs:
        raise AgentRLError("no labelled pairs to train the guard model on")
    rows = [featurize(p, t, buckets) for p, t in pairs]
    y = np.asarray(labels, dtype=np.float64)
    weights = np.zeros(buckets, dtype=np.float64)
    accum = np.full(buckets, 1e-8)
    bias, bias_accum = 0.0, 1e-8
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(rows))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            idx = np.concatenate([rows[i] for i in batch])
            lengths = np.asarray([len(rows[i]) for i in batch])
            z = np.add.reduceat(weights[idx], np.concatenate([[0], np.cumsum(lengths)[:-1]])) + bias
            err = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))) - y[batch]
            grad = np.bincount(idx, weights=np.repeat(err, lengths), minlength=buckets)
            touched = np.flatnonzero(grad)
            g = grad[touched] + l2 * weights[touched]
            accum[touched] += g * g
            weights[touched] -= lr * g / np.sqrt(accum[touched])
            gb = float(err.sum())
            bias_accum += gb * gb
            bias -= lr * gb / math.sqrt(bias_accum)
    return HashedScorer(weights.astype(np.float32), float(bias))


def best_threshold(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The decision threshold with the best F1 on these scores (ties: the one nearest 0.5)."""
    candidates = sorted(set(np.round(np.asarray(scores), 4)) | {0.5})
    best, best_key = 0.5, (-1.0, 0.0)
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores)
    for t in candidates:
        pred = s >= t
        tp = float((pred & y).sum())
        f1 = 2 * tp / max(pred.sum() + y.sum(), 1)
        key = (round(f1, 6), -abs(t - 0.5))
        if key > best_key:
            best, best_key = float(t), key
    return best


# --- the checker -------------------------------------------------------------------------------------------


class LearnedSettings(CheckerSettings):
    model: str | None = None
    """Model directory (relative to the task folder, or absolute); default: the run config's guard.model."""
    threshold: float | None = Field(None, ge=0, le=1)
    """Violation probability at which the policy fires; default: the threshold saved with the model."""


@register_checker("learned")
class LearnedChecker:
    """Scores (the policy's description, the trajectory prefix up to the item under check) with a small model.

    Steps this policy already fired on are left out of the prefix: one violation fires once, not at every later
    step. The model loads on first use, once per process.
    """

    Settings = LearnedSettings

    def __init__(self, settings: LearnedSettings, context: CheckerContext, scorer: Scorer | None = None):
        self.settings, self.context, self._scorer = settings, context, scorer
        if scorer is not None:
            return
        model = settings.model or context.default_model
        if model is None:
            raise AgentRLError(
                f"policy {context.policy_id}: a learned checker needs a model: set checker.model or guard.model "
                "(train one with `agentrl guard train`)"
            )
        path = Path(model)
        if not path.is_absolute() and context.task_root is not None and (context.task_root / path).exists():
            path = context.task_root / path
        if not ((path / MODEL_FILE).is_file() or (path / "config.json").is_file()):
            raise AgentRLError(f"policy {context.policy_id}: {_missing_model(path)}")
        info = json.loads((path / MODEL_FILE).read_text()) if (path / MODEL_FILE).is_file() else {}
        if info.get("kind") == ENCODER:
            from agentrl.guard.encoder import weights_archive

            weights_archive(info["encoder"])  # without the extra, fail when the guard is built, not at each check
        self.path = path

    @property
    def scorer(self) -> Scorer:
        return self._scorer if self._scorer is not None else cached_scorer(self.path)

    def check(self, view: StepView) -> Finding | None:
        done = {i for i, s in enumerate(view.steps) if any(e.policy == self.context.policy_id for e in s.guard)}
        if view.index in done:
            return None
        text = render_prefix(view, done)
        if not text:
            return None
        scorer = self.scorer
        score = scorer.score([(self.context.description, text)])[0]
        threshold = self.settings.threshold if self.settings.threshold is not None else scorer.threshold
        if score < threshold:
            return None
        return Finding(f"learned checker: violation likely (p={score:.2f})", clip(text.splitlines()[-1]), score)
