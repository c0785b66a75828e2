"""Trajectories as verl rows and back: what the verl estimators read equals what the local trainer computes.

No verl here: rows are built the way agentrl's verl agent loop builds them and padded the way verl pads them.
"""

from __future__ import annotations

import pytest
import torch

from agentrl.algos import compute_advantages
from agentrl.backends.verl_rows import (
    EXTRA_KEY,
    SCORE_KEY,
    advantage_inputs,
    dataset_row,
    output_fields,
    problem_from_info,
    rows_from_non_tensor_batch,
)
from agentrl.config import TreeConfig, build_config
from agentrl.errors import AgentRLError
from agentrl.guard import build_guard
from agentrl.rollout.tree import sample_trees
from agentrl.tasks import load_task
from agentrl.train.batch import collate
from agentrl.train.trainer import advantage_inputs as local_advantage_inputs

from ..rollout.loop_helpers import EchoTool, make_loop
from .scripted import VariantPolicy, guarded_task

WIDTH = 160  # verl pads every response to data.max_response_length


@pytest.fixture(scope="module")
def leaves(tmp_path_factory, tokenizer):
    """Tree-sampled, guarded, scored trajectories of two arith-python problems (every scripted behaviour)."""
    task = load_task(str(guarded_task(tmp_path_factory.mktemp("task") / "arith-guarded")))
    problems = task.problems("train", 2)
    guard = build_guard(task, build_config([{"task": str(task.root)}]))
    loop = make_loop(task, tokenizer, EchoTool(), guard=guard, max_new_tokens=48)
    tree = TreeConfig(trees=2, expansions=2, iterations=1, keep=3)
    kept, _ = sample_trees(loop, problems, VariantPolicy(tokenizer, problems), tree, seed=3, step_tag="7/")
    loop.pool.shutdown()
    return kept


def verl_batch(trajs):
    """What verl's estimator gets for these rows: summed-at-the-end rewards, padded masks, uids, extra_fields."""
    rewards = torch.zeros(len(trajs), WIDTH)
    mask = torch.zeros(len(trajs), WIDTH, dtype=torch.long)
    rows = []
    for b, t in enumerate(trajs):
        fields = output_fields(t, WIDTH)
        mask[b, : len(fields["response_mask"])] = torch.tensor(fields["response_mask"])
        rewards[b, len(fields["response_ids"]) - 1] = t.reward
        rows.append({**fields["extra_fields"], "reward_extra_info": {SCORE_KEY: t.score, "penalty": t.penalty}})
    return rewards, mask, [t.group_id for t in trajs], rows


def test_rows_give_the_estimators_what_the_local_trainer_gives_them(leaves, tokenizer):
    assert {t.tree_id for t in leaves} and any(t.penalty for t in leaves) and any(t.shared_steps for t in leaves)
    batch = collate(leaves, tokenizer.pad_token_id)
    local = local_advantage_inputs(leaves, batch)
    theirs = advantage_inputs(*verl_batch(leaves))
    width = batch.token_turn.shape[1]
    torch.testing.assert_close(theirs.rewards, local.rewards)
    assert theirs.group_ids == local.group_ids and theirs.tree_ids == local.tree_ids
    assert torch.equal(theirs.token_turn[:, :width], batch.token_turn) and bool(
        (theirs.token_turn[:, width:] == -1).all()
    )
    assert torch.equal(theirs.format_errors, local.format_errors) and theirs.codes == local.codes
    assert torch.equal(theirs.correct, local.correct)
    torch.testing.assert_close(theirs.first_code_pos, local.first_code_pos, equal_nan=True)
    torch.testing.assert_close(theirs.response_len, local.response_len)


@pytest.mark.parametrize(
    ("estimator", "shaping", "params"),
    [("grpo", [], {}), ("rloo", [], {}), ("gtpo", [], {}), ("grpo", ["aspo"], {}), ("tree_grpo", [], {})],
)
def test_advantages_from_rows_equal_local_advantages(leaves, tokenizer, estimator, shaping, params):
    batch = collate(leaves, tokenizer.pad_token_id)
    local = compute_advantages(local_advantage_inputs(leaves, batch), estimator, shaping, **params)
    theirs = compute_advantages(advantage_inputs(*verl_batch(leaves)), estimator, shaping, **params)
    assert bool(local.abs().sum() > 0)
    torch.testing.assert_close(theirs[:, : local.shape[1]], local)
    assert bool((theirs[:, local.shape[1] :] == 0).all())


def test_a_row_out_of_step_with_its_mask_is_refused(leaves):
    rewards, mask, groups, rows = verl_batch(leaves[:2])
    with pytest.raises(AgentRLError, match="row 0 .* does not match verl's response_mask"):
        advantage_inputs(rewards, mask.flip(0), groups, rows)
    with pytest.raises(AgentRLError, match="agent loop"):
        advantage_inputs(rewards, mask, groups, [{}, {}])


def test_output_fields_are_cut_to_verls_response_length(leaves):
    t = max(leaves, key=lambda t: len(t.response_ids))
    fields = output_fields(t, 10)
    assert fields["response_ids"] == t.response_ids[:10] and fields["response_mask"] == t.response_mask[:10]
    assert fields["response_logprobs"] == pytest.approx(t.response_logprobs[:10])
    assert fields["num_turns"] == 1 + len(t.steps) + sum(bool(s.obs_ids) for s in t.steps)
    events = [e for s in fields["extra_fields"][EXTRA_KEY]["steps"] for e in s["guard"]]
    assert [e["policy"] for e in events] == [e.policy for e in t.guard_events]


def test_rows_from_a_verl_batch_carry_the_verifier_score():
    structures = [{"steps": []}, {"steps": []}]
    rows = rows_from_non_tensor_batch({EXTRA_KEY: structures, SCORE_KEY: [1.0, 0.0]})
    assert [r["reward_extra_info"][SCORE_KEY] for r in rows] == [1.0, 0.0]
    with pytest.raises(AgentRLError, match="not generated by agentrl"):
        rows_from_non_tensor_batch({"uid": ["a"]})


def test_a_dataset_row_carries_its_problem(arith_task):
    problem = arith_task.problems("test", 1)[0]
    row = dataset_row(arith_task, problem, 3)
    assert row["prompt"] == arith_task.messages(problem) and row["reward_model"]["ground_truth"] == problem.answer
    assert problem_from_info(row["extra_info"]) == problem
    assert not row["extra_info"]["agentrl_evaluation"]
    assert dataset_row(arith_task, problem, 3, evaluation=True)["extra_info"]["agentrl_evaluation"]
    with pytest.raises(AgentRLError, match="not written by agentrl"):
        problem_from_info({"index": 0})
