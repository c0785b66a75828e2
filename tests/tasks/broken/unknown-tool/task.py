"""Only task.yaml is broken here: it asks for a tool that does not exist."""

from agentrl.tasks import in_split


def generate(split, n, seed):
    words = [f"w{seed}x{i}" for i in range(5000) if in_split(f"w{seed}x{i}", split)]
    return [{"prompt": f"Length of {w}?", "answer": str(len(w))} for w in words[:n]]


def verify(problem, answer):
    return float(answer is not None and answer.strip() == problem["answer"])


def demo(problem):
    word = problem["prompt"].split()[-1].rstrip("?")
    return [f"```python\nprint(len({word!r}))\n```", f"\\boxed{{{problem['answer']}}}"]
