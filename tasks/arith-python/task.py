"""arith-python: one question, one python call, one boxed answer.

Episode: the user asks for an exact number; the agent writes a ```python block that prints it, reads the
```output block, and answers \\boxed{N}. Reward 1.0 for the exact value, else 0.0.
"""

from __future__ import annotations

import random
import re

from math_verify import parse
from math_verify import verify as math_equal

from agentrl.tasks import in_split

INTEGER = re.compile(r"[-+]?\d{1,4000}")  # int() refuses more than 4,300 digits
TEMPLATES = [
    ("What is {a} * {b}?", "print({a} * {b})"),
    ("Multiply {a} by {b}.", "print({a} * {b})"),
    ("Compute {a} + {b} * {c}.", "print({a} + {b} * {c})"),
    ("What is {a} to the power {c} modulo {b}?", "print(pow({a}, {c}, {b}))"),
    ("What is the sum of the integers from {b} to {a}?", "print(sum(range({b}, {a} + 1)))"),
]


def _problem(rng: random.Random) -> dict:
    question, code = rng.choice(TEMPLATES)
    values = {"a": rng.randint(100, 9999), "b": rng.randint(11, 99), "c": rng.randint(2, 99)}
    answer = eval(code.removeprefix("print").format(**values))  # our own template, not model output
    return {"prompt": question.format(**values), "answer": str(answer), "code": code.format(**values)}


def generate(split: str, n: int, seed: int) -> list[dict]:
    rng = random.Random(f"arith-python/{split}/{seed}")
    out: list[dict] = []
    while len(out) < n:
        problem = _problem(rng)
        if in_split(problem["prompt"], split):
            out.append(problem)
    return out


def verify(problem: dict, answer: str | None) -> float:
    if answer is None:
        return 0.0
    plain = answer.strip().replace(",", "")
    if INTEGER.fullmatch(plain):  # most answers: decided without math-verify's sympy parse (~1 ms each)
        return float(int(plain) == int(problem["answer"]))
    return float(math_equal(parse(problem["answer"]), parse(answer)))


def demo(problem: dict) -> list[dict]:
    return [
        {"tool_calls": [{"name": "python", "arguments": {"code": problem["code"]}}]},
        {"content": f"\\boxed{{{problem['answer']}}}"},
    ]
