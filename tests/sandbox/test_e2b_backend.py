"""The e2b backend: fork and rollback by replay (checked on a fake SDK), and a live run when
E2B_API_KEY is set."""

import os
import sys
import types
import warnings

import pytest

from agentrl.errors import AgentRLError
from agentrl.sandbox import e2b, open_sandbox


class TimeoutException(Exception):
    pass


class FakeSdk:
    """Contexts are dicts; run_code execs in them (trusted test code only)."""

    def __init__(self, **_):
        self.contexts = []
        self.calls: list[tuple[str, float | None]] = []  # (code, timeout) of every cell run
        self.fail_again: set[str] = set()  # cells that fail from their second run on (a replay)
        self.timeouts_set: list[int] = []
        self.killed = False

    def create_code_context(self, cwd, language):
        self.contexts.append({})
        return len(self.contexts) - 1

    def remove_code_context(self, ctx):
        self.contexts[ctx] = None

    def run_code(self, code, context, timeout=None):
        self.calls.append((code, timeout))
        if code in self.fail_again and sum(c == code for c, _ in self.calls) > 1:
            raise TimeoutException("execution timed out")
        if code.startswith(("import os, shutil", "import shutil")):  # workdir set-up: only the preload runs here
            preload = code.split("os.chdir(", 1)[-1].split("\n", 1)[-1] if "os.chdir(" in code else ""
            try:
                exec(preload, self.contexts[context])
                error = None
            except ImportError as e:
                error = types.SimpleNamespace(name=type(e).__name__, value=str(e), traceback="")
            return types.SimpleNamespace(results=[], logs=types.SimpleNamespace(stdout=[], stderr=[]), error=error)
        ns, error, results = self.contexts[context], None, []
        if "while True" in code:
            # A real sandbox runs the cell until the timeout hits, so its effects land first: run one pass
            # of the loop body in the context, then time out.
            exec(code.replace("while True:", "if True:", 1), ns)
            raise TimeoutException("execution timed out")
        *body, last = code.strip().splitlines() or [""]
        try:
            exec("\n".join(body) if body else "", ns)
            try:
                value = eval(last, ns)
                results.append(types.SimpleNamespace(is_main_result=True, text=repr(value)))
            except SyntaxError:
                exec(last, ns)
        except BaseException as e:
            error = types.SimpleNamespace(name=type(e).__name__, value=str(e), traceback="")
        logs = types.SimpleNamespace(stdout=[], stderr=[])
        return types.SimpleNamespace(results=results, logs=logs, error=error)

    def kill(self):
        self.killed = True

    def set_timeout(self, seconds):
        self.timeouts_set.append(seconds)


@pytest.fixture
def fake_e2b():
    return e2b.E2BSandbox(e2b.Limits(timeout=5), sdk=FakeSdk())


def test_fork_replays_successful_cells(fake_e2b):
    s = fake_e2b.session()
    s.run("x = 1")
    s.run("1 / 0")
    f = s.fork()
    f.run("x = x + 10")
    assert f.run("x").result == "11"
    assert s.run("x").result == "1"


def test_timeout_rolls_back_by_replay(fake_e2b):
    s = fake_e2b.session()
    s.run("x = 5")
    r = s.run("while True: x = 0")  # the fake sets x = 0 in the context, then times out
    assert r.timed_out and r.error.name == "TimeoutError"
    assert s.run("x").result == "5"


def test_replay_runs_each_cell_with_the_limit_it_first_ran_under(fake_e2b):
    s = fake_e2b.session()
    s.run("x = 5", timeout=30)
    s.run("y = 1")
    assert s.run("while True: x = 0", timeout=1).timed_out
    replayed = [(c, t) for c, t in fake_e2b._sdk.calls if c in ("x = 5", "y = 1")]
    assert replayed == [("x = 5", 30.0), ("y = 1", 5.0), ("x = 5", 30.0), ("y = 1", 5.0)]


def test_a_replay_that_fails_loses_the_session_without_raising(fake_e2b):
    s = fake_e2b.session()
    s.run("x = 5")
    fake_e2b._sdk.fail_again.add("x = 5")  # say it read the clock: replayed, it times out
    r = s.run("while True: x = 0")
    assert r.timed_out and "the session was lost" in r.error.value
    after = s.run("x")
    assert after.error.name == "SandboxCrash" and "the session was lost" in after.error.value
    assert fake_e2b._sdk.calls[-1][0] != "x"  # a lost session runs nothing more


def test_a_fork_whose_replay_fails_says_so(fake_e2b):
    s = fake_e2b.session()
    s.run("x = 5")
    fake_e2b._sdk.fail_again.add("x = 5")
    with pytest.raises(AgentRLError, match="forking the e2b session failed"):
        s.fork()


def test_the_vm_is_created_offline_with_a_short_lifetime_extended_in_use_and_killed_on_close(monkeypatch):
    created = {}

    class Sandbox:
        @staticmethod
        def create(**opts):
            created.update(opts)
            return FakeSdk()

    monkeypatch.setitem(sys.modules, "e2b_code_interpreter", types.SimpleNamespace(Sandbox=Sandbox))
    with open_sandbox(backend="e2b", api_key="k", timeout=5) as sb:
        assert created == {"api_key": "k", "timeout": e2b.LIFETIME, "allow_internet_access": False}
        sb._extended -= e2b.LIFETIME  # the last extension is old
        sb.session().run("x = 1")
        assert sb._sdk.timeouts_set == [e2b.LIFETIME]
    assert sb._sdk.killed
    open_sandbox(backend="e2b", api_key="k", allow_internet=True).close()
    assert created["allow_internet_access"] is True


def test_limits_the_vm_does_not_enforce_are_named_once(monkeypatch):
    monkeypatch.setattr(e2b, "_warned", False)
    with pytest.warns(UserWarning, match="does not enforce memory_mb=512"):
        e2b.E2BSandbox(e2b.Limits(memory_mb=512), sdk=FakeSdk())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e2b.E2BSandbox(e2b.Limits(memory_mb=512), sdk=FakeSdk())


def test_a_failed_preload_is_an_error_not_a_silent_session():
    sandbox = e2b.E2BSandbox(e2b.Limits(preload=("no_such_module",)), sdk=FakeSdk())
    with pytest.raises(AgentRLError, match="setting up an e2b session failed.*no_such_module"):
        sandbox.session()


@pytest.mark.e2b
@pytest.mark.skipif(not os.environ.get("E2B_API_KEY"), reason="E2B_API_KEY is not set")
def test_live_e2b():
    pytest.importorskip("e2b_code_interpreter")
    with open_sandbox(backend="e2b", timeout=10) as sb:
        s = sb.session()
        assert s.run("x = 41\nx + 1").result == "42"
        assert s.fork().run("x").result == "41"
