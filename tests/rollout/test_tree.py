"""Tree-search sampling: tree shape, token-exact shared prefixes, forked and replayed tool state, cost accounting."""

from __future__ import annotations

import itertools
import math

import pytest

from agentrl.config import TreeConfig
from agentrl.engines import HFEngine, SamplingParams
from agentrl.engines.base import Generation
from agentrl.rollout.tree import SamplingCost, TreeGrowth, expansion_nodes, sample_trees
from agentrl.sandbox import open_sandbox
from agentrl.tools.base import ToolResult
from agentrl.tools.python import PythonTool

from .loop_helpers import EchoTool, make_loop


def counting_policy(loop, scripts):
    """Turn j of every trajectory sends scripts[j], with {n} replaced by a number unique to that message."""
    counter = itertools.count(1)
    eos = loop.tokenizer.eos_token_id

    def policy(trajs):
        out = []
        for t in trajs:
            j = len(t.steps)
            text = scripts[j].format(n=next(counter))
            ids = loop.tokenizer.encode(text, add_special_tokens=False)
            final = j == len(scripts) - 1
            out.append(Generation(ids + [eos] * final, [-0.5] * (len(ids) + final), "eos"))
        return out

    return policy


CALLS = ["```python\nx = {n}\n```", "```python\nx = x * 10\nx\n```", "\\boxed{{{n}}}"]


def test_tree_shape_prefixes_and_cost(arith_task, tokenizer):
    problems = arith_task.problems("train", 2)
    loop = make_loop(arith_task, tokenizer, EchoTool())
    cfg = TreeConfig(trees=2, expansions=2, iterations=1, keep=3)
    kept, cost = sample_trees(loop, problems, counting_policy(loop, CALLS), cfg, seed=0)

    # M * (1 + N * L) = 6 leaves per prompt, all kept with K = 3 per tree
    assert cost.leaves == len(kept) == 12
    assert sorted({t.tree_id for t in kept}) == sorted(f"{p.id}/t{m}" for p in problems for m in range(2))
    by_tree = {tree: [t for t in kept if t.tree_id == tree] for tree in {t.tree_id for t in kept}}
    assert all(len(leaves) == 3 for leaves in by_tree.values())
    assert all(t.group_id == t.problem_id for t in kept)
    assert any(t.shared_steps for t in kept), "some leaves branch off inside a chain"
    for leaves in by_tree.values():
        for t in leaves:
            assert len(t.steps) == 3 and t.done == "answer"
            assert t.context_ids == t.prompt_ids + t.response_ids
            # a branch copies its prefix token for token from the leaf it branched off
            k = t.shared_steps
            prefix = [(s.action_ids, s.obs_ids) for s in t.steps[:k]]
            parents = [o for o in leaves if o.shared_steps < k]
            assert k == 0 or any([(s.action_ids, s.obs_ids) for s in o.steps[:k]] == prefix for o in parents)
    # the cost counts each generated message once: shared prefixes are not paid twice
    new_tokens = sum(len(s.action_ids) for t in kept for s in t.steps[t.shared_steps :])
    assert cost.generated_tokens == new_tokens < sum(t.num_generated for t in kept)
    assert cost.tool_calls == sum(s.tool is not None for t in kept for s in t.steps[t.shared_steps :])
    assert all(t.reward in (0.0, 1.0) and t.score == t.reward for t in kept)


def test_keep_prunes_leaves_but_cost_counts_them(arith_task, tokenizer):
    problems = arith_task.problems("train", 1)
    loop = make_loop(arith_task, tokenizer, EchoTool())
    kept, cost = sample_trees(
        loop, problems, counting_policy(loop, CALLS), TreeConfig(trees=2, expansions=3, keep=2), seed=1
    )
    assert len(kept) == 4 and cost.leaves == 8
    assert cost.as_metrics()["leaves_per_1k_tokens"] == pytest.approx(1000 * 8 / cost.generated_tokens)


