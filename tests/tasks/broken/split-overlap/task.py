"""Broken on purpose: generate() ignores `split`, so the test split is the train split."""


def generate(split, n, seed):
    return [{"prompt": f"Spell {k * 7 + seed}.", "answer": str(k * 7 + seed)} for k in range(n)]


def verify(problem, answer):
    return float((answer or "").strip() == problem["answer"])


def demo(problem):
    return [f"<answer>{problem['answer']}</answer>"]
