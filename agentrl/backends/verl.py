"""agentrl's agent loop inside verl: the task's tool-call parsing, tools, sandbox sessions and guard, exactly as
`agentrl train` runs them, with verl's rollout servers (vLLM or SGLang, behind `server_manager.generate`) as the
model. Imports verl: load it only where verl is installed (the `[verl]` extra).

Registered in verl's agent-loop registry as "agentrl"; the config agentrl writes for verl also lists it in
`rollout.agent.agent_loop_config_path`, an entry that carries the run's agentrl config (`config_path`).

One verl sample, one call of `AgentrlAgentLoop.run`. verl's agent-loop worker awaits many of them at once on
its event loop. `run` hands agentrl's synchronous `AgentLoop.advance` to a thread; whenever the loop needs the
model, `ServerPolicy` puts one `generate` request per waiting trajectory on the event loop and waits for them,
so hundreds of trajectories share a worker and the rollout servers batch their requests.

Tree-GRPO sampling on verl (`rollout.sampler: tree`): verl repeats each prompt `rollout.n` = trees * keep
times, all in one worker (verl v1 runs a prompt's samples together). The first of them to start grows the
prompt's trees with agentrl's own `sample_trees`: each round advances every open branch at once, expanding a
node re-sends its prefix (prompt + the node's steps) to the server with the node's forked sandbox session, and
all branches of a tree carry the tree id as verl's request id, so verl's sticky routing sends them to the same
rollout server, whose prefix cache holds the shared prefix: an expansion costs only its new tokens. Each sample
then returns one kept leaf (sample `session_id` takes leaf `session_id`), with its tree id in `extra_fields`.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

from agentrl.backends.verl_rows import AGENT_NAME, output_fields, problem_from_info
from agentrl.config import Config, build_config, read_yaml
from agentrl.engines.base import Generation
from agentrl.errors import AgentRLError
from agentrl.guard import build_guard
from agentrl.models.loading import stop_token_ids
from agentrl.rollout.chain import AgentLoop
from agentrl.rollout.tree import sample_trees
from agentrl.tasks import Problem, Task, load_task
from agentrl.tools import build_tools
from agentrl.trajectory import Trajectory

STOP_STRINGS = {"fenced": ["```\n"], "hermes": ["</tool_call>"]}
"""Where the server may pause a message early (the end of a tool call); the loop's own rule decides the end.
Native messages end at the model's end-of-turn token only."""


class _UnscoredTask(Task):
    """The task as the loop sees it here: verl scores trajectories in its reward loop (`verl_reward`), not here."""

    def verify(self, problem: Problem, answer: str | None) -> float:
        return 0.0


@dataclass
class _Runtime:
    """What one worker process builds once per run: config, task, tools (sandbox, browser...), agentrl's loop."""

    cfg: Config
    loop: AgentLoop
    threads: ThreadPoolExecutor
    stack: ExitStack = field(default_factory=ExitStack)

    @classmethod
    def build(cls, config_path: str, tokenizer) -> _Runtime:
        cfg = build_config([read_yaml(config_path)])
        task = load_task(cfg.task)
        stack = ExitStack()
        tools = build_tools(task, cfg, stack)
        # a copy: verl pads with its tokenizer on the event loop while loop threads encode with this one
        loop = AgentLoop(
            _UnscoredTask(task.root, task.spec, task.module),
            copy.deepcopy(tokenizer),
            tools,
            cfg.rollout,
            cfg.model.max_length,
            guard=build_guard(task, cfg),
        )
        stack.callback(loop.pool.shutdown)
        threads = ThreadPoolExecutor(cfg.verl.loop_threads, thread_name_prefix="agentrl-verl")
        stack.callback(threads.shutdown)
        atexit.register(stack.close)
        return cls(cfg, loop, threads, stack)


_RUNTIMES: dict[str, _Runtime] = {}


def runtime(config_path: str, tokenizer) -> _Runtime:
    if config_path not in _RUNTIMES:
        _RUNTIMES[config_path] = _Runtime.build(config_path, tokenizer)
    return _RUNTIMES[config_path]