def test_expansion_nodes_are_the_root_and_non_leaf_steps(arith_task, tokenizer):
    problems = arith_task.problems("train", 1)
    loop = make_loop(arith_task, tokenizer, EchoTool())
    branch = loop.start(problems[0], "g", "t")
    loop.advance([branch], counting_policy(loop, CALLS), snapshots=True)
    assert [d for _, d in expansion_nodes([branch])] == [-1, 0, 1]
    assert sorted(branch.snapshots) == [0, 1]
    child = loop.branch(branch, 0)
    assert child.traj.shared_steps == 1 and len(child.traj.steps) == 1
    loop.advance([child], counting_policy(loop, CALLS), snapshots=True)
    assert [d for b, d in expansion_nodes([branch, child]) if b is child] == [1]
    branch.close()
    child.close()


def test_trees_grow_on_the_continuous_schedule(arith_task, tokenizer, tiny_model):
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512, seed=0)
    loop = make_loop(arith_task, tokenizer, EchoTool(), max_new_tokens=16, schedule="continuous")
    policy = loop.model_policy(engine, SamplingParams(16))
    kept, cost = sample_trees(loop, arith_task.problems("train", 2), policy, TreeConfig(keep=3), seed=0)
    assert len(kept) == cost.leaves == 12
    assert engine._streams == 2  # the first chains in one stream, the expansions in another
    assert all(t.context_ids == t.prompt_ids + t.response_ids and t.steps for t in kept)


@pytest.fixture(scope="module")
def python_tool():
    with open_sandbox(backend="local", timeout=5.0, memory_mb=256) as sandbox:
        yield PythonTool(sandbox, timeout=5.0, max_chars=200)


def test_branches_fork_the_sandbox_state_at_their_node(arith_task, tokenizer, python_tool):
    """Step 0 sets x = n (unique per message); step 1 multiplies x by 10 and shows it. A branch from node 0
    must see its parent's x from step 0 exactly, and none of what the parent did later (x * 10)."""
    problems = arith_task.problems("train", 1)
    loop = make_loop(arith_task, tokenizer, python_tool)
    kept, _ = sample_trees(
        loop, problems, counting_policy(loop, CALLS), TreeConfig(trees=1, expansions=6, keep=7), seed=3
    )
    branches_at_1 = [t for t in kept if t.shared_steps == 1]
    assert branches_at_1, "seed 3 draws node 0 at least once"
    for t in kept:
        x = int(t.steps[0].action_text.split("= ")[1].split("\n")[0])
        assert t.steps[1].observation.split("\n")[2] == str(x * 10), t.steps[1].observation
    # replacement draws may pick the same node twice: each branch still has its own session
    assert len({id(t.steps[1]) for t in branches_at_1}) == len(branches_at_1)


class CountingState:
    """A tool state without fork(): the loop must rebuild it by replaying the prefix's calls."""

    def __init__(self):
        self.total = 0

    def close(self):
        self.total = math.nan


class CountingTool:
    name = "python"
    schema = {"type": "object"}

    def open_state(self):
        return CountingState()

    def run(self, args, state):
        state.total += int(args["code"].split("= ")[1].split("\n")[0].split(" ")[0]) if "x = " in args["code"] else 0
        return ToolResult(str(state.total))


def test_tools_without_fork_replay_the_prefix(arith_task, tokenizer):
    problems = arith_task.problems("train", 1)
    loop = make_loop(arith_task, tokenizer, CountingTool())
    scripts = ["```python\nx = {n}\n```", "```python\nx = 1000\n```", "\\boxed{{{n}}}"]
    kept, _ = sample_trees(loop, problems, counting_policy(loop, scripts), TreeConfig(trees=1, expansions=6, keep=7), 3)
    for t in kept:
        first = int(t.steps[0].observation.split("\n")[2])
        # the second call adds 1000 to the state the first call left: replayed, not fresh nor the parent's later
        assert int(t.steps[1].observation.split("\n")[2]) == first + 1000


