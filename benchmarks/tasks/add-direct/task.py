"""add-direct: "What is a + b?" answered \\boxed{a + b} in one message. Reward 1.0 for the exact sum, else 0.0."""

from __future__ import annotations

import random

from agentrl.tasks import in_split


def generate(split: str, n: int, seed: int) -> list[dict]:
    rng = random.Random(f"add-direct/{split}/{seed}")
    out: list[dict] = []
    while len(out) < n:
        a, b = rng.randint(10, 99), rng.randint(1, 9)
        prompt = f"What is {a} + {b}?"
        if in_split(prompt, split):
            out.append({"prompt": prompt, "answer": str(a + b)})
    return out


def verify(problem: dict, answer: str | None) -> float:
    return float(answer is not None and answer.strip() == problem["answer"])


def demo(problem: dict) -> list[dict]:
    return [{"content": f"\\boxed{{{problem['answer']}}}"}]
