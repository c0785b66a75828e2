"""Broken on purpose: generate() draws from the global random state, not from its seed."""

import random

from agentrl.tasks import in_split


def generate(split, n, seed):
    out = []
    while len(out) < n:
        x = random.randint(0, 10**9)
        if in_split(str(x), split):
            out.append({"prompt": f"Repeat {x}.", "answer": str(x)})
    return out


def verify(problem, answer):
    return float(answer == problem["answer"])


def demo(problem):
    return [f"\\boxed{{{problem['answer']}}}"]
