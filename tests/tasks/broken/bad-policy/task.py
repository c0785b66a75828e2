"""Only task.yaml is broken here: a policy's checker has a setting its type does not know."""

from agentrl.tasks import in_split


def generate(split, n, seed):
    years = [y for y in range(1000 + seed, 3000 + seed) if in_split(str(y), split)]
    return [{"prompt": f"Is {y} a leap year?", "answer": "yes" if y % 4 == 0 else "no"} for y in years[:n]]


def verify(problem, answer):
    return float(answer == problem["answer"])


def demo(problem):
    return [f"<answer>{problem['answer']}</answer>"]
