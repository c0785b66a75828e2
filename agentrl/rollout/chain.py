"""The agent loop: generate until a tool call ends or the model stops, run the call, feed the observation back.

Many trajectories advance together: generation is batched across the trajectories waiting for the model, and
their tool calls run concurrently on a thread pool (`rollout.schedule`: in rounds, in two halves that take
turns, or continuously, each trajectory rejoining the running decode batch as soon as its call returns).
Token-exact: a trajectory keeps the ids the model generated and the ids of each observation as fed back;
nothing is re-tokenized. The message format (agentrl.rollout.formats) renders the prompt, reads each message and
renders the results: a text convention, or the model's own chat template (native). A message may make several
calls (native format); they run in order and each result goes back as its own tool message. A call the parser
cannot read, a tool that fails or times out, or a sandbox that dies becomes an error observation on that step;
the batch goes on. A guard (optional) checks each tool call
before it runs and each observation or final message after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

from agentrl.config import RolloutConfig
from agentrl.engines.base import Engine, Generation, SamplingParams, StopRule, Stream
from agentrl.rollout.formats import build_format
from agentrl.rollout.parsers import FinalAnswer, ParseError, ToolCall
from agentrl.tasks import DemoMessage, Problem, Task
from agentrl.tools.base import Tool, ToolResult, ToolState, function_schema
from agentrl.trajectory import GuardEvent, Step, Trajectory

# Given the trajectories waiting for the model, return each one's next message. A policy may also have
# `stream() -> Stream | None` (ModelPolicy does), which the continuous schedule uses.
Policy = Callable[[list[Trajectory]], list[Generation]]
ToolStates = dict[str, ToolState | None]
REPLAY = "replay"
"""Snapshot marker for a tool state without `fork()`: rebuilt by replaying the prefix's calls."""


class StepGuard(Protocol):
    """Checks steps against a task's policies (agentrl.guard implements it). Must not raise."""

    def pre_check(self, traj: Trajectory, call: ToolCall) -> list[GuardEvent]:
        """Before `call` runs; `traj.steps[-1]` is the step that made the call."""
        ...

    def post_check(self, traj: Trajectory, step: Step) -> list[GuardEvent]:
        """After a step is complete: its observation is set (tool steps), or it holds the final message."""
        ...


@dataclass
class Branch:
    """A trajectory in progress with its tools' states; `snapshots[j]` is the tools' state after its step j."""

    problem: Problem
    traj: Trajectory
    states: ToolStates
    snapshots: dict[int, dict[str, ToolState | str | None]] = field(default_factory=dict)

    def release(self) -> None:
        """Close the live tool states (the trajectory is over); snapshots stay for branches still to grow."""
        states, self.states = self.states, {}
        _close_states(states)

    def close(self) -> None:
        self.release()
        for states in self.snapshots.values():
            _close_states(states)
        self.snapshots = {}


@dataclass
class ModelPolicy:
    """Samples the next messages from an engine. Each trajectory object names its conversation, so the engine may
    reuse the prefill of its earlier turns."""

    engine: Engine
    params: SamplingParams
    stop: StopRule

    def __call__(self, trajs: list[Trajectory]) -> list[Generation]:
        return self.engine.generate([t.context_ids for t in trajs], self.params, self.stop, [id(t) for t in trajs])

    def stream(self) -> Stream | None:
        """A continuous-batching stream, if the engine has one."""
        stream = getattr(self.engine, "stream", None)
        return stream(self.params, self.stop) if stream is not None else None


def _abandon(futures: list[Future], exc: BaseException) -> None:
    """After an error: drop the queued tool calls, let the running ones end (the branches' states close next, in
    closing_branches), unless on Ctrl-C."""
    pending = [f for f in futures if not f.cancel()]
    if not isinstance(exc, KeyboardInterrupt):
        wait(pending)


def _close_states(states: dict[str, ToolState | str | None]) -> None:
    for state in states.values():
        if state is not None and state != REPLAY:
            state.close()


