"""The agent loop: token-exact trajectories, masks, and failures that end a step, never the batch."""

from __future__ import annotations

import random
import threading
import time

import pytest

from agentrl.engines import HFEngine, SamplingParams
from agentrl.tasks import demo_text

from .loop_helpers import EchoTool, ScriptedEngine, make_loop


def test_scripted_episode_is_token_exact(arith_task, tokenizer):
    problem = arith_task.problems("train", 1)[0]
    demo = arith_task.demo(problem)
    script = [demo_text(m, "fenced") for m in demo]
    assert script == [f"```python\n{problem.data['code']}\n```", f"\\boxed{{{problem.answer}}}"]
    loop = make_loop(arith_task, tokenizer, EchoTool(problem.answer))
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: demo}))
    enc = lambda s: tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    observation = f"\n```output\n{problem.answer}\n```\n"
    expected = enc(script[0]) + enc(observation) + enc(script[1]) + [tokenizer.eos_token_id]
    assert traj.response_ids == expected
    assert traj.context_ids == traj.prompt_ids + expected
    assert traj.response_mask == [1] * len(enc(script[0])) + [0] * len(enc(observation)) + [1] * (
        len(enc(script[1])) + 1
    )
    assert traj.token_turn == [0] * (len(enc(script[0])) + len(enc(observation))) + [1] * (len(enc(script[1])) + 1)
    assert (traj.answer, traj.reward, traj.done, traj.num_tool_calls) == (problem.answer, 1.0, "answer", 1)


def test_sampled_ids_and_logprobs_are_kept_exactly(arith_task, tokenizer, tiny_model):
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512, seed=0)
    loop = make_loop(arith_task, tokenizer, EchoTool(), max_turns=2, max_new_tokens=16)
    seen: dict[int, list[list[int]]] = {}  # trajectory -> what the model generated for it, turn by turn
    model_policy = loop.model_policy(engine, SamplingParams(16))

    def recording(trajs):
        for t in trajs:  # the context fed to the model is exactly the trajectory so far
            assert t.context_ids == t.prompt_ids + t.response_ids
        gens = model_policy(trajs)
        for t, g in zip(trajs, gens, strict=True):
            seen.setdefault(id(t), []).append(list(g.token_ids))
        return gens

    trajs = loop.run(arith_task.problems("train", 2), 3, recording)
    for t in trajs:
        assert [s.action_ids for s in t.steps] == seen[id(t)]
        assert all(len(s.action_logprobs) == len(s.action_ids) for s in t.steps)
        assert all(lp <= 0.0 for s in t.steps for lp in s.action_logprobs)
        assert len(t.response_mask) == len(t.response_ids) == len(t.token_turn)


def test_malformed_call_becomes_an_error_observation(arith_task, tokenizer):
    problem = arith_task.problems("train", 1)[0]
    tool = EchoTool()
    loop = make_loop(arith_task, tokenizer, tool)
    script = ["```python\nprint(1", f"\\boxed{{{problem.answer}}}"]
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: script}))
    assert traj.steps[0].error == "parse_error" and "unclosed" in traj.steps[0].observation
    assert tool.calls == [] and traj.reward == 1.0


def test_a_tool_that_raises_fails_its_step_not_the_batch(arith_task, tokenizer):
    problems = arith_task.problems("train", 3)
    loop = make_loop(arith_task, tokenizer, EchoTool(raises=True))
    trajs = loop.run(problems, 2, loop.scripted_policy({p.id: arith_task.demo(p) for p in problems}))
    assert len(trajs) == 6
    assert all(t.steps[0].error == "tool_error" and "sandbox exploded" in t.steps[0].observation for t in trajs)
    assert all(t.done == "answer" for t in trajs)


def test_unknown_tool_and_call_budget(arith_task, tokenizer):
    problem = arith_task.problems("train", 1)[0]
    loop = make_loop(arith_task, tokenizer, EchoTool(), max_tool_calls=1, max_turns=4)
    call = "```python\nprint(1)\n```"
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: [call, call, "\\boxed{1}"]}))
    assert [s.error for s in traj.steps] == [None, "budget", None]
    assert "budget" in traj.steps[1].observation


@pytest.mark.parametrize("max_turns", [1, 2])
def test_a_model_that_never_stops_is_cut_by_turns_and_tokens(arith_task, tokenizer, max_turns):
    problem = arith_task.problems("train", 1)[0]
    loop = make_loop(arith_task, tokenizer, EchoTool(), max_turns=max_turns, max_new_tokens=8)
    chatter = "```python\n" + "x = 1\n" * 50
    never = ["```python\nprint(1)\n```"] * 10  # calls forever
    (cut,) = loop.run([problem], 1, loop.scripted_policy({problem.id: [chatter] * 10}))
    (calls,) = loop.run([problem], 1, loop.scripted_policy({problem.id: never}))
    assert len(calls.steps) == max_turns and calls.done == "max_turns" and calls.reward == 0.0
    assert cut.steps[0].error == "parse_error"


