"""`agentrl tasks validate`: check a task folder the way training will use it, and say what to fix.

Every check goes through the code training runs (TaskSpec and Config, `load_task`, `build_tools`, the
AgentLoop with a scripted policy, the task's own verifier), so a task that validates starts training, and
every failure names a file and, where there is one, a line. A check whose prerequisite failed is skipped.
The task's task.py runs on the host, as in training; text the scripted policies write reaches only the
task's tools (the sandbox), never the host.
"""

from __future__ import annotations

import difflib
import inspect
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentrl.config import Config, merge
from agentrl.errors import AgentRLError
from agentrl.rollout.chain import AgentLoop, StepGuard
from agentrl.task_authoring.locate import describe, key_line, located_errors
from agentrl.task_authoring.report import Check, Report, Status, end_hint, trajectory_story
from agentrl.tasks import BUNDLED_TASKS, DemoMessage, Problem, Task, TaskSpec, demo_calls, demo_text, load_task
from agentrl.trajectory import Trajectory

SIGNATURES = {"generate": ("split", "n", "seed"), "verify": ("problem", "answer"), "demo": ("problem",)}
PROBE_ANSWERS = (None, "", "0", "not an answer", "\\boxed{}", "x" * 2000)
"""Final answers every verifier must score without raising (the problem's own answer is added)."""
OVERLAP_SAMPLE = 64
"""Problems per split compared for train/test overlap."""
GENERATE_TIMEOUT_S = 60.0


