"""Broken on purpose: the expert demonstration squares instead of cubing, so it fails its own verifier."""

from agentrl.tasks import in_split


def generate(split, n, seed):
    xs = [x for x in range(2 + seed, 2000 + seed) if in_split(f"cube {x}", split)]
    return [{"prompt": f"What is {x} cubed?", "answer": str(x**3), "x": x} for x in xs[:n]]


def verify(problem, answer):
    return 1.0 if (answer or "").strip() == problem["answer"] else 0.0


def demo(problem):
    return [f"```python\nprint({problem['x']} ** 2)\n```", f"\\boxed{{{problem['x'] ** 2}}}"]
