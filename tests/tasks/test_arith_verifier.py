"""arith-python's verifier: plain integers are compared directly, anything else goes through math-verify."""

from __future__ import annotations

import pytest

from agentrl.tasks import load_task


@pytest.fixture(scope="module")
def arith():
    task = load_task("arith-python")
    return task, task.problems("test", 1)[0]


@pytest.mark.parametrize(
    ("answer", "score"),
    [("{n}", 1.0), (" {n} ", 1.0), ("{commas}", 1.0), ("+{n}", 1.0), ("{n1}", 0.0), ("-{n}", 0.0), (None, 0.0)],
)
def test_integer_answers(arith, answer, score):
    task, problem = arith
    n = int(problem.answer)
    if answer is not None:
        answer = answer.format(n=n, n1=n + 1, commas=f"{n:,}")
    assert task.verify(problem, answer) == score


def test_other_forms_of_the_number_still_count(arith):
    task, problem = arith
    assert task.verify(problem, f"{problem.answer}.0") == 1.0
    assert task.verify(problem, f"{int(problem.answer) + 1}.0") == 0.0
    assert task.verify(problem, "x") == 0.0
    assert task.verify(problem, "9" * 5000) == 0.0  # past int()'s digit limit: math-verify decides, no error
