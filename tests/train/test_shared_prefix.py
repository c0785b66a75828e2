"""Shared-prefix packing computes each shared token once and changes nothing else: in float64, per-token log-probs
and the parameter update of a full RL step equal per-trajectory training for trees (2,2,1) and (2,4,2) whose shared
steps hold tool observations, chain groups sharing their prompt, every loss aggregation, minibatches that split a
prompt's trajectories, and packs split by the token budget."""

from __future__ import annotations

import copy
import random
from types import SimpleNamespace

import pytest
import torch

from agentrl.config import build_config
from agentrl.models.loading import enable_checkpointing
from agentrl.train import packing
from agentrl.train.batch import batched_logprobs, collate, micro_batches, token_logprobs
from agentrl.train.packing import PrefixTree, group_packs, packing_unsupported
from agentrl.train.segments import segments
from agentrl.train.trainer import pack_groups, rl_step
from agentrl.trajectory import Step, Trajectory
from tests.conftest import TINY_OVERRIDES

PAD = 0


def random_step(rng: random.Random, vocab: int, last: bool) -> Step:
    action = [rng.randrange(4, vocab) for _ in range(rng.randint(3, 8))]
    logprobs = [-rng.uniform(0.1, 3.0) for _ in action]
    if last:
        return Step(action, logprobs, "", "answer")
    obs = [rng.randrange(4, vocab) for _ in range(rng.randint(2, 5))]
    return Step(action, logprobs, "", "tool_call", tool="python", tool_args={"code": "print(1)"}, obs_ids=obs)


def random_steps(rng: random.Random, vocab: int, start: list[Step]) -> list[Step]:
    """`start` (shared) plus fresh steps to a depth of 2 to 4, the last one an answer."""
    depth = max(len(start) + 1, rng.randint(2, 4))
    return start + [random_step(rng, vocab, last=j == depth - 1) for j in range(len(start), depth)]


def trees(shape: tuple[int, int, int], prompts: int = 2, vocab: int = 300, seed: int = 0) -> list[Trajectory]:
    """Tree-GRPO leaves of shape (M trees, N expansions, L iterations): each expansion copies the steps of a random
    leaf up to a random node (observations included) and samples the rest."""
    m_trees, expansions, iterations = shape
    rng = random.Random(seed)
    leaves = []
    for p in range(prompts):
        prompt = [1] + [rng.randrange(4, vocab) for _ in range(rng.randint(20, 30))]  # >= 25% of any leaf
        for m in range(m_trees):
            tree = [(random_steps(rng, vocab, []), 0)]
            for _ in range(iterations):
                for _ in range(expansions):
                    steps, _ = rng.choice(tree)
                    node = rng.randrange(0, len(steps))  # keep the first `node` steps (0: only the prompt)
                    tree.append((random_steps(rng, vocab, steps[:node]), node))
            for steps, shared in tree:
                reward = float(rng.random() < 0.5)
                leaves.append(
                    Trajectory(f"p{p}", f"g{p}", prompt, steps, score=reward, reward=reward, tree_id=f"g{p}-t{m}")
                )
                leaves[-1].shared_steps = shared
    return leaves


def chains(group: int = 4, prompts: int = 3, vocab: int = 300, seed: int = 1) -> list[Trajectory]:
    rng = random.Random(seed)
    out = []
    for p in range(prompts):
        prompt = [1] + [rng.randrange(4, vocab) for _ in range(rng.randint(10, 20))]
        for _ in range(group):
            reward = float(rng.random() < 0.5)
            out.append(Trajectory(f"p{p}", f"g{p}", prompt, random_steps(rng, vocab, []), score=reward, reward=reward))
    return out


