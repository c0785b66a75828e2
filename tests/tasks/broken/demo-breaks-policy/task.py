"""Only the demonstration is broken here: it imports os, which the task's policy blocks."""

from agentrl.tasks import in_split


def generate(split, n, seed):
    names = [f"file{seed}_{i}.txt" for i in range(3000) if in_split(f"file{seed}_{i}.txt", split)]
    return [{"prompt": f"Extension of {name}?", "answer": name.rsplit(".", 1)[1], "name": name} for name in names[:n]]


def verify(problem, answer):
    return float(answer is not None and answer.strip() == problem["answer"])


def demo(problem):
    code = f"import os\nprint(os.path.splitext({problem['name']!r})[1][1:])"
    return [f"```python\n{code}\n```", f"<answer>{problem['answer']}</answer>"]