def test_chain_cost_counts_every_token(arith_task, tokenizer):
    problems = arith_task.problems("train", 2)
    loop = make_loop(arith_task, tokenizer, EchoTool())
    trajs = loop.run(problems, 3, counting_policy(loop, CALLS))
    cost = SamplingCost.of(trajs)
    assert cost.leaves == 6 and cost.generated_tokens == sum(t.num_generated for t in trajs)
    assert cost.tool_calls == 12


class ClosingState:
    closed = 0

    def close(self):
        ClosingState.closed += 1


class StatefulEcho(EchoTool):
    def open_state(self):
        return ClosingState()


@pytest.mark.parametrize("sampler", ["chain", "tree"])
def test_branches_close_their_states_except_when_the_run_is_interrupted(arith_task, tokenizer, sampler):
    """On an error the states are closed; on Ctrl-C/SIGTERM they are left to their tools' own shutdown (closing
    each browser context behind still-running calls took minutes), and the interrupt goes through at once."""
    problems = arith_task.problems("train", 2)
    loop = make_loop(arith_task, tokenizer, StatefulEcho())
    scripted = counting_policy(loop, CALLS)

    def failing(error):
        def policy(trajs):
            if all(t.steps for t in trajs):  # the second turn
                raise error
            return scripted(trajs)

        return policy

    def sample(policy):
        if sampler == "chain":
            return loop.run(problems, 3, policy)
        return sample_trees(loop, problems, policy, TreeConfig(trees=2, expansions=2), seed=0)

    ClosingState.closed = 0
    sample(scripted)
    assert ClosingState.closed >= 6  # every branch's state, and any snapshots
    ClosingState.closed = 0
    with pytest.raises(RuntimeError):
        sample(failing(RuntimeError("model crashed")))
    assert ClosingState.closed == (6 if sampler == "chain" else 4)  # 2 x 3 chains, or 2 x 2 trees' first chains
    ClosingState.closed = 0
    with pytest.raises(KeyboardInterrupt):
        sample(failing(KeyboardInterrupt()))
    assert ClosingState.closed == 0


def test_an_allocation_deals_out_trees_numbered_on_within_each_group(arith_task, tokenizer):
    problems = arith_task.problems("train", 3)
    loop = make_loop(arith_task, tokenizer, EchoTool())
    cfg = TreeConfig(trees=2, expansions=1, iterations=1, keep=2)
    grow = TreeGrowth(loop, counting_policy(loop, CALLS), cfg, seed=5, step_tag="1/")
    first = grow(problems, [1, 0, 2])
    more = grow(problems, [2, 1, 0])
    trees = sorted({t.tree_id for t in first + more})
    assert trees == [
        "1/" + t
        for t in (
            f"{problems[0].id}/t0",
            f"{problems[0].id}/t1",
            f"{problems[0].id}/t2",
            f"{problems[1].id}/t0",
            f"{problems[2].id}/t0",
            f"{problems[2].id}/t1",
        )
    ]
    assert all(t.group_id == f"1/{t.problem_id}" for t in first + more)  # one group per prompt over the calls
    assert grow.cost.leaves == 6 * 2  # six trees of 1 + N * L = 2 leaves each, kept or pruned: both calls counted
    assert len(first + more) == 6 * 2  # K = 2 kept per tree


def test_uniform_tree_allocation_draws_the_trees_a_plain_tree_step_does(arith_task, tokenizer):
    problems = arith_task.problems("train", 2)
    cfg = TreeConfig(trees=2, expansions=2, iterations=1, keep=3)
    loop = make_loop(arith_task, tokenizer, EchoTool())
    plain, plain_cost = sample_trees(loop, problems, counting_policy(loop, CALLS), cfg, seed=11, step_tag="1/")
    loop = make_loop(arith_task, tokenizer, EchoTool())
    grow = TreeGrowth(loop, counting_policy(loop, CALLS), cfg, seed=11, step_tag="1/")
    dealt = grow(problems, [2, 2])
    assert [(t.tree_id, t.response_ids) for t in dealt] == [(t.tree_id, t.response_ids) for t in plain]
    assert grow.cost == plain_cost
