"""The task's verifier as verl's reward function: the local reward (score - guard penalty), from any thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from agentrl.backends.verl_reward import compute_score
from agentrl.backends.verl_rows import EXTRA_KEY, SCORE_KEY, dataset_row
from agentrl.errors import AgentRLError


@pytest.fixture()
def row(arith_task):
    problem = arith_task.problems("train", 1)[0]
    return problem, dataset_row(arith_task, problem, 0)


def call(row, answer, penalty=0.0, text=""):
    """verl's call: extra_info is the dataset row's, with the agent loop's extra_fields merged in."""
    info = {**row["extra_info"], EXTRA_KEY: {"answer": answer, "penalty": penalty}}
    return compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], info)


def test_reward_is_the_verifier_score_minus_the_guard_penalty(row):
    problem, r = row
    assert call(r, problem.answer) == {"score": 1.0, SCORE_KEY: 1.0, "penalty": 0.0}
    assert call(r, problem.answer, penalty=0.25) == {"score": 0.75, SCORE_KEY: 1.0, "penalty": 0.25}
    assert call(r, str(int(problem.answer) + 1))["score"] == 0.0
    assert call(r, None)["score"] == 0.0


def test_without_the_agent_loops_fields_the_answer_is_read_from_the_final_message(row):
    problem, r = row
    text = f"```python\nprint(1)\n```\n```output\n1\n```\nSo it is \\boxed{{{problem.answer}}}"
    result = compute_score(r["data_source"], text, problem.answer, dict(r["extra_info"]))
    assert result[SCORE_KEY] == 1.0


def test_verl_calls_it_off_the_main_thread_where_math_verify_cannot_time_out(row, arith_task):
    problem, r = row
    equivalent = f"{problem.answer}.0"  # not the exact string: math-verify decides, with its signal timeout
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(AgentRLError, match="threaded"):  # why the reward function needs a main thread
            pool.submit(arith_task.verify, problem, equivalent).result()
        assert pool.submit(call, r, equivalent).result()[SCORE_KEY] == 1.0


def test_a_row_agentrl_did_not_write_is_refused(row):
    with pytest.raises(AgentRLError, match="not written by agentrl"):
        compute_score("gsm8k", "", "1", {"index": 0})