class ServerPolicy:
    """agentrl's `Policy` over verl's server manager: called from a loop thread, generates on the event loop.

    Each message ends where the local engine ends it: at EOS, once its tool call is complete (the loop's
    `StopRule`), or at the token budget. The server is also asked to pause at the format's closing marker; a
    pause before the call is complete continues from where it stopped, which samples the same distribution as
    an uninterrupted message.
    """

    def __init__(
        self,
        server_manager,
        sampling_params: dict[str, Any],
        loop: AgentLoop,
        event_loop: asyncio.AbstractEventLoop,
        request_id: Callable[[Trajectory], str],
        include_stop_str: bool = True,
    ):
        self.server, self.loop, self.event_loop, self.request_id = server_manager, loop, event_loop, request_id
        self.stops = STOP_STRINGS.get(loop.format.name, [])
        self.params = {**sampling_params, "stop": self.stops} if self.stops else dict(sampling_params)
        if self.stops and include_stop_str:
            self.params["include_stop_str_in_output"] = True
        self.eos = set(stop_token_ids(loop.tokenizer))
        self.seconds = 0.0
        self.server_fields: dict[str, Any] = {}

    def __call__(self, trajs: list[Trajectory]) -> list[Generation]:
        start = time.perf_counter()
        future = asyncio.run_coroutine_threadsafe(self._all(trajs), self.event_loop)
        generations = future.result()
        self.seconds += time.perf_counter() - start
        return generations

    async def _all(self, trajs: Sequence[Trajectory]) -> list[Generation]:
        return list(await asyncio.gather(*(self._one(t) for t in trajs)))

    async def _one(self, traj: Trajectory) -> Generation:
        context = traj.context_ids
        budget = max(0, min(self.loop.cfg.max_new_tokens, self.loop.max_length - len(context)))
        ids: list[int] = []
        logprobs: list[float] = []
        while len(ids) < budget:
            out = await self.server.generate(
                request_id=self.request_id(traj),
                prompt_ids=context + ids,
                sampling_params={**self.params, "max_tokens": budget - len(ids)},
            )
            self._note(out.extra_fields or {})
            new = list(out.token_ids)
            ids += new
            logprobs += list(out.log_probs) if out.log_probs else [0.0] * len(new)
            end = self._end(ids, budget)
            if end is not None:
                return Generation(ids[: end[0]], logprobs[: end[0]], end[1])
            paused = any(s in self.loop.tokenizer.decode(new) for s in self.stops)
            if not new or out.stop_reason == "aborted" or not paused:
                return Generation(ids, logprobs, "eos")  # the server ended it (an EOS id of the model's own)
        return Generation(ids, logprobs, "length")

    def _end(self, ids: list[int], budget: int) -> tuple[int, str] | None:
        """(length, finish reason) where the local engine would have stopped, if it would have by now."""
        rule = self.loop.stop_rule
        for i, token in enumerate(ids):
            if token in self.eos:
                return i + 1, "eos"
            if token in rule.trigger_ids and rule.check(ids[: i + 1]):
                return i + 1, "stop"
            if i + 1 >= budget:
                return i + 1, "length"
        return None

    def _note(self, fields: dict[str, Any]) -> None:
        """Keep the weight versions the servers report (verl's async trainers filter stale samples on them)."""
        for key, pick in (("min_global_steps", min), ("max_global_steps", max)):
            if fields.get(key) is not None:
                old = self.server_fields.get(key)
                self.server_fields[key] = fields[key] if old is None else pick(old, fields[key])


class _Trees:
    """The tree jobs of one worker process: the first sample of a prompt grows its trees, every sample takes a leaf."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}

    async def leaf(
        self, uid: str, session: int | None, n: int, grow: Callable[[], Awaitable[tuple[list[Trajectory], Any]]]
    ) -> tuple[Trajectory, Any]:
        """Leaf `session` (else the next in arrival order) of prompt `uid`'s trees, and what grew them."""
        job = self.jobs.get(uid)
        if job is None:
            job = self.jobs[uid] = {"task": asyncio.ensure_future(grow()), "arrived": 0, "done": 0}
        index = job["arrived"] if session is None else int(session)
        job["arrived"] += 1
        try:
            leaves, grower = await asyncio.shield(job["task"])
        finally:
            job["done"] += 1
            if job["done"] >= n:
                self.jobs.pop(uid, None)
        if index >= len(leaves):
            raise AgentRLError(f"sample {index} of prompt {uid} has no tree leaf: its trees kept {len(leaves)}")
        return leaves[index], grower


