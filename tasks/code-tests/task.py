"""code-tests: write a function `f` that passes hidden unit tests; the reward is the fraction it passes.

Episode: the user describes `f` in one sentence and shows two example calls. The agent may try code in a
```python block (the sandbox runs it and shows the output), then answers with the whole function inside
<answer>...</answer>, without a code fence (a message holding a ```python block is a tool call, not an answer).

Verifier: the answer's code runs IN THE SANDBOX (never on the host), in a fresh session of one sandbox per
process, opened on first use. There `f` is called on six hidden inputs that the prompt does not show; only the
repr() of each result comes back, and the host compares it with the expected repr. The expected values never
enter the sandbox, so code that tampers with the harness cannot learn them. Each call has 0.25 s (the first call
that runs out of time fails the rest). Reward: passed / total; 0.0 without an answer, or when the code does not
run or defines no `f`.

Problems are drawn from twelve seeded families of small function specs (digit sums in a base, counting
multiples, fizz-like strings, gcd, clamping, list maps and filters, rotations, ...). The split is by spec, so
no function of the test split is ever trained on; only its parameters differ from train functions.
"""

from __future__ import annotations

import ast
import atexit
import random
import string
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentrl.sandbox import Sandbox, open_sandbox
from agentrl.tasks import in_split

HIDDEN_TESTS = 6
EXAMPLES = 2
CALL_TIMEOUT_S = 0.25
DEFINE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Family:
    """A kind of function: `spec` says what f(arg) returns, `body` is the reference body; both take params."""

    arg: str
    spec: str
    body: str
    params: Callable[[random.Random], dict[str, Any]]
    value: Callable[[random.Random, dict[str, Any]], Any]
    """One random input of f, given the params."""


def _word(rng: random.Random, lo: int = 3, hi: int = 8) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(lo, hi)))


def _ints(rng: random.Random, lo: int = -9, hi: int = 20) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(1, 4))]


def _word_with(rng: random.Random, chars: str) -> str:
    """A word in which roughly a third of the letters come from `chars`."""
    return "".join(
        rng.choice(chars if rng.random() < 0.35 else string.ascii_lowercase) for _ in range(rng.randint(3, 9))
    )


def _around(rng: random.Random, lo: int, hi: int) -> int:
    """Below, inside or above [lo, hi], equally often."""
    return rng.choice([rng.randint(lo - 20, lo - 1), rng.randint(lo, hi), rng.randint(hi + 1, hi + 20)])


FAMILIES: dict[str, Family] = {
    "multiples": Family(
        "n",
        "the number of integers from 1 to n that are divisible by {k}",
        "return n // {k}",
        lambda r: {"k": r.randint(2, 19)},
        lambda r, p: r.randint(0, 300),
    ),
    "digit-sum": Family(
        "n",
        "the sum of the digits of n written in base {b}",
        "s = 0\nwhile n:\n    s += n % {b}\n    n //= {b}\nreturn s",
        lambda r: {"b": r.randint(2, 16)},
        lambda r, p: r.randint(0, 5000),
    ),
    "count-chars": Family(
        "s",
        "how many characters of s are among '{chars}'",
        "return sum(c in '{chars}' for c in s)",
        lambda r: {"chars": "".join(sorted(r.sample(string.ascii_lowercase, r.randint(2, 5))))},
        lambda r, p: _word_with(r, p["chars"]),
    ),
    "fizz": Family(
        "n",
        "the string '{word}' if n is divisible by {k}, else n as a string",
        "return '{word}' if n % {k} == 0 else str(n)",
        lambda r: {"word": r.choice(["Fizz", "Buzz", "Bang", "Zap", "Pop"]), "k": r.randint(2, 9)},
        lambda r, p: p["k"] * r.randint(1, 12) if r.random() < 0.5 else r.randint(1, 100),
    ),
    "gcd": Family(
        "n",
        "the greatest common divisor of n and {k}",
        "import math\nreturn math.gcd(n, {k})",
        lambda r: {"k": r.choice([6, 8, 10, 12, 14, 15, 18, 20, 21, 24, 28, 30, 36, 40, 42, 45, 48, 60])},
        lambda r, p: r.randint(1, 20) * r.choice([1, 2, 3, 5, 7]),
    ),
    "reverse-words": Family(
        "s",
        "the words of s in reverse order, joined by '{sep}'",
        "return '{sep}'.join(s.split()[::-1])",
        lambda r: {"sep": r.choice([" ", "-", ",", "+", "_", "/", ";", ".", ":", "|"])},
        lambda r, p: " ".join(_word(r, 2, 5) for _ in range(r.randint(1, 4))),
    ),
    "clamp": Family(
        "x",
        "x limited to the range {lo} to {hi}",
        "return min(max(x, {lo}), {hi})",
        lambda r: {"lo": r.randint(-20, 0), "hi": r.randint(1, 20)},
        lambda r, p: _around(r, p["lo"], p["hi"]),
    ),
    "affine": Family(
        "xs",
        "the list of each element of xs times {a} plus {b}",
        "return [x * {a} + {b} for x in xs]",
        lambda r: {"a": r.randint(2, 9), "b": r.randint(-9, 9)},
        lambda r, p: _ints(r),
    ),
    "filter": Family(
        "xs",
        "the elements of xs that are greater than {k}, in order",
        "return [x for x in xs if x > {k}]",
        lambda r: {"k": r.randint(-5, 20)},
        lambda r, p: _ints(r),
    ),
    "rotate": Family(
        "xs",
        "xs rotated left by {k} places",
        "k = {k} % len(xs)\nreturn xs[k:] + xs[:k]",
        lambda r: {"k": r.randint(1, 9)},
        lambda r, p: _ints(r),
    ),
    "repeat": Family(
        "s",
        "s with every character repeated {k} times",
        "return ''.join(c * {k} for c in s)",
        lambda r: {"k": r.randint(2, 9)},
        lambda r, p: _word(r, 1, 5),
    ),
    "poly": Family(
        "x",
        "{a} * x * x + {b} * x + {c}",
        "return {a} * x * x + {b} * x + {c}",
        lambda r: {"a": r.randint(1, 5), "b": r.randint(1, 9), "c": r.randint(-9, 9)},
        lambda r, p: r.randint(-10, 10),
    ),
}


