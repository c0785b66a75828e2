"""The bundled code-tests task: hidden tests run in the sandbox, reward is the pass fraction."""

from __future__ import annotations

import random
import time
from contextlib import ExitStack

import pytest

from agentrl.config import build_config
from agentrl.models.tiny import train_tokenizer
from agentrl.rollout.chain import AgentLoop
from agentrl.tasks import load_task
from agentrl.tools import build_tools

# Three hidden tests of f(x) = 2 * x + 1, built by hand so the expected values are obvious.
PROBLEM = {"tests": [{"input": x, "expect": repr(2 * x + 1)} for x in (1, 2, 3)]}


@pytest.fixture(scope="module")
def task():
    return load_task("code-tests")


@pytest.fixture(scope="module")
def loop(task):
    cfg = build_config([{"task": "code-tests"}, task.spec.defaults])
    with ExitStack() as stack:
        agent_loop = AgentLoop(
            task, train_tokenizer(task.vocabulary_sample, 512), build_tools(task, cfg, stack), cfg.rollout, 512
        )
        stack.callback(agent_loop.pool.shutdown)
        yield agent_loop


def test_reward_is_the_fraction_of_hidden_tests_passed(task):
    verify = task.module.verify
    assert verify(PROBLEM, "def f(x):\n    return 2 * x + 1") == 1.0
    assert verify(PROBLEM, "def f(x):\n    return 3 if x == 1 else 5") == pytest.approx(2 / 3)
    assert verify(PROBLEM, "def f(x):\n    return x") == 0.0


@pytest.mark.parametrize(
    "answer",
    [None, "", "def g(x):\n    return 2 * x + 1", "def f(x) return", "raise SystemExit", "import os\nos._exit(0)"],
)
def test_no_function_f_scores_zero(task, answer):
    assert task.module.verify(PROBLEM, answer) == 0.0


def test_a_function_that_hangs_fails_in_bounded_time(task):
    start = time.perf_counter()
    assert task.module.verify(PROBLEM, "def f(x):\n    while x != 2:\n        pass\n    return 5") == 0.0
    assert task.module.verify(PROBLEM, "while True:\n    pass") == 0.0
    assert time.perf_counter() - start < 5


def test_model_code_runs_in_the_sandbox_not_on_the_host(task, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("3")  # f would pass test 1 if it could read this host file
    answer = f"def f(x):\n    return int(open({str(secret)!r}).read())"
    assert task.module.verify(PROBLEM, answer) == 0.0


def test_faking_the_harness_output_earns_nothing(task):
    answer = 'import builtins\nbuiltins.repr = lambda v: \'3\'\ndef f(x):\n    print(\'["3", "5", "7"]\')\n    return 0'
    assert task.module.verify(PROBLEM, answer) <= 1 / 3


def test_hidden_tests_are_not_shown_in_the_prompt(task):
    for problem in task.problems("train", 50) + task.problems("test", 50):
        shown = problem.data["examples"]
        hidden = [t["input"] for t in problem.data["tests"]]
        assert len(hidden) == 6 and not any(x in shown for x in hidden)
        assert all(f"f({x!r})" not in problem.prompt for x in hidden)


def test_splits_never_share_a_function_and_cover_every_family(task):
    train, test = task.problems("train", 600), task.problems("test", 300)
    assert not {p.data["spec"] for p in train} & {p.data["spec"] for p in test}
    families = set(task.module.FAMILIES)
    assert {p.data["family"] for p in train} == families == {p.data["family"] for p in test}


def test_expert_demos_pass_every_hidden_test_through_the_real_loop(task, loop):
    problems = task.problems("train", 24, seed=3)
    trajs = loop.run(problems, 1, loop.scripted_policy({p.id: task.demo(p) for p in problems}))
    assert [t.score for t in trajs] == [1.0] * len(problems)
    assert all(t.num_tool_calls == 1 and t.steps[0].error is None for t in trajs)


def test_no_tool_and_random_policies_score_low(task, loop):
    problems = task.problems("test", 48, seed=5)
    rng = random.Random(0)

    def no_tool(p):  # answers at once with a function that returns the first example's output
        return [f"<answer>\ndef f(x):\n    return {p.prompt.split(' == ')[1].split(', f(')[0]}\n</answer>"]

    def random_expert(p):  # a confident expert answer, but to a random other problem
        return task.demo(rng.choice([q for q in problems if q.data["spec"] != p.data["spec"]]))

    # measured on 240 test problems: no tool 0.13, random 0.0 (the expert: 1.0)
    for policy, n, ceiling in ((no_tool, 48, 0.25), (random_expert, 16, 0.1)):
        trajs = loop.run(problems[:n], 1, loop.scripted_policy({p.id: policy(p) for p in problems[:n]}))
        assert sum(t.score for t in trajs) / n < ceiling, policy.__name__
