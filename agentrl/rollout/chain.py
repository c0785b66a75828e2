"""The agent loop: generate until a tool call ends or the model stops, run the call, feed the observation back.

Many trajectories advance together: each round batches generation across every trajectory waiting for the
model, then runs their tool calls concurrently. Token-exact: a trajectory keeps the ids the model generated
and the ids of each observation as fed back; nothing is re-tokenized. A call the parser cannot read, a tool
that fails or times out, or a sandbox that dies becomes an error observation on that step; the batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from agentrl.config import RolloutConfig
from agentrl.engines.base import Engine, Generation, SamplingParams, StopRule
from agentrl.rollout.parsers import FORMATS, FinalAnswer, ParseError, ToolCall
from agentrl.tasks import Problem, Task
from agentrl.tools.base import Tool, ToolResult
from agentrl.trajectory import Step, Trajectory

# Given the trajectories waiting for the model, return each one's next message.
Policy = Callable[[list[Trajectory]], list[Generation]]


def chat_prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


class AgentLoop:
    def __init__(self, task: Task, tokenizer, tools: dict[str, Tool], cfg: RolloutConfig, max_length: int):
        self.task, self.tokenizer, self.tools, self.cfg = task, tokenizer, tools, cfg
        self.max_length = max_length
        self.format = FORMATS[task.spec.format]
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="agentrl-tool")
        self.stop_rule = StopRule(
            trigger_ids=frozenset(
                i for i in range(len(tokenizer)) if any(c in tokenizer.decode([i]) for c in self.format.stop_chars)
            ),
            check=lambda ids: self.format.call_complete(self.tokenizer.decode(ids, skip_special_tokens=True)),
        )

    def model_policy(self, engine: Engine, params: SamplingParams) -> Policy:
        return lambda trajs: engine.generate([t.context_ids for t in trajs], params, self.stop_rule)

    def scripted_policy(self, messages: dict[str, list[str]]) -> Policy:
        """Replays fixed assistant messages (by problem id): expert demonstrations through the real loop."""
        eos = self.tokenizer.eos_token_id

        def policy(trajs: list[Trajectory]) -> list[Generation]:
            out = []
            for t in trajs:
                script = messages[t.problem_id]
                text = script[len(t.steps)] if len(t.steps) < len(script) else ""
                ids = self.tokenizer.encode(text, add_special_tokens=False)
                final = len(t.steps) == len(script) - 1
                out.append(Generation(ids + [eos] if final else ids, [0.0] * (len(ids) + final), "eos"))
            return out

        return policy

    def run(self, problems: Sequence[Problem], group_size: int, policy: Policy, step_tag: str = "") -> list[Trajectory]:
        trajs, states = [], []
        for problem in problems:
            prompt_ids = chat_prompt_ids(self.tokenizer, self.task.messages(problem))
            for _ in range(group_size):
                trajs.append(Trajectory(problem.id, f"{step_tag}{problem.id}", prompt_ids))
                states.append({name: tool.open_state() for name, tool in self.tools.items()})
        by_id = {p.id: p for p in problems}
        active = list(range(len(trajs)))
        try:
            while active:
                generations = policy([trajs[i] for i in active])
                calls = []
                for i, gen in zip(active, generations, strict=True):
                    call = self._take_message(trajs[i], gen)
                    if call is not None:
                        calls.append((i, call))
                results = self.pool.map(lambda item: self._run_tool(item[1], states[item[0]]), calls)
                for (i, call), (result, seconds) in zip(calls, results, strict=True):
                    self._feed_back(trajs[i], call, result, seconds)
                active = [i for i in active if not trajs[i].done]
        finally:
            for state in states:
                for s in state.values():
                    if s is not None:
                        s.close()
        for t in trajs:
            t.reward = self.task.verify(by_id[t.problem_id], t.answer)
        return trajs

    def _take_message(self, traj: Trajectory, gen: Generation) -> ToolCall | ParseError | None:
        """Append the model's message; return the call to run (or parse error to report), None if it ended."""
        text = self.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
        parsed = self.format.parse(text)
        step = Step(list(gen.token_ids), list(gen.logprobs), text, finish="answer")
        traj.steps.append(step)
        if isinstance(parsed, FinalAnswer):
            step.finish = "answer" if gen.finish_reason == "eos" else "length"
            traj.answer = parsed.answer
            traj.done = "answer" if parsed.answer is not None else "no_answer"
            return None
        if isinstance(parsed, ParseError):
            step.finish, step.error = "parse_error", "parse_error"
            return parsed
        step.finish, step.tool, step.tool_args = "tool_call", parsed.name, parsed.arguments
        if traj.num_tool_calls > self.cfg.max_tool_calls:
            step.error = "budget"
            return ParseError(f"tool-call budget of {self.cfg.max_tool_calls} calls is spent; answer now")
        return parsed

    def _run_tool(self, call: ToolCall | ParseError, state: dict) -> tuple[ToolResult, float]:
        start = time.perf_counter()
        if isinstance(call, ParseError):
            return ToolResult(f"error: {call.message}", error="parse_error"), 0.0
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(self.tools) or "none"
            return ToolResult(f"error: unknown tool {call.name!r} (tools: {known})", error="unknown_tool"), 0.0
        try:
            result = tool.run(call.arguments, state[call.name])
        except Exception as exc:  # a broken tool fails its step, never the batch
            result = ToolResult(f"error: tool {call.name} failed: {type(exc).__name__}: {exc}", error="tool_error")
        return result, time.perf_counter() - start

    def _feed_back(self, traj: Trajectory, call, result: ToolResult, seconds: float) -> None:
        step = traj.steps[-1]
        step.observation = self.format.observation(result.output)
        step.obs_ids = self.tokenizer.encode(step.observation, add_special_tokens=False)
        step.error = step.error or result.error
        step.seconds = seconds
        if len(traj.steps) >= self.cfg.max_turns:
            traj.done = "max_turns"
        elif len(traj.context_ids) + self.cfg.max_new_tokens > self.max_length:
            traj.done = "max_length"