def reference(family: Family, params: dict[str, Any]) -> str:
    """The reference solution: `def f(arg):` and the family's body."""
    return f"def f({family.arg}):\n" + textwrap.indent(family.body.format(**params), "    ")


def _problem(rng: random.Random) -> dict:
    name = rng.choice(sorted(FAMILIES))
    family = FAMILIES[name]
    params = family.params(rng)
    code = reference(family, params)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # our own reference code, never model output (that runs in the sandbox)
    inputs: list[Any] = []
    while len(inputs) < EXAMPLES + HIDDEN_TESTS:
        value = family.value(rng, params)
        if value not in inputs:
            inputs.append(value)
    calls = [(f"f({x!r})", repr(namespace["f"](x))) for x in inputs[:EXAMPLES]]
    spec = f"f({family.arg}) that returns {family.spec.format(**params)}"
    return {
        "prompt": f"Write {spec}. Examples: " + ", ".join(f"{c} == {v}" for c, v in calls) + ".",
        "answer": code,
        "family": name,
        "spec": spec,
        "examples": inputs[:EXAMPLES],
        "tests": [{"input": x, "expect": repr(namespace["f"](x))} for x in inputs[EXAMPLES:]],
    }


def generate(split: str, n: int, seed: int) -> list[dict]:
    rng = random.Random(f"code-tests/{split}/{seed}")
    out: list[dict] = []
    while len(out) < n:
        problem = _problem(rng)
        if in_split(problem["spec"], split):  # by spec: a test function is never a train function
            out.append(problem)
    return out


def demo(problem: dict) -> list[dict]:
    """Try the function on the prompt's examples, then answer with it."""
    calls = ", ".join(f"f({x!r})" for x in problem["examples"])
    code = f"{problem['answer']}\nprint({calls})"
    return [
        {"tool_calls": [{"name": "python", "arguments": {"code": code}}]},
        {"content": f"<answer>\n{problem['answer']}\n</answer>"},
    ]


# ---------------------------------------------------------------- the verifier: hidden tests in the sandbox

_HARNESS = """
def __agentrl_tests(inputs, limit):
    import signal
    def alarm(signum, frame):
        raise TimeoutError
    signal.signal(signal.SIGALRM, alarm)
    out = []
    for x in inputs:
        try:
            signal.setitimer(signal.ITIMER_REAL, limit)
            out.append(repr(f(x))[:500])
        except TimeoutError:
            break
        except BaseException:
            out.append(None)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return out + [None] * (len(inputs) - len(out))
__agentrl_tests({inputs!r}, {limit!r})
"""

_sandbox: Sandbox | None = None
_sandbox_lock = threading.Lock()


def sandbox() -> Sandbox:
    """One local sandbox per process, opened on first use and closed at exit."""
    global _sandbox
    with _sandbox_lock:
        if _sandbox is None:
            _sandbox = open_sandbox(backend="local", timeout=2.0, memory_mb=256, cpu_s=10)
            atexit.register(_sandbox.close)
        return _sandbox


def answer_code(answer: str) -> str:
    """The answer's code: surrounding whitespace and a plain ``` fence, if any, removed."""
    lines = answer.strip().splitlines()
    if lines and lines[0].startswith("```"):
        lines = lines[1:]
    if lines and lines[-1].strip() == "```":
        lines = lines[:-1]
    return textwrap.dedent("\n".join(lines))


def run_hidden_tests(code: str, inputs: list[Any]) -> list[str | None]:
    """repr() of f(x) for each input, run in a fresh sandbox session; None where a call failed."""
    with sandbox().session() as session:
        if not session.run(code, timeout=DEFINE_TIMEOUT_S).ok:
            return [None] * len(inputs)
        result = session.run(
            _HARNESS.format(inputs=inputs, limit=CALL_TIMEOUT_S), timeout=1.0 + CALL_TIMEOUT_S * len(inputs)
        )
    try:
        reprs = ast.literal_eval(result.result) if result.ok and result.result else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        reprs = None
    if not isinstance(reprs, list) or len(reprs) != len(inputs):
        return [None] * len(inputs)
    return [r if isinstance(r, str) else None for r in reprs]


def verify(problem: dict, answer: str | None) -> float:
    if not answer or not answer.strip():
        return 0.0
    tests = problem["tests"]
    got = run_hidden_tests(answer_code(answer), [t["input"] for t in tests])
    return sum(g == t["expect"] for g, t in zip(got, tests, strict=True)) / len(tests)