@contextmanager
def _time_limit(seconds: float, message: str) -> Iterator[None]:
    """Raise TimeoutError where the code is stuck after `seconds` (main thread only; elsewhere no limit).

    A generate() that loops forever (e.g. drawing from a finite pool until in_split accepts enough) is a
    common first-task bug: the error then names the line it was stuck on.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Failure(Exception):
    def __init__(self, summary: str, details: list[str] | None = None):
        super().__init__(summary)
        self.summary, self.details = summary, details or []


_POLICY_KEY = re.compile(r"policies\[(\d+)\](?: \([^)]*\))?((?:\.\w+)*)")


def _load_guard(task: Task, cfg: Config) -> tuple[int, StepGuard | None]:
    """(number of valid policies, the guard training would build); raises AgentRLError on a bad policy.

    HOOK: policies are checked by agentrl.guard (`task_policies`, `build_guard`); without that package
    they cannot be, and (-1, None) says so.
    """
    try:
        from agentrl.guard import build_guard, task_policies
    except ImportError:
        return -1, None
    return len(task_policies(task)), build_guard(task, cfg)


class _Validator:
    def __init__(self, root: Path, problems: int, seed: int, stack: ExitStack):
        self.root, self.n, self.seed, self.stack = root, problems, seed, stack
        self.yaml_path, self.py_path = root / "task.yaml", root / "task.py"
        self.text = ""
        self.data: dict = {}
        self.spec: TaskSpec | None = None
        self.cfg: Config | None = None
        self.task: Task | None = None
        self.tools: dict | None = None
        self.problems: list[Problem] = []
        self.loop: AgentLoop | None = None
        self.guard: StepGuard | None = None
        self.demos: dict[str, list[str]] = {}
        self.demo_score = 0.0
        self.expert_answers: dict[str, str | None] = {}

    def steps(self) -> list[tuple[str, tuple[str, ...], Callable[[], str | tuple[Status, str, list[str]]]]]:
        return [
            ("task.yaml", (), self.read_yaml),
            ("schema", ("task.yaml",), self.check_schema),
            ("task.py", ("schema",), self.load_module),
            ("tools", ("task.py",), self.check_tools),
            ("generate", ("task.py",), self.check_generate),
            ("verify", ("generate",), self.check_verify),
            ("policies", ("schema",), self.check_policies),
            ("demos", ("verify", "tools", "policies"), self.check_demos),
            ("dry rollouts", ("demos",), self.dry_rollouts),
        ]

    def run(self) -> list[Check]:
        checks: dict[str, Check] = {}
        for name, needs, step in self.steps():
            blocked = [n for n in needs if checks[n].status in ("fail", "skip")]
            if blocked:
                checks[name] = Check(name, "skip", f"needs {', '.join(blocked)}")
                continue
            try:
                out = step()
            except _Failure as failure:
                checks[name] = Check(name, "fail", failure.summary, failure.details)
                continue
            status, summary, details = out if isinstance(out, tuple) else ("ok", out, [])
            checks[name] = Check(name, status, summary, details)
        return list(checks.values())

    # ---------------------------------------------------------------- task.yaml
    def read_yaml(self) -> str:
        if not self.yaml_path.is_file():
            raise _Failure(f"{self.yaml_path} is missing", ["`agentrl tasks new NAME` writes a commented one"])
        self.text = self.yaml_path.read_text()
        try:
            data = yaml.safe_load(self.text)
        except yaml.YAMLError as exc:
            mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            if context is not None and mark is not None and context.line != mark.line:
                problem += f" ({exc.context} at line {context.line + 1})"
            raise _Failure("malformed YAML", [f"{self.yaml_path}{line}: {problem}"]) from None
        if not isinstance(data, dict):
            raise _Failure("not a mapping", [f"{self.yaml_path}:1: the top level must be a mapping of task keys"])
        self.data = data
        return "parsed"

    def check_schema(self) -> str:
        errors: list[str] = []
        try:
            self.spec = TaskSpec.model_validate(self.data)
        except ValidationError as exc:
            errors = located_errors(exc, self.text, self.yaml_path, TaskSpec)
        else:
            try:
                self.cfg = Config.model_validate(merge({"task": str(self.root)}, self.spec.defaults))
            except ValidationError as exc:
                errors = located_errors(exc, self.text, self.yaml_path, Config, prefix=("defaults",))
            for dest, source in self.spec.sandbox.files.items():
                if not (self.root / source).is_file():
                    line = key_line(self.text, ("sandbox", "files", dest))
                    errors.append(f"{self.yaml_path}:{line}: sandbox.files.{dest}: no file {self.root / source}")
        if errors:
            raise _Failure(f"{len(errors)} error(s) in task.yaml", errors)
        spec = self.spec
        return f"name {spec.name}, tools {', '.join(spec.tools) or 'none'}, format {spec.format}"

    # ---------------------------------------------------------------- task.py
    def load_module(self) -> str:
        try:
            self.task = load_task(str(self.root))
        except AgentRLError as exc:
            cause = exc.__cause__
            details = [describe(cause, self.py_path) if cause is not None else str(exc)]
            if not self.py_path.is_file():
                details.append("`agentrl tasks new NAME` writes a commented template")
            elif cause is None:
                details.append("task.py defines " + ", ".join(f"{f}({', '.join(a)})" for f, a in SIGNATURES.items()))
            raise _Failure("cannot load task.py", details) from None
        bad = []
        for name, params in SIGNATURES.items():
            fn = getattr(self.task.module, name)
            try:
                inspect.signature(fn).bind(*params)
            except TypeError:
                bad.append(f"{self.py_path}: {name}{inspect.signature(fn)} should be {name}({', '.join(params)})")
            except ValueError:  # builtins and C functions have no signature to check
                pass
        if bad:
            raise _Failure("wrong function signature(s)", bad)
        return ", ".join(SIGNATURES)

    def _call(self, fn: Callable, *args: Any, label: str | None = None) -> Any:
        """fn(*args); an exception fails the check, naming the call and the line of task.py that raised."""
        try:
            return fn(*args)
        except Exception as exc:
            call = label or f"{fn.__name__}({', '.join(map(repr, args))})"
            raise _Failure(f"{fn.__name__}() raised", [f"{call}: {describe(exc, self.py_path)}"]) from None

    # ---------------------------------------------------------------- tools
    def check_tools(self) -> str:
        from agentrl.tools import TOOL_BUILDERS, build_tools, check_tool_names

        try:
            check_tool_names(self.task)
        except AgentRLError:
            known = ", ".join(sorted(TOOL_BUILDERS))
            details = []
            for name in self.spec.tools:
                if name not in TOOL_BUILDERS:
                    close = difflib.get_close_matches(name, list(TOOL_BUILDERS), n=1)
                    hint = f"; did you mean {close[0]}?" if close else ""
                    line = key_line(self.text, ("tools", name))
                    details.append(f"{self.yaml_path}:{line}: tools.{name}: unknown tool{hint} (known: {known})")
            raise _Failure("unknown tool(s)", details) from None
        try:
            self.tools = build_tools(self.task, self.cfg, self.stack)
        except AgentRLError as exc:
            raise _Failure("a tool cannot be built", [str(exc)]) from None
        except Exception as exc:
            raise _Failure("a tool cannot be built", [f"{type(exc).__name__}: {exc}"]) from None
        return ", ".join(self.tools) or "none"

    # ---------------------------------------------------------------- generate
    def _raw(self, split: str, n: int, seed: int) -> list:
        call = f"generate({split!r}, {n}, {seed})"
        with _time_limit(GENERATE_TIMEOUT_S, f"{call} did not return in {GENERATE_TIMEOUT_S:g} s"):
            raw = self._call(self.task.module.generate, split, n, seed)
        if not isinstance(raw, list | tuple):
            raise _Failure("generate() must return a list", [f"{call} returned {type(raw).__name__}"])
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or "answer" not in item:
                got = sorted(item) if isinstance(item, dict) else type(item).__name__
                raise _Failure(
                    "generate() must return dicts with a str prompt and an answer",
                    [f"{call}[{i}] is {got}"],
                )
        return list(raw)

    def check_generate(self) -> str | tuple[Status, str, list[str]]:
        warnings = []
        for split in ("train", "test"):
            first = self._raw(split, self.n, self.seed)
            if not first:
                raise _Failure("generate() returned no problems", [f"generate({split!r}, {self.n}, {self.seed}) -> []"])
            if self._raw(split, self.n, self.seed) != first:
                raise _Failure(
                    "generate() is not deterministic",
                    [
                        f"two calls of generate({split!r}, {self.n}, {self.seed}) gave different problems: "
                        "draw every random choice from random.Random(seed), not the global random state"
                    ],
                )
            if len(first) < self.n:
                warnings.append(f"generate({split!r}, {self.n}, {self.seed}) gave only {len(first)} problems")
            ids = [str(p["id"]) for p in first if "id" in p]
            if len(set(ids)) < len(ids):
                raise _Failure("problem ids repeat", [f"generate({split!r}, ...) repeats ids: {sorted(ids)}"])
        if self._raw("train", self.n, self.seed + 1) == self._raw("train", self.n, self.seed):
            warnings.append("generate() ignores its seed: seeds 0 and 1 give the same problems")
        train, test = (self._raw(s, OVERLAP_SAMPLE, self.seed) for s in ("train", "test"))
        shared = sorted({p["prompt"] for p in train} & {p["prompt"] for p in test})
        if shared:
            raise _Failure(
                "train and test share problems",
                [
                    f"{len(shared)} of {OVERLAP_SAMPLE} prompts are in both splits, e.g. {shared[0]!r}: "
                    "pick each split's problems with agentrl.tasks.in_split(key, split)"
                ],
            )
        self.problems = self.task.problems("train", self.n, self.seed)
        summary = f"{self.n} train and {self.n} test problems, deterministic; no prompt in both splits"
        return ("warn", summary, warnings) if warnings else summary

    # ---------------------------------------------------------------- verify
    def check_verify(self) -> str:
        verify = self.task.module.verify
        for problem in self.problems:
            for answer in (*PROBE_ANSWERS, problem.answer):
                score = self._call(verify, problem.data, answer, label=f"verify(problem {problem.id}, {answer!r:.60})")
                if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
                    raise _Failure(
                        "verify() must return a number in [0, 1]",
                        [f"verify(problem {problem.id}, {answer!r:.60}) returned {score!r}"],
                    )
        return (
            f"scores every probe answer (none, empty, junk, the reference) in [0, 1] on {len(self.problems)} problems"
        )

    # ---------------------------------------------------------------- demos
    def _tokenizer(self):
        from agentrl.models.loading import load_pretrained
        from agentrl.models.tiny import train_tokenizer

        if self.cfg.model.path:
            return load_pretrained(self.cfg.model.path)[1]
        try:
            texts = self.task.vocabulary_sample
        except Exception as exc:
            raise _Failure("cannot build the tokenizer's text sample", [describe(exc, self.py_path)]) from None
        return train_tokenizer(texts, self.cfg.model.vocab_size)

    def _run(self, problems: list[Problem], scripts: dict[str, list[DemoMessage]], tag: str) -> list[Trajectory]:
        try:
            return self.loop.run(problems, 1, self.loop.scripted_policy(scripts), step_tag=tag)
        except AgentRLError as exc:  # the verifier raised on what the loop produced
            cause = exc.__cause__
            detail = describe(cause, self.py_path) if cause else str(exc)
            raise _Failure("verify() raised in a rollout", [detail]) from None

    def check_demos(self) -> str | tuple[Status, str, list[str]]:
        for p in self.problems:
            script = self._call(self.task.module.demo, p.data, label=f"demo(problem {p.id})")
            if not isinstance(script, list | tuple) or not script:
                raise _Failure(
                    "demo() must return a non-empty list of messages", [f"demo(problem {p.id}) -> {script!r:.80}"]
                )
            for message in script:
                try:
                    demo_calls(message, f"demo(problem {p.id})")
                except AgentRLError as exc:
                    raise _Failure("demo() returned a malformed message", [str(exc)]) from None
            self.demos[p.id] = list(script)
        tokenizer = self._tokenizer()
        cfg = self.cfg
        self.loop = AgentLoop(self.task, tokenizer, self.tools, cfg.rollout, cfg.model.max_length, guard=self.guard)
        self.stack.callback(self.loop.pool.shutdown)
        trajs = self._run(self.problems, self.demos, "demo/")
        failed = [t for t in trajs if not t.correct]
        if failed:
            details = []
            for t in failed[:3]:
                hint = end_hint(t, self.cfg)
                details.append(
                    f"problem {t.problem_id}: score {t.score:.2f} for answer {t.answer!r}"
                    + (f": {hint}" if hint else "")
                )
                details.extend(trajectory_story(t))
            raise _Failure(f"{len(failed)}/{len(trajs)} expert demonstrations fail their own verifier", details)
        violating = [t for t in trajs if t.guard_events]
        if violating:
            details = [
                f"problem {t.problem_id}: policy {e.policy} ({e.action}) on {e.span!r:.80}"
                for t in violating[:3]
                for e in t.guard_events
            ]
            raise _Failure(f"{len(violating)}/{len(trajs)} expert demonstrations break the task's policies", details)
        self.demo_score = sum(t.score for t in trajs) / len(trajs)
        self.expert_answers = {t.problem_id: t.answer for t in trajs}
        longest = max(len(s.action_ids) for t in trajs for s in t.steps)
        summary = (
            f"{len(trajs)}/{len(trajs)} expert demonstrations pass through the real tools "
            f"({sum(len(t.steps) for t in trajs) / len(trajs):.1f} turns, "
            f"{sum(t.num_tool_calls for t in trajs) / len(trajs):.1f} tool calls, longest message {longest} tokens)"
        )
        if longest > self.cfg.rollout.max_new_tokens:
            limit = self.cfg.rollout.max_new_tokens
            return (
                "warn",
                summary,
                [
                    f"a demo message has {longest} tokens but rollout.max_new_tokens={limit}: the model can never "
                    "write it in one turn; raise rollout.max_new_tokens under defaults: in task.yaml"
                ],
            )
        return summary

    # ---------------------------------------------------------------- policies
    def check_policies(self) -> str | tuple[Status, str, list[str]]:
        count = len(self.spec.policies)
        task = self.task or Task(self.root, self.spec, None)  # policies need task.yaml only
        try:
            checked, self.guard = _load_guard(task, self.cfg)
        except AgentRLError as exc:
            message = str(exc)
            found = _POLICY_KEY.search(message)
            prefix = f"{self.yaml_path}: "
            if found and message.startswith(prefix):
                path = ("policies", int(found[1]), *found[2].split(".")[1:])
                message = f"{self.yaml_path}:{key_line(self.text, path)}: {message.removeprefix(prefix)}"
            raise _Failure("invalid policies", [message]) from None
        if checked < 0:
            return (
                ("warn", f"{count} policies not checked: agentrl.guard is not installed", [])
                if count
                else "none declared"
            )
        if not count:
            return "none declared"
        guard = "the guard checks demos and dry rollouts" if self.guard else "guard.enabled is false"
        return f"{count} valid policies ({', '.join(p['id'] for p in self.spec.policies)}); {guard}"

    # ---------------------------------------------------------------- dry rollouts
    def dry_rollouts(self) -> str | tuple[Status, str, list[str]]:
        """Non-experts: scripted policies through the real loop, and each expert answer given to the next
        problem. The verifier must tell them from the expert; tools and guard must survive them."""
        ids = [p.id for p in self.problems]
        rng = random.Random(self.seed)
        texts = {i: " ".join(demo_text(m, self.spec.format) for m in self.demos[i]) for i in ids}
        words = {i: texts[ids[(k + 1) % len(ids)]].split() or ["x"] for k, i in enumerate(ids)}
        scripted = {  # random text is made of another problem's demo words, never of this one's answer
            "random text": {i: [" ".join(rng.choices(words[i], k=12)) for _ in range(2)] for i in ids},
            "no answer": {i: ["I don't know."] for i in ids},
        }
        means, details = {}, []
        for name, scripts in scripted.items():
            trajs = self._run(self.problems, scripts, f"dry/{name}/")
            broken = [t for t in trajs if t.done == "error"]
            if broken:
                errors = [s.error for s in broken[0].steps if s.error and s.error.startswith("internal_error")]
                raise _Failure(f"a tool or guard raised during the {name!r} rollouts", errors[-1:])
            means[name] = sum(t.score for t in trajs) / len(trajs)
        if len(ids) > 1:
            verify = self.task.module.verify
            answers = [self.expert_answers[ids[(k + 1) % len(ids)]] for k in range(len(ids))]
            scores = [
                self._call(verify, p.data, a, label=f"verify(problem {p.id}, {a!r:.60})")
                for p, a in zip(self.problems, answers, strict=True)
            ]
            swapped = means["another problem's answer"] = sum(scores) / len(scores)
            if swapped >= 0.5 * self.demo_score:
                details.append(
                    f"the expert answer of another problem scores {swapped:.2f}: "
                    "does verify() compare the answer with this problem's?"
                )
        if means["no answer"] > 0:
            details.append(f"verify() gives {means['no answer']:.2f} on average to a trajectory without an answer")
        summary = f"mean score: expert {self.demo_score:.2f}, " + ", ".join(f"{k} {v:.2f}" for k, v in means.items())
        return ("warn", summary, details) if details else summary


def resolve_folder(path: str | Path) -> Path:
    """A task folder from a path (the folder or its task.yaml) or a bundled task's name."""
    p = Path(path)
    if p.is_file() and p.name == "task.yaml":
        return p.parent
    if p.is_dir():
        return p
    if (BUNDLED_TASKS / str(path)).is_dir():
        return BUNDLED_TASKS / str(path)
    raise AgentRLError(f"{path}: no such task folder (give a folder holding task.yaml, or a bundled task's name)")


def validate_task(path: str | Path, problems: int = 8, seed: int = 0) -> Report:
    """Run every check on the task at `path`; the report says what passed and what to fix."""
    if problems < 1:
        raise AgentRLError("--problems must be at least 1")
    root = resolve_folder(path)
    start = time.perf_counter()
    with ExitStack() as stack:
        checks = _Validator(root, problems, seed, stack).run()
    return Report(root, checks, time.perf_counter() - start)
