"""Scripted model messages for arith-python, shared by the local side and the verl side of the backend tests.

Each problem has a few behaviours (`variants`): correct, wrong, a late code call, a malformed call, a call a
guard policy blocks, no call at all. `ScriptedServer` serves them to verl's agent loop through verl's
server-manager interface; `VariantPolicy` replays them through agentrl's local loop, so the two can be compared
token by token. Imported by tests in the main venv and by `verl_side.py` in the verl venv: no verl import here.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from agentrl.engines.base import Generation
from agentrl.tasks import Problem
from agentrl.trajectory import GuardEvent, Step, Trajectory

BUNDLED_ARITH = Path(__file__).resolve().parents[2] / "tasks" / "arith-python"
NO_OS_POLICY = {
    "id": "no-os",
    "description": "Never import os in the python tool.",
    "checker": {"type": "python_ast", "imports": ["os"]},
    "action": "block",
    "penalty": 0.25,
}


def guarded_task(root: Path) -> Path:
    """arith-python with one guard policy (`NO_OS_POLICY`): `import os` is blocked, reward - 0.25."""
    shutil.copytree(BUNDLED_ARITH, root)
    spec = yaml.safe_load((root / "task.yaml").read_text())
    spec["policies"] = [NO_OS_POLICY]
    (root / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def variants(data: dict[str, Any], native: bool = False) -> list[list[str]]:
    """The assistant messages of each behaviour on one arith-python problem (fenced, or hermes as Qwen writes it)."""

    def call(code: str) -> str:
        if native:
            return f"<tool_call>\n{json.dumps({'name': 'python', 'arguments': {'code': code}})}\n</tool_call>"
        return f"```python\n{code}\n```"

    right, wrong = f"\\boxed{{{data['answer']}}}", f"\\boxed{{{int(data['answer']) + 1}}}"
    broken = "<tool_call>\n{print(1)\n</tool_call>" if native else "```python\nprint(1"
    return [
        [call(data["code"]), right],
        [call(data["code"]), wrong],
        ["Let me set up first.\n" + call("x = 2"), call(data["code"]), right],
        [broken, right],
        [call("import os\nprint(os.sep)"), call(data["code"]), right],
        [right],
    ]


def message(tokenizer, script: Sequence[str], turn: int, native: bool = False) -> tuple[list[int], list[float]]:
    """Token ids and made-up log-probs of message `turn`; the last message ends with EOS, every native one too
    (the fixtures' EOS is their end-of-turn token)."""
    text = script[turn] if turn < len(script) else ""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if native or turn >= len(script) - 1:
        ids = ids + [tokenizer.eos_token_id]
    return ids, [-0.01 * (i + 1) for i in range(len(ids))]


class VariantPolicy:
    """agentrl `Policy`: the k-th trajectory of a problem (in order of first sight) plays variant k (cycling)."""

    def __init__(self, tokenizer, problems: Sequence[Problem], native: bool = False):
        self.tokenizer, self.native = tokenizer, native
        self.scripts = {p.id: variants(p.data, native) for p in problems}
        self.assigned: dict[int, int] = {}
        self.count: Counter[str] = Counter()

    def variant_of(self, traj: Trajectory) -> int:
        if id(traj) not in self.assigned:
            self.assigned[id(traj)] = self.count[traj.problem_id]
            self.count[traj.problem_id] += 1
        return self.assigned[id(traj)]

    def __call__(self, trajs: list[Trajectory]) -> list[Generation]:
        out = []
        for t in trajs:
            scripts = self.scripts[t.problem_id]
            ids, logprobs = message(
                self.tokenizer, scripts[self.variant_of(t) % len(scripts)], len(t.steps), self.native
            )
            out.append(Generation(ids, logprobs, "eos"))
        return out


class ScriptedServer:
    """verl's server manager (`await generate(request_id, prompt_ids=..., sampling_params=...) -> TokenOutput`).

    A context it has not answered before starts a problem: it plays the next variant in turn. A context that
    continues one of its own answers plays on the variant it answered. Asked again for a context it has
    answered (a tree expanding a node), it plays the next variant that agrees with that node's history.
    """

    def __init__(self, tokenizer, problems: Sequence[Problem], token_output, start: int = 0, native: bool = False):
        self.tokenizer, self.token_output, self.start, self.native = tokenizer, token_output, start, native
        self.scripts = {p.prompt: variants(p.data, native) for p in problems}
        self.answered: list[tuple[tuple[int, ...], str, int, int]] = []  # (context + message, prompt, variant, turn)
        self.visits: Counter[tuple[int, ...]] = Counter()
        self.requests: list[dict[str, Any]] = []

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kwargs):
        self.requests.append({"request_id": request_id, "context": len(prompt_ids), "params": dict(sampling_params)})
        context = tuple(prompt_ids)
        prompt, candidates, turn = self._state(context)
        variant = candidates[(self.visits[context] + self.start) % len(candidates)]
        self.visits[context] += 1
        ids, logprobs = message(self.tokenizer, self.scripts[prompt][variant], turn, self.native)
        self.answered.append((context + tuple(ids), prompt, variant, turn))
        return self.token_output(token_ids=ids, log_probs=logprobs, stop_reason="completed")

    def _state(self, context: tuple[int, ...]) -> tuple[str, list[int], int]:
        """(prompt, variants that fit the history, next turn) for a context."""
        known = [a for a in self.answered if len(a[0]) <= len(context) and context[: len(a[0])] == a[0]]
        if not known:
            text = self.tokenizer.decode(list(context))
            prompt = next(p for p in self.scripts if p in text)
            return prompt, list(range(len(self.scripts[prompt]))), 0
        _, prompt, variant, turn = max(known, key=lambda a: len(a[0]))
        scripts = self.scripts[prompt]
        fits = [k for k in range(len(scripts)) if scripts[k][: turn + 1] == scripts[variant][: turn + 1]]
        return prompt, fits, turn + 1


def trajectory_from_row(
    uid: str,
    prompt_ids: list[int],
    response_ids: list[int],
    response_logprobs: list[float],
    structure: dict[str, Any],
    score: float,
) -> Trajectory:
    """A verl row (agentrl's agent loop output) as the agentrl `Trajectory` it was made from."""
    steps, pos = [], 0
    for s in structure["steps"]:
        action = slice(pos, pos + s["actions"])
        obs = slice(action.stop, action.stop + s["obs"])
        pos = obs.stop
        steps.append(
            Step(
                action_ids=response_ids[action],
                action_logprobs=response_logprobs[action],
                action_text="",
                finish=s["finish"],
                tool=s["tool"],
                tool_args=s["args"],
                obs_ids=response_ids[obs],
                error=s["error"],
                seconds=s["seconds"],
                guard=[GuardEvent(**e) for e in s["guard"]],
            )
        )
    return Trajectory(
        problem_id=structure["problem_id"],
        group_id=uid,
        prompt_ids=prompt_ids,
        steps=steps,
        answer=structure["answer"],
        score=score,
        penalty=structure["penalty"],
        reward=score - structure["penalty"],
        done=structure["done"],
        tree_id=structure["tree_id"],
        shared_steps=structure["shared_steps"],
    )