@contextmanager
def closing_branches(branches: Callable[[], Iterable[Branch]]) -> Iterator[None]:
    """Close the branches' tool states when the block ends, however it ends, except on Ctrl-C or SIGTERM.

    Then the run is ending, and each tool closes all its states at once on its own way out (the browser its
    contexts, the sandbox its sessions): closing hundreds of them one by one, queued behind tool calls still
    running, took minutes on a loaded machine."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        _close_all(branches())
        raise
    _close_all(branches())


def _close_all(branches: Iterable[Branch]) -> None:
    for b in branches:
        b.close()


class AgentLoop:
    def __init__(
        self,
        task: Task,
        tokenizer,
        tools: dict[str, Tool],
        cfg: RolloutConfig,
        max_length: int,
        guard: StepGuard | None = None,
    ):
        self.task, self.tokenizer, self.tools, self.cfg = task, tokenizer, tools, cfg
        self.max_length = max_length
        self.guard = guard
        schemas = [function_schema(tool) for tool in tools.values()]
        self.format = build_format(cfg.format or task.spec.format, tokenizer, schemas, cfg.tool_parser)
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="agentrl-tool")
        capacities = [tool.capacity for tool in tools.values() if getattr(tool, "capacity", None)]
        self.wave_size: int | None = min(capacities, default=None)
        """Most trajectories `run` advances at once: the tools' smallest capacity (None: all of them)."""
        self.stop_rule: StopRule = self.format.stop_rule

    def model_policy(self, engine: Engine, params: SamplingParams) -> ModelPolicy:
        return ModelPolicy(engine, params, self.stop_rule)

    def scripted_policy(self, messages: dict[str, list[DemoMessage]]) -> Policy:
        """Replays fixed assistant messages (by problem id), written as the format writes them: expert
        demonstrations through the real loop."""

        def policy(trajs: list[Trajectory]) -> list[Generation]:
            out = []
            for t in trajs:
                script = messages[t.problem_id]
                message = script[len(t.steps)] if len(t.steps) < len(script) else ""
                ids = self.format.message_ids(message, final=len(t.steps) == len(script) - 1)
                out.append(Generation(ids, [0.0] * len(ids), "eos"))
            return out

        return policy

    def run(
        self, problems: Sequence[Problem], group_size: int | Sequence[int], policy: Policy, step_tag: str = ""
    ) -> list[Trajectory]:
        """`group_size` independent trajectories per problem (or `group_size[i]` of problem i), run to the end (in
        waves of `wave_size`) and scored. Each problem's trajectories form the group `step_tag + problem id`."""
        counts = [group_size] * len(problems) if isinstance(group_size, int) else group_size
        branches = [self.start(p, f"{step_tag}{p.id}") for p, n in zip(problems, counts, strict=True) for _ in range(n)]
        if not branches:
            return []
        wave = self.wave_size or len(branches)
        with closing_branches(lambda: branches):
            for i in range(0, len(branches), wave):
                self.advance(branches[i : i + wave], policy)
        trajs = [b.traj for b in branches]
        self.score(trajs, problems)
        return trajs

    def prompt_ids(self, problem: Problem) -> list[int]:
        """The prompt as the format renders it (native format also tells the task's `instructions:`)."""
        return self.format.prompt_ids(self.task.messages(problem, instructions=self.format.name == "native"))

    def start(self, problem: Problem, group_id: str, tree_id: str | None = None) -> Branch:
        prompt_ids = self.prompt_ids(problem)
        states = {name: tool.open_state() for name, tool in self.tools.items()}
        return Branch(problem, Trajectory(problem.id, group_id, prompt_ids, tree_id=tree_id), states)

    def branch(self, parent: Branch, depth: int) -> Branch:
        """A new branch sharing `parent`'s first `depth + 1` steps and its tools' state after them (-1: the root)."""
        if depth < 0:
            return self.start(parent.problem, parent.traj.group_id, parent.traj.tree_id)
        old = parent.traj
        steps = [replace(s, guard=list(s.guard)) for s in old.steps[: depth + 1]]
        penalty = sum(e.penalty for s in steps for e in s.guard)
        traj = Trajectory(old.problem_id, old.group_id, old.prompt_ids, steps, penalty=penalty, tree_id=old.tree_id)
        traj.shared_steps = depth + 1
        states = {}
        for name, snap in parent.snapshots[depth].items():
            if snap == REPLAY:
                states[name] = self._replay(name, traj.steps)
            else:
                states[name] = snap.fork() if snap is not None else None
        return Branch(parent.problem, traj, states)

    def advance(self, branches: Sequence[Branch], policy: Policy, snapshots: bool = False) -> None:
        """Run every branch until it ends. With `snapshots`, keep the tools' state after each non-final step."""
        active = [b for b in branches if not b.traj.done]
        open_stream = getattr(policy, "stream", None) if self.cfg.schedule == "continuous" else None
        stream = open_stream() if open_stream is not None else None
        if stream is not None:
            self._advance_continuously(active, stream, snapshots)
        else:
            self._advance_in_turns(active, policy, snapshots)

    def _advance_in_turns(self, active: list[Branch], policy: Policy, snapshots: bool) -> None:
        """Rounds, or (schedule halves) two halves that take turns: one half generates while the other's tool
        calls run. The generate calls keep a fixed order (first half, second half, first ...), each after its
        half's calls are done, so a seeded run samples the same tokens however long the tools take."""
        halves = [active[0::2], active[1::2]] if self.cfg.schedule == "halves" and len(active) > 1 else [active]
        acting: list[list[Future]] = [[] for _ in halves]
        try:
            while any(halves):
                for i, half in enumerate(halves):
                    for future in acting[i]:
                        future.result()
                    halves[i] = [b for b in half if not b.traj.done]
                    if halves[i]:
                        generations = policy([b.traj for b in halves[i]])
                        work = [(b, self._take_message(b.traj, g)) for b, g in zip(halves[i], generations, strict=True)]
                        acting[i] = [self.pool.submit(self._act, b, call, snapshots) for b, call in work]
        except BaseException as exc:
            _abandon([f for futures in acting for f in futures], exc)
            raise

    def _advance_continuously(self, active: list[Branch], stream: Stream, snapshots: bool) -> None:
        """Each branch's next turn joins the running decode batch as soon as its tool call returns; the model
        decodes while tools run, and no turn waits for the slowest trajectory of a round."""
        acting: dict[Future, int] = {}
        for i, b in enumerate(active):
            stream.add(i, b.traj.context_ids, id(b.traj))
        try:
            while stream or acting:
                if stream:
                    for i, gen in stream.step():
                        call = self._take_message(active[i].traj, gen)
                        acting[self.pool.submit(self._act, active[i], call, snapshots)] = i
                else:
                    wait(acting, return_when=FIRST_COMPLETED)
                for future in [f for f in acting if f.done()]:
                    i = acting.pop(future)
                    future.result()
                    if not active[i].traj.done:
                        stream.add(i, active[i].traj.context_ids, id(active[i].traj))
        except BaseException as exc:
            _abandon(list(acting), exc)
            raise
        finally:
            stream.close()

    def score(self, trajs: Sequence[Trajectory], problems: Sequence[Problem]) -> None:
        """The verifier's score of each answer; reward = score - guard penalties.

        In this thread: verifiers such as math-verify use signal-based timeouts, which only the main thread has.
        """
        by_id = {p.id: p for p in problems}
        scores: dict[tuple[str, str | None], float] = {}  # a group often repeats an answer: verify it once
        for t in trajs:
            key = (t.problem_id, t.answer)
            if key not in scores:
                scores[key] = self.task.verify(by_id[t.problem_id], t.answer)
            t.score = scores[key]
            t.reward = t.score - t.penalty

    def _take_message(self, traj: Trajectory, gen: Generation) -> list[ToolCall] | ParseError | None:
        """Append the model's message; return the calls to run (or parse error to report), None if it ended."""
        text = self.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
        parsed = self.format.read(text)
        step = Step(list(gen.token_ids), list(gen.logprobs), text, finish="answer")
        traj.steps.append(step)
        cut = gen.finish_reason == "length" and self.format.needs_end_of_turn
        if isinstance(parsed, FinalAnswer) or cut:  # a native message without its end-of-turn token ends the run
            step.finish = "answer" if gen.finish_reason == "eos" else "length"
            traj.answer = parsed.answer if isinstance(parsed, FinalAnswer) else None
            traj.done = "answer" if traj.answer is not None else "no_answer"
            return None
        if isinstance(parsed, ParseError):
            step.finish, step.error = "parse_error", "parse_error"
            return parsed
        step.finish, step.tool, step.tool_args = "tool_call", parsed[0].name, parsed[0].arguments
        step.calls = [{"name": c.name, "arguments": c.arguments} for c in parsed]
        if traj.num_tool_calls > self.cfg.max_tool_calls:
            step.error = "budget"
            return ParseError(f"tool-call budget of {self.cfg.max_tool_calls} calls is spent; answer now")
        return parsed

    def _act(self, branch: Branch, calls: list[ToolCall] | ParseError | None, snapshots: bool) -> None:
        """Finish the branch's newest step: guard, run its calls in order, feed the results back (in a worker
        thread)."""
        traj, step = branch.traj, branch.traj.steps[-1]
        try:
            if calls is None:
                self._guard_final(traj, step)
                return
            results = []
            for call in calls if isinstance(calls, list) else [calls]:
                result = self._guarded_call(traj, step, call, branch.states)
                if traj.done:
                    return
                if result.answer is not None:
                    traj.answer, traj.done = result.answer, "answer"
                    self._guard_final(traj, step)
                    return
                results.append((call.name if isinstance(call, ToolCall) else "error", result))
            self._feed_back(traj, step, results)
            if snapshots and not traj.done:
                branch.snapshots[len(traj.steps) - 1] = self._snapshot(branch.states)
        except Exception as exc:  # a bug in a tool or guard ends this trajectory, never the batch
            step.error = f"internal_error: {type(exc).__name__}: {exc}"
            traj.done = "error"
        finally:
            if traj.done:  # give the tools' resources (a browser page, a kernel) back to the trajectories running
                try:
                    branch.release()
                except Exception as exc:
                    step.error = step.error or f"internal_error: closing {type(exc).__name__}: {exc}"

    def _guarded_call(self, traj: Trajectory, step: Step, call: ToolCall | ParseError, states: ToolStates):
        if self.guard is not None and isinstance(call, ToolCall):
            events = self._record(traj, step, self.guard.pre_check(traj, call))
            if any(e.action == "terminate" for e in events):
                traj.done = "guard"
                return ToolResult("", error="blocked")
            blocked = [e for e in events if e.action == "block"]
            if blocked:
                reasons = "; ".join(f"{e.policy}: {e.message}" if e.message else e.policy for e in blocked)
                return ToolResult(f"blocked by policy ({reasons})", error="blocked")
        start = time.perf_counter()
        result = self._run_tool(call, states)
        step.seconds += time.perf_counter() - start
        return result

    def _run_tool(self, call: ToolCall | ParseError, states: ToolStates) -> ToolResult:
        if isinstance(call, ParseError):
            return ToolResult(f"error: {call.message}", error="parse_error")
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(self.tools) or "none"
            return ToolResult(f"error: unknown tool {call.name!r} (tools: {known})", error="unknown_tool")
        try:
            return tool.run(call.arguments, states[call.name])
        except Exception as exc:  # a broken tool fails its step, never the batch
            return ToolResult(f"error: tool {call.name} failed: {type(exc).__name__}: {exc}", error="tool_error")

    def _feed_back(self, traj: Trajectory, step: Step, results: list[tuple[str, ToolResult]]) -> None:
        fed = [(name, result.output) for name, result in results]
        step.observation = self.format.observation_text([output for _, output in fed])
        step.error = step.error or next((r.error for _, r in results if r.error), None)
        if self.guard is not None:
            events = self._record(traj, step, self.guard.post_check(traj, step))
            withheld = [e.policy for e in events if e.action in ("block", "terminate")]
            if withheld:
                fed = [(name, f"[output withheld by policy {', '.join(withheld)}]") for name, _ in fed]
                step.observation = self.format.observation_text([output for _, output in fed])
            if any(e.action == "terminate" for e in events):
                traj.done = "guard"
        step.obs_ids = self.format.observation_ids(fed)
        if traj.done:
            return
        if len(traj.steps) >= self.cfg.max_turns:
            traj.done = "max_turns"
        elif len(traj.context_ids) + self.cfg.max_new_tokens > self.max_length:
            traj.done = "max_length"

    def _guard_final(self, traj: Trajectory, step: Step) -> None:
        """Post-check the message that ended the trajectory; a blocking policy withholds its answer."""
        if self.guard is None:
            return
        events = self._record(traj, step, self.guard.post_check(traj, step))
        if any(e.action in ("block", "terminate") for e in events):
            traj.answer, traj.done = None, "guard"

    @staticmethod
    def _record(traj: Trajectory, step: Step, events: list[GuardEvent]) -> list[GuardEvent]:
        step.guard.extend(events)
        traj.penalty += sum(e.penalty for e in events)
        return events

    @staticmethod
    def _snapshot(states: ToolStates) -> dict[str, ToolState | str | None]:
        return {
            name: None if state is None else state.fork() if hasattr(state, "fork") else REPLAY
            for name, state in states.items()
        }

    def _replay(self, name: str, steps: list[Step]) -> ToolState | None:
        """A fresh state of tool `name` with the prefix's successful calls of it run again (outputs ignored)."""
        tool = self.tools[name]
        state = tool.open_state()
        for s in steps:
            for call in s.calls if s.error is None else []:
                if call["name"] == name:
                    tool.run(call["arguments"], state)
        return state
