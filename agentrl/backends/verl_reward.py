"""The task's verifier as verl's custom reward function (`reward.custom_reward_function.path` = this file).

verl's reward manager calls `compute_score(data_source, solution_str, ground_truth, extra_info)` once per
trajectory. `extra_info` holds the dataset row's problem (see `verl_rows.dataset_row`) and, merged in by verl,
the agent loop's `extra_fields`: the answer agentrl's parser read and the guard penalty. The reward is what the
local trainer uses, score - penalty; the score itself is reported as `acc`.

verl calls this function in a worker thread, and verifiers may use signal-based timeouts (math-verify does),
which only a main thread has: off the main thread, verification runs in a child process's main thread.
Nothing here imports verl.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from typing import Any

from agentrl.backends.verl_rows import EXTRA_KEY, SCORE_KEY, problem_from_info
from agentrl.errors import AgentRLError
from agentrl.rollout.parsers import FORMATS, FinalAnswer, extract_answer, strip_think
from agentrl.tasks import Problem, Task, load_task

VERIFY_TIMEOUT_S = 120.0
_POOL: list[ProcessPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, float]:
    """verl's reward-function signature; returns the reward (`score`) and its parts for verl's metrics."""
    info = extra_info or {}
    if "agentrl_task" not in info:
        raise AgentRLError(f"row from {data_source!r} was not written by agentrl: its extra_info has no agentrl_task")
    task = _task(info["agentrl_task"])
    problem = problem_from_info(info)
    structure = info.get(EXTRA_KEY)
    if structure is not None:  # the agentrl agent loop ran this trajectory
        answer, penalty = structure["answer"], float(structure["penalty"])
    else:  # another agent loop: read the answer from the final message, as agentrl's parser would
        answer, penalty = final_answer(task, solution_str), 0.0
    score = verify(task, problem, answer)
    return {"score": score - penalty, SCORE_KEY: score, "penalty": penalty}


def final_answer(task: Task, text: str) -> str | None:
    if task.spec.format == "native":
        return extract_answer(strip_think(text))
    parsed = FORMATS[task.spec.format].parse(text)
    return parsed.answer if isinstance(parsed, FinalAnswer) else extract_answer(text)


def verify(task: Task, problem: Problem, answer: str | None) -> float:
    """`task.verify` on a main thread: this one if it is the main thread, else a child process's."""
    if threading.current_thread() is threading.main_thread():
        return task.verify(problem, answer)
    future = _pool().submit(_verify_in_child, str(task.root), problem.id, problem.data, answer)
    try:
        return future.result(timeout=VERIFY_TIMEOUT_S)
    except TimeoutError:
        raise AgentRLError(
            f"{task.root}/task.py: verify() took longer than {VERIFY_TIMEOUT_S:.0f} s on problem {problem.id}; "
            "a verifier must return promptly"
        ) from None


@cache
def _task(root: str) -> Task:
    return load_task(root)


def _verify_in_child(root: str, problem_id: str, data: dict[str, Any], answer: str | None) -> float:
    problem = Problem(problem_id, data["prompt"], str(data["answer"]), data)
    return _task(root).verify(problem, answer)


def _pool() -> ProcessPoolExecutor:
    """One verifier process per reward worker, started on first use (spawn: the parent holds threads)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")))
        return _POOL[0]