TREES = _Trees()


def _seed(uid: str) -> int:
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16)


@register(AGENT_NAME)
class AgentrlAgentLoop(AgentLoopBase):
    """verl agent loop "agentrl": runs one sample of an agentrl task (a chain, or one leaf of its prompt's trees)."""

    def __init__(self, *args, config_path: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if config_path is None:
            raise AgentRLError(
                "verl agent loop `agentrl` needs the run's agentrl config: launch with "
                "`agentrl train TASK --backend verl`, which lists it in rollout.agent.agent_loop_config_path"
            )
        self.config_path = config_path

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        rt = runtime(self.config_path, self.tokenizer)
        problem = problem_from_info(kwargs["extra_info"])
        uid = str(kwargs.get("uid", uuid.uuid4().hex))
        session = kwargs.get("session_id")
        event_loop = asyncio.get_running_loop()
        include_stop_str = self.rollout_config.name == "vllm"
        if rt.cfg.rollout.sampler == "tree" and not kwargs["extra_info"].get("agentrl_evaluation"):
            tree = rt.cfg.rollout.tree

            async def grow() -> tuple[list[Trajectory], ServerPolicy]:
                policy = ServerPolicy(
                    self.server_manager, sampling_params, rt.loop, event_loop, lambda t: t.tree_id, include_stop_str
                )
                kept, _cost = await event_loop.run_in_executor(
                    rt.threads, lambda: sample_trees(rt.loop, [problem], policy, tree, _seed(uid), f"{uid}/")
                )
                return kept, policy

            if self.rollout_config.n != tree.trees * tree.keep:
                raise AgentRLError(
                    f"verl's rollout.n={self.rollout_config.n}, but tree sampling keeps rollout.tree.trees * "
                    f"rollout.tree.keep = {tree.trees * tree.keep} leaves per prompt: they must be equal"
                )
            traj, policy = await TREES.leaf(uid, session, self.rollout_config.n, grow)
        else:
            request = f"{uid}/{session if session is not None else uuid.uuid4().hex}"
            policy = ServerPolicy(
                self.server_manager, sampling_params, rt.loop, event_loop, lambda t: request, include_stop_str
            )
            traj = await event_loop.run_in_executor(rt.threads, _chain, rt.loop, problem, uid, policy)
        return self._output(traj, policy.server_fields, policy.seconds)

    def _output(self, traj: Trajectory, server_fields: dict[str, Any], seconds: float) -> AgentLoopOutput:
        fields = output_fields(traj, self.rollout_config.response_length)
        if len(fields["prompt_ids"]) > self.rollout_config.prompt_length:
            raise AgentRLError(
                f"problem {traj.problem_id}: its prompt has {len(fields['prompt_ids'])} tokens, more than verl's "
                f"data.max_prompt_length={self.rollout_config.prompt_length}; raise it with --set "
                "verl.overrides.data.max_prompt_length=N"
            )
        fields["extra_fields"].update(server_fields)
        metrics = {"generate_sequences": seconds, "tool_calls": sum(s.seconds for s in traj.steps)}
        return AgentLoopOutput(**fields, metrics=metrics)


class AgentrlRewardManager(NaiveRewardManager):
    """verl's naive reward manager, scoring each trajectory with its own copy of the row's `extra_info`.

    verl 0.9.1 gives every sample of a prompt the same `extra_info` dict and merges each trajectory's
    `extra_fields` into it while other samples of the prompt are being scored; agentrl's reward function reads
    its own trajectory's answer and guard penalty from there, so each row gets a private copy first.
    """

    async def run_single(self, data):
        data = data[-1:]
        info = data.non_tensor_batch.get("extra_info")
        if info is not None:
            data.non_tensor_batch["extra_info"] = np.array([dict(info[0] or {})], dtype=object)
        return await super().run_single(data)


def _chain(loop: AgentLoop, problem: Problem, group_id: str, policy: ServerPolicy) -> Trajectory:
    """One trajectory of `problem`, run to its end (in a loop thread)."""
    branch = loop.start(problem, group_id)
    try:
        loop.advance([branch], policy)
    finally:
        branch.close()
    return branch.traj