def test_engine_budget_stops_a_runaway_generation(arith_task, tokenizer, tiny_model):
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512, seed=0)
    gens = engine.generate([[1, 2, 3], [4]], SamplingParams(max_new_tokens=5))
    assert all(len(g.token_ids) <= 5 for g in gens)
    assert all(g.finish_reason in ("eos", "length") for g in gens)


class SlowEchoTool(EchoTool):
    """Takes a random time per call, drawn from a seeded schedule."""

    def __init__(self, seed: int):
        super().__init__()
        self.lock, self.rng = threading.Lock(), random.Random(seed)

    def run(self, args, state):
        with self.lock:
            pause = self.rng.uniform(0.0, 0.05)
        time.sleep(pause)
        return super().run(args, state)


class _HalfState:
    """A trajectory's tool state: which half of the batch it is in, and how many calls it made."""

    def __init__(self, half: int):
        self.half, self.calls = half, 0

    def close(self) -> None:
        pass


class HandshakeTool(EchoTool):
    """With `halves`, each call returns only once the other half's next turn is being generated.

    The loop's halves take every other trajectory (states open in trajectory order) and generate in the order
    A1 B1 A2 B2 A3 B3, so half h's calls after its turn k return at the policy's call number 2k + h. No
    timing in it: a call waits for an event the loop must produce (10 s at most, should it never come)."""

    def __init__(self, halves: bool):
        super().__init__()
        self.halves, self.opened = halves, 0
        self.running, self.policy_calls, self.changed = 0, 0, threading.Condition()

    def open_state(self) -> _HalfState:
        self.opened += 1
        return _HalfState((self.opened - 1) % 2)

    def run(self, args, state):
        state.calls += 1
        returns_at = 2 * state.calls + state.half if self.halves else 0
        with self.changed:
            self.running += 1
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.policy_calls >= returns_at, 10.0)
            self.running -= 1
        return super().run(args, state)

    def policy_called(self, expect_running: bool) -> bool:
        """Whether a call is running as the policy is called (first waiting for one to start, if one should)."""
        with self.changed:
            if expect_running:
                self.changed.wait_for(lambda: self.running > 0, 10.0)
            self.policy_calls += 1
            self.changed.notify_all()
            return self.running > 0


@pytest.mark.parametrize("schedule", ["halves", "rounds"])
def test_one_half_generates_while_the_other_halfs_tools_run(arith_task, tokenizer, schedule):
    problems = arith_task.problems("train", 4)
    script = ["```python\nprint(1)\n```"] * 2 + ["\\boxed{1}"]
    tool = HandshakeTool(halves=schedule == "halves")
    loop = make_loop(arith_task, tokenizer, tool, schedule=schedule)
    scripted = loop.scripted_policy({p.id: script for p in problems})
    overlapped = []

    def policy(trajs):
        overlapped.append(tool.policy_called(expect_running=schedule == "halves" and 1 <= len(overlapped) <= 4))
        return scripted(trajs)

    trajs = loop.run(problems, 2, policy)
    assert all(t.done == "answer" and t.num_tool_calls == 2 for t in trajs)
    if schedule == "halves":  # A1 B1 A2 B2 A3 B3: from B1 to A3, the other half's calls are running
        assert overlapped == [False, True, True, True, True, False]
    else:
        assert overlapped == [False] * 3


@pytest.mark.parametrize("schedule", ["halves", "rounds"])
def test_sampled_tokens_do_not_depend_on_how_long_tools_take(arith_task, tokenizer, tiny_model, schedule):
    def sample(tool_seed: int):
        engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512, seed=3)
        tool = SlowEchoTool(tool_seed)
        loop = make_loop(arith_task, tokenizer, tool, max_turns=3, max_new_tokens=16, schedule=schedule)
        trajs = loop.run(arith_task.problems("train", 3), 3, loop.model_policy(engine, SamplingParams(16)))
        return [t.response_ids for t in trajs]

    assert sample(1) == sample(2)  # two draws of tool times


class BlockingFirstCall(EchoTool):
    """The first call waits (up to `patience` seconds) until the engine has handed back `turns` turns."""

    def __init__(self, engine: ScriptedEngine, turns: int, patience: float):
        super().__init__()
        self.engine, self.turns, self.patience = engine, turns, patience
        self.lock, self.first, self.unblocked = threading.Lock(), True, False

    def run(self, args, state):
        with self.lock:
            first, self.first = self.first, False
        if first:
            deadline = time.monotonic() + self.patience
            while self.engine.turns_returned < self.turns and time.monotonic() < deadline:
                time.sleep(0.005)
            self.unblocked = self.engine.turns_returned >= self.turns
        return super().run(args, state)


