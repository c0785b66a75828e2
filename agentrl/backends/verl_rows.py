"""agentrl problems and trajectories as rows of verl's data, and back; nothing here imports verl.

A verl row holds token ids, masks, log-probs and one scalar reward. agentrl's estimators also need the tree a
leaf belongs to and where its turns start and end; the reward function needs the answer and the guard penalty.
The verl agent loop writes all of it into the row's `extra_fields["agentrl"]` as plain JSON values (they cross
Ray, numpy object arrays and TransferQueue unchanged); the reward function and the estimators read it back here.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from agentrl.errors import AgentRLError
from agentrl.tasks import Problem, Task
from agentrl.trajectory import Trajectory

if TYPE_CHECKING:  # torch stays out of the import: the reward function's verifier process loads this module
    import torch

    from agentrl.algos import AdvantageInputs

AGENT_NAME = "agentrl"
"""The name agentrl's agent loop is registered under in verl's agent-loop registry."""
EXTRA_KEY = "agentrl"
"""Key of agentrl's per-row structure in verl's `extra_fields` (and in the reward function's `extra_info`)."""
SCORE_KEY = "acc"
"""The verifier's score in verl's `reward_extra_info` (the reward is score - guard penalty)."""


# --- dataset: one row per problem, read by verl's RLHFDataset ------------------------------------------------


def dataset_row(task: Task, problem: Problem, index: int, evaluation: bool = False) -> dict[str, Any]:
    """A row of verl's RL dataset (JSON lines): chat prompt, ground truth, and the problem for the agent loop.

    `evaluation` rows (verl's validation set) are sampled as independent chains whatever `rollout.sampler` says,
    as `agentrl eval` and the local trainer's pass@1 do."""
    return {
        "data_source": f"agentrl/{task.name}",
        "agent_name": AGENT_NAME,
        "prompt": task.messages(problem),
        "reward_model": {"style": "rule", "ground_truth": problem.answer},
        "extra_info": {
            "index": index,
            "agentrl_task": str(task.root.resolve()),
            "agentrl_problem_id": problem.id,
            "agentrl_problem": json.dumps(problem.data, default=str),
            "agentrl_evaluation": evaluation,
        },
    }


def problem_from_info(info: Mapping[str, Any]) -> Problem:
    """The problem a dataset row's `extra_info` describes (see `dataset_row`)."""
    try:
        data = json.loads(info["agentrl_problem"])
        return Problem(str(info["agentrl_problem_id"]), data["prompt"], str(data["answer"]), data)
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise AgentRLError(
            f"this verl row was not written by agentrl (extra_info lacks {exc}): build the dataset with "
            "`agentrl train TASK --backend verl`"
        ) from None


# --- trajectory -> row ------------------------------------------------------------------------------------------


def row_structure(traj: Trajectory) -> dict[str, Any]:
    """What verl's batch does not hold about a trajectory: its tree, its steps' layout and outcome, guard events."""
    return {
        "problem_id": traj.problem_id,
        "tree_id": traj.tree_id,
        "shared_steps": traj.shared_steps,
        "answer": traj.answer,
        "done": traj.done,
        "penalty": traj.penalty,
        "steps": [
            {
                "actions": len(s.action_ids),
                "obs": len(s.obs_ids),
                "finish": s.finish,
                "tool": s.tool,
                "args": s.tool_args,
                "error": s.error,
                "seconds": s.seconds,
                "guard": [asdict(e) for e in s.guard],
            }
            for s in traj.steps
        ],
    }


def output_fields(traj: Trajectory, response_length: int) -> dict[str, Any]:
    """The token fields of verl's `AgentLoopOutput` for `traj`, cut to verl's `response_length`."""
    return {
        "prompt_ids": list(traj.prompt_ids),
        "response_ids": traj.response_ids[:response_length],
        "response_mask": traj.response_mask[:response_length],
        "response_logprobs": traj.response_logprobs[:response_length],
        # verl counts chat messages: the user's, each model message, each tool observation
        "num_turns": 1 + len(traj.steps) + sum(bool(s.obs_ids) for s in traj.steps),
        "extra_fields": {EXTRA_KEY: row_structure(traj)},
    }


# --- rows -> the estimators' inputs ------------------------------------------------------------------------------


def structure_of(row: Mapping[str, Any]) -> dict[str, Any]:
    structure = row.get(EXTRA_KEY) if isinstance(row, Mapping) else None
    if structure is None:
        raise AgentRLError(
            "an agentrl advantage estimator got a verl row without agentrl's structure: the rows must come from "
            f"the `{AGENT_NAME}` agent loop (rollout.agent.default_agent_loop={AGENT_NAME})"
        )
    return structure


def rows_from_non_tensor_batch(non_tensor_batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-row dicts from a verl `DataProto.non_tensor_batch`, as the v1 trainer stores `extra_fields`."""
    structures = non_tensor_batch.get(EXTRA_KEY)
    if structures is None:
        raise AgentRLError(f"the verl batch has no `{EXTRA_KEY}` field: it was not generated by agentrl's agent loop")
    infos = non_tensor_batch.get("reward_extra_info")
    scores = non_tensor_batch.get(SCORE_KEY)
    rows = []
    for i, structure in enumerate(structures):
        info = dict(infos[i] or {}) if infos is not None else {}
        if scores is not None:
            info.setdefault(SCORE_KEY, scores[i])
        rows.append({EXTRA_KEY: structure, "reward_extra_info": info})
    return rows


def _layout(structure: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """Turn index and model-token mask of each response token."""
    turn, mask = [], []
    for j, step in enumerate(structure["steps"]):
        turn += [j] * (step["actions"] + step["obs"])
        mask += [1] * step["actions"] + [0] * step["obs"]
    return turn, mask


def advantage_inputs(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    group_ids: Sequence[Hashable],
    rows: Sequence[Mapping[str, Any]],
) -> AdvantageInputs:
    """agentrl's `AdvantageInputs` for a verl batch: rewards and masks from verl, tree and turns from the rows.

    Mirrors the local trainer's `advantage_inputs`: the reward is the row's summed token-level reward (verl puts
    it on the last response token), `correct` is the verifier's score >= 1, turns come from the step layout,
    which must agree with verl's `response_mask` (a row cut at `response_length` keeps its first tokens).
    """
    import torch

    from agentrl.algos import AdvantageInputs

    structures = [structure_of(row) for row in rows]
    n_rows, width = response_mask.shape
    if len(structures) != n_rows:
        raise AgentRLError(f"{len(structures)} agentrl rows for a verl batch of {n_rows}: rows and batch must align")
    token_turn = torch.full((n_rows, width), -1, dtype=torch.long)
    for b, structure in enumerate(structures):
        turn, mask = _layout(structure)
        turn, mask = turn[:width], mask[:width]
        expected = torch.zeros(width, dtype=torch.bool)
        expected[: len(mask)] = torch.tensor(mask, dtype=torch.bool)
        if not torch.equal(response_mask[b].bool().cpu(), expected):
            raise AgentRLError(
                f"row {b} ({structure['problem_id']}): its turn layout does not match verl's response_mask; "
                "the batch rows are out of order with their agentrl structure"
            )
        token_turn[b, : len(turn)] = torch.tensor(turn, dtype=torch.long)
    n_turns = max(max(len(s["steps"]) for s in structures), 1)
    infos = [row.get("reward_extra_info") or {} for row in rows]
    scores = [info.get(SCORE_KEY) for info in infos]
    first_code = [_first_call_position(s, "python") for s in structures]
    return AdvantageInputs(
        rewards=token_level_rewards.sum(dim=-1).cpu(),
        group_ids=list(group_ids),
        tree_ids=[s["tree_id"] for s in structures] if all(s["tree_id"] for s in structures) else None,
        response_mask=response_mask.cpu(),
        token_turn=token_turn,
        format_errors=torch.tensor(
            [_padded([st["error"] == "parse_error" for st in s["steps"]], n_turns) for s in structures]
        ),
        codes=["\n".join(st["args"]["code"] for st in s["steps"] if st["tool"] == "python") for s in structures],
        correct=torch.tensor([float(x) >= 1.0 for x in scores]) if all(x is not None for x in scores) else None,
        first_code_pos=torch.tensor(first_code, dtype=torch.float),
        response_len=torch.tensor([float(sum(st["actions"] + st["obs"] for st in s["steps"])) for s in structures]),
    )


def _padded(flags: list[bool], width: int) -> list[bool]:
    return flags + [False] * (width - len(flags))


def _first_call_position(structure: Mapping[str, Any], tool: str) -> float:
    """Response-token index where the first call of `tool` ends (`Trajectory.first_tool_position`); NaN if none."""
    pos = 0
    for step in structure["steps"]:
        pos += step["actions"]
        if step["tool"] == tool:
            return float(pos)
        pos += step["obs"]
    return float("nan")
