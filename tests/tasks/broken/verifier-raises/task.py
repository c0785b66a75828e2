"""Broken on purpose: verify() assumes the answer is a number, so a missing or odd answer raises."""

from agentrl.tasks import in_split


def generate(split, n, seed):
    pairs = ((a, b) for a in range(100) for b in range(seed, seed + 100))
    return [{"prompt": f"{a} + {b} = ?", "answer": a + b} for a, b in pairs if in_split(f"{a} {b}", split)][:n]


def verify(problem, answer):
    return 1.0 if int(answer) == problem["answer"] else 0.0


def demo(problem):
    return [f"\\boxed{{{problem['answer']}}}"]