@pytest.mark.parametrize("schedule", ["continuous", "rounds"])
def test_continuously_the_others_run_to_the_end_while_one_tool_call_blocks(arith_task, tokenizer, schedule):
    problems = arith_task.problems("train", 3)
    script = ["```python\nprint(1)\n```"] * 2 + ["\\boxed{1}"]
    engine = ScriptedEngine(tokenizer, script)
    # the blocked call's own first turn, then the 5 other trajectories' 3 turns each
    tool = BlockingFirstCall(engine, 1 + 5 * 3, patience=10.0 if schedule == "continuous" else 0.3)
    loop = make_loop(arith_task, tokenizer, tool, schedule=schedule)
    trajs = loop.run(problems, 2, loop.model_policy(engine, SamplingParams(24)))
    assert tool.unblocked == (schedule == "continuous")  # in rounds, everyone waits for the slowest call
    enc = lambda s: tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    for t in trajs:
        assert (t.done, t.answer, t.num_tool_calls) == ("answer", "1", 2)
        assert [s.action_ids for s in t.steps] == [
            enc(script[0]),
            enc(script[1]),
            enc(script[2]) + [tokenizer.eos_token_id],
        ]
        assert t.context_ids == t.prompt_ids + t.response_ids


def test_continuous_batching_samples_what_rounds_sample_greedily(arith_task, tokenizer, tiny_model):
    def sample(schedule: str):
        engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 512, seed=3)
        loop = make_loop(arith_task, tokenizer, SlowEchoTool(1), max_turns=3, max_new_tokens=16, schedule=schedule)
        policy = loop.model_policy(engine, SamplingParams(16, greedy=True))
        return loop.run(arith_task.problems("train", 8), 2, policy), engine._streams

    (rounds, _), (continuous, streams) = sample("rounds"), sample("continuous")
    assert streams == 1  # the whole batch decoded in one stream
    for a, b in zip(rounds, continuous, strict=True):
        assert [s.action_ids for s in a.steps] == [s.action_ids for s in b.steps]
        assert [lp for s in a.steps for lp in s.action_logprobs] == pytest.approx(
            [lp for s in b.steps for lp in s.action_logprobs], abs=1e-4
        )
        assert b.context_ids == b.prompt_ids + b.response_ids


def test_a_tool_with_a_capacity_gets_the_batch_in_waves_no_larger(arith_task, tokenizer):
    problems = arith_task.problems("train", 3)
    script = ["```python\nprint(1)\n```", "\\boxed{1}"]
    tool = EchoTool()
    tool.capacity = 2  # e.g. a browser that keeps two pages open
    loop = make_loop(arith_task, tokenizer, tool)
    scripted = loop.scripted_policy({p.id: script for p in problems})
    calls: list[list[int]] = []

    def policy(trajs):
        calls.append([id(t) for t in trajs])
        return scripted(trajs)

    trajs = loop.run(problems, 2, policy)
    assert all(t.done == "answer" for t in trajs)
    seen = lambda t: [i for i, call in enumerate(calls) if id(t) in call]  # noqa: E731
    waves = [trajs[i : i + 2] for i in range(0, 6, 2)]
    for earlier, later in zip(waves, waves[1:], strict=False):
        assert max(max(seen(t)) for t in earlier) < min(min(seen(t)) for t in later)
    assert all(len(c) <= 2 for c in calls)


class ClosingState:
    def __init__(self):
        self.closed = 0

    def close(self):
        self.closed += 1


class StatefulEchoTool(EchoTool):
    """Hands each trajectory a state that counts its closes."""

    def __init__(self):
        super().__init__()
        self.states: list[ClosingState] = []

    def open_state(self):
        self.states.append(ClosingState())
        return self.states[-1]


def test_a_finished_trajectory_gives_its_tool_state_back_while_the_others_run(arith_task, tokenizer):
    short, long = arith_task.problems("train", 2)
    call = "```python\nprint(1)\n```"
    tool = StatefulEchoTool()
    loop = make_loop(arith_task, tokenizer, tool, max_turns=4)
    scripted = loop.scripted_policy({short.id: [call, "\\boxed{1}"], long.id: [call] * 3 + ["\\boxed{1}"]})
    closed_during: list[list[int]] = []

    def policy(trajs):
        closed_during.append([s.closed for s in tool.states])
        return scripted(trajs)

    trajs = loop.run([short, long], 1, policy)
    assert [t.done for t in trajs] == ["answer", "answer"]
    assert closed_during == [[0, 0], [0, 0], [1, 0], [1, 0]]  # the short one's, once it answered in turn 2
    assert [s.closed for s in tool.states] == [1, 1]  # each closed once: the end of the run closes nothing twice
