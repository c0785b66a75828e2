"""Broken on purpose: there is no demo()."""

from agentrl.tasks import in_split


def generate(split, n, seed):
    prompts = (f"Say {w} {seed}." for w in range(10_000))
    return [{"prompt": p, "answer": p[4:-1]} for p in prompts if in_split(p, split)][:n]


def verify(problem, answer):
    return float(answer == problem["answer"])