def config(*overrides: str):
    return build_config([{"task": "arith-python"}], [*TINY_OVERRIDES, "train.max_grad_norm=1e9", *overrides])


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def update(model, trajs, shared: str, *overrides: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The parameter change of one RL step (SGD, lr 1: minus the gradient) and its metrics."""
    policy, ref = copy.deepcopy(model), copy.deepcopy(model).eval()
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    cfg = config(f"train.shared_prefix={shared}", "algo.kl_coef=0.05", *overrides)
    metrics = rl_step(policy, ref, torch.optim.SGD(policy.parameters(), lr=1.0), trajs, cfg, PAD, torch.Generator())
    return {name: p.detach() - before[name] for name, p in policy.named_parameters()}, metrics


CASES = {
    "tree-2,2,1": (lambda: trees((2, 2, 1)), ["rollout.sampler=tree", "algo.advantage=tree_grpo"]),
    "tree-2,4,2": (lambda: trees((2, 4, 2)), ["rollout.sampler=tree", "algo.advantage=tree_grpo"]),
    "chain-G4": (lambda: chains(), ["algo.advantage=grpo"]),
}


ATTENTION = ["mask", "segments"]
"""The two ways a pack runs: in one pass under a tree mask, or segment by segment on cached keys and values."""


@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("case", CASES)
def test_packed_log_probs_equal_per_trajectory_ones(model64, case, attention):
    trajs = CASES[case][0]()
    batch = collate(trajs, PAD)
    groups = pack_groups(trajs, config(), model64)
    assert groups is not None
    plan = micro_batches(batch, torch.arange(len(trajs)), 16384, groups, attention)
    assert all(packed.segments == (attention == "segments") for _, packed in plan)
    with torch.no_grad():
        alone = batched_logprobs(model64, batch, micro_batches(batch, torch.arange(len(trajs)), 16384))
        packed = batched_logprobs(model64, batch, plan)
    assert alone.dtype == torch.float64
    mask = batch.token_turn >= 0
    assert relative_error(packed[mask], alone[mask]) <= 1e-12


@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
@pytest.mark.parametrize("case", CASES)
def test_a_packed_rl_step_makes_the_per_trajectory_update(model64, case, agg, attention):
    make, overrides = CASES[case]
    trajs = make()
    alone, alone_metrics = update(model64, trajs, "off", f"algo.loss_agg={agg}", *overrides)
    shared, metrics = update(model64, trajs, attention, f"algo.loss_agg={agg}", *overrides)
    for name in alone:
        assert relative_error(shared[name], alone[name]) <= 1e-6, name  # measured ~1e-14
    assert alone_metrics["forward_tokens"] == alone_metrics["context_tokens"]
    assert metrics["forward_tokens"] == distinct_prefixes(trajs) < metrics["context_tokens"]  # one pack a prompt
    assert metrics["loss"] == pytest.approx(alone_metrics["loss"], rel=1e-9)


def distinct_prefixes(trajs: list[Trajectory]) -> int:
    """Tokens a prompt's trajectories hold once shared prefixes are merged, counted by brute force."""
    return len({(t.group_id, tuple(t.context_ids[: k + 1])) for t in trajs for k in range(len(t.context_ids))})


@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("split", ["minibatches", "micro-batches"])
def test_split_minibatches_and_packs_split_by_the_token_budget_still_make_the_same_update(model64, split, attention):
    trajs = trees((2, 4, 2))
    knobs = ["algo.minibatch_size=7"] if split == "minibatches" else ["train.micro_batch_tokens=96"]
    alone, _ = update(
        model64, trajs, "off", "rollout.sampler=tree", "algo.advantage=tree_grpo", "algo.ppo_epochs=2", *knobs
    )
    shared, metrics = update(
        model64, trajs, attention, "rollout.sampler=tree", "algo.advantage=tree_grpo", "algo.ppo_epochs=2", *knobs
    )
    for name in alone:
        assert relative_error(shared[name], alone[name]) <= 1e-6, name  # measured ~1e-14
    assert metrics["forward_tokens"] < metrics["context_tokens"]


def test_eager_attention_takes_the_mask_as_scores_and_agrees(model64):
    trajs = trees((2, 2, 1))
    batch = collate(trajs, PAD)
    model64.set_attn_implementation("eager")
    groups = pack_groups(trajs, config(), model64)
    with torch.no_grad():
        alone = batched_logprobs(model64, batch, micro_batches(batch, torch.arange(len(trajs)), 16384))
        packed = batched_logprobs(model64, batch, micro_batches(batch, torch.arange(len(trajs)), 16384, groups))
    mask = batch.token_turn >= 0
    assert relative_error(packed[mask], alone[mask]) <= 1e-8  # eager's softmax is float32 (a pack's rows are longer)


def test_micro_batches_keep_a_prompt_whole_where_it_fits_and_split_it_where_not():
    trajs = trees((2, 4, 2), prompts=3)
    batch = collate(trajs, PAD)
    groups = [int(t.group_id[1:]) for t in trajs]
    rows = torch.arange(len(trajs))

    def packs(max_tokens: int) -> list[set[int]]:
        """The rows of each pack, over all micro-batches (each row in exactly one)."""
        plan = micro_batches(batch, rows, max_tokens, groups)
        assert sorted(r for micro, _ in plan for r in micro.tolist()) == list(range(len(trajs)))
        out: dict[tuple[int, int], set[int]] = {}
        for i, (micro, packed) in enumerate(plan):
            assert packed.input_ids.numel() <= max_tokens or packed.input_ids.shape[0] == 1
            for row, p in zip(micro.tolist(), packed.pack.squeeze(1).tolist(), strict=True):
                out.setdefault((i, p), set()).add(row)
        return list(out.values())

    whole = packs(16384)
    assert sorted(map(sorted, whole)) == [[r for r in range(len(trajs)) if groups[r] == g] for g in range(3)]
    tight = packs(96)
    assert len(tight) > 3 and all(len({groups[r] for r in pack}) == 1 for pack in tight)


def test_a_trajectory_joins_the_pack_holding_most_of_its_tokens_if_it_shares_enough():
    prompt = list(range(10, 30))  # 20 tokens
    answer = [Step([5, 6, 7, 8], [-1.0] * 4, "", "answer")]

    def row(prompt_ids: list[int], group: str = "g") -> Trajectory:
        return Trajectory("p", group, prompt_ids, answer)

    long_tail = Step(list(range(100, 160)), [-1.0] * 60, "", "answer")  # shares 20 of 80 tokens: 25%
    trajs = [
        row(prompt),
        row(prompt[:15] + [99] * 5),  # 15 of 24 shared with row 0: joins
        Trajectory("p", "g", prompt, [long_tail]),  # 20 of 80: exactly 25%, joins
        Trajectory("p", "g", prompt[:19], [long_tail]),  # 19 of 79: starts a pack of its own
        row(prompt, group="h"),  # another prompt's group: never packed with g
    ]
    batch = collate(trajs, PAD)
    packs = group_packs(batch, torch.arange(len(trajs)), [0, 0, 0, 0, 1], 16384)
    assert [members for members, _ in packs] == [[0, 1, 2], [3], [4]]
    assert [size for _, size in packs] == [24 + 9 + 60, 79, 24]
    assert micro_batches(batch, torch.tensor([3, 4]), 16384, [0, 0, 0, 0, 1])[0][1] is None  # nothing shared


def test_the_prefix_tree_merges_common_prefixes_only():
    tree = PrefixTree()
    assert tree.add([5, 6, 7]) == [0, 1, 2]
    assert tree.new_nodes([5, 6, 8, 9]) == 2 and tree.new_nodes([5, 6]) == 0
    assert tree.add([5, 6, 8, 9]) == [0, 1, 3, 4]
    assert tree.add([6]) == [5]  # same token, other position: a node of its own
    assert (tree.tokens, tree.depth, tree.parent) == ([5, 6, 7, 8, 9, 6], [0, 1, 2, 2, 3, 0], [-1, 0, 1, 1, 3, -1])


def test_models_whose_attention_ignores_a_custom_mask_train_each_trajectory_alone(model64):
    def model(**config):
        return SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa", **config))

    assert packing_unsupported(model()) is None
    assert packing_unsupported(model(sliding_window=4096, use_sliding_window=False)) is None
    assert "sliding-window" in packing_unsupported(model(sliding_window=4096))
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    assert "ignores a custom mask" in packing_unsupported(flash)
    assert pack_groups(chains(), config(), flash) is None
    assert pack_groups(chains(), config("train.shared_prefix=off"), model64) is None


@pytest.mark.parametrize("attention", ATTENTION)
def test_packs_through_the_chunked_output_head_give_the_same_log_probs_and_gradients(model64, attention):
    trajs = trees((2, 2, 1))
    batch = collate(trajs, PAD)
    weights = torch.randn(batch.response_ids.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    groups = pack_groups(trajs, config(), model64)

    def run(plan_groups) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model64.zero_grad(set_to_none=True)
        out = torch.zeros(batch.response_ids.shape, dtype=torch.float64)
        for rows, packed in micro_batches(batch, torch.arange(len(trajs)), 16384, plan_groups, attention):
            mb = batch.select(rows).trim()
            logp = token_logprobs(model64, mb, chunk_mib=0.01, packed=packed)  # 8 positions a chunk, recomputed
            (logp * weights[rows, : logp.shape[1]] * mb.response_mask).sum().backward()
            out[rows, : logp.shape[1]] = logp.detach()
        return out, {name: p.grad.clone() for name, p in model64.named_parameters()}

    (alone, alone_grads), (packed, packed_grads) = run(None), run(groups)
    mask = batch.token_turn >= 0
    assert relative_error(packed[mask], alone[mask]) <= 1e-12
    for name in alone_grads:
        assert relative_error(packed_grads[name], alone_grads[name]) <= 1e-10, name


def test_a_pack_splits_into_segments_at_its_branch_points():
    # rows [0 1 2 3 4], [0 1 2 5 6], [0 1 7]: nodes 0-4, then 5-6 under node 2, then 7 under node 1
    parent = [-1, 0, 1, 2, 3, 2, 5, 1]
    found = [(s.start, s.end, s.ancestors, s.level) for s in segments(parent)]
    assert found == [(0, 2, (), 0), (2, 3, (0, 1), 1), (3, 5, (0, 1, 2), 2), (5, 7, (0, 1, 2), 2), (7, 8, (0, 1), 1)]
    assert [(s.start, s.end) for s in segments([-1, 0, 1])] == [(0, 3)]  # one row: one segment


def test_auto_runs_long_packs_by_segments_and_short_ones_under_the_mask(monkeypatch):
    trajs = chains()
    batch = collate(trajs, PAD)
    groups = [int(t.group_id[1:]) for t in trajs]
    (_, packed), *_ = micro_batches(batch, torch.arange(len(trajs)), 16384, groups)
    width = packed.input_ids.shape[1]
    for threshold, by_segments in ((width, True), (width + 1, False)):
        monkeypatch.setattr(packing, "SEGMENT_TOKENS", threshold)
        plan = micro_batches(batch, torch.arange(len(trajs)), 16384, groups)
        assert [p.segments for _, p in plan] == [by_segments]


def test_packs_marked_for_segments_run_under_the_mask_with_gradient_checkpointing(model64):
    trajs = trees((2, 2, 1))
    batch = collate(trajs, PAD)
    groups = pack_groups(trajs, config(), model64)

    def grads(plan_groups, attention="mask"):
        model64.zero_grad(set_to_none=True)
        for rows, packed in micro_batches(batch, torch.arange(len(trajs)), 16384, plan_groups, attention):
            mb = batch.select(rows).trim()
            (token_logprobs(model64, mb, packed=packed) * mb.response_mask).sum().backward()
        return {name: p.grad.clone() for name, p in model64.named_parameters()}

    alone = grads(None)
    enable_checkpointing(model64)  # transformers turns the KV cache off in checkpointed training, which segments need
    shared = grads(groups, "segments")
    for name in alone:
        assert relative_error(shared[name], alone[name]) <= 1e-10, name
