"""The e2b backend: fork, rollback by replay and the output cap on a stand-in SDK; timeouts, streaming output, replay
and the VM's lifecycle with the real SDK against a local fake of E2B (`e2b_fake_server.py`); and a live run when
E2B_API_KEY is set."""

import os
import sys
import threading
import time
import types
import warnings

import pytest

from agentrl.errors import AgentRLError
from agentrl.sandbox import e2b, open_sandbox

from .e2b_fake_server import FakeE2B


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

    def run_code(self, code, context, timeout=None, on_stdout=None, on_stderr=None):
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
        ns, error, results, lines = self.contexts[context], None, [], []

        def print_(*args, sep=" ", end="\n", file=None):
            lines.append((file is sys.stderr, sep.join(map(str, args)) + end))

        ns["print"] = print_
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
        for is_stderr, line in lines:  # as the SDK does, line by line; what a callback raises ends run_code
            (logs.stderr if is_stderr else logs.stdout).append(line)
            handler = on_stderr if is_stderr else on_stdout
            if handler is not None:
                handler(types.SimpleNamespace(line=line))
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


def test_output_is_capped_stdout_first_and_the_cell_goes_on():
    sandbox = e2b.E2BSandbox(e2b.Limits(max_output_bytes=100), sdk=FakeSdk())
    s = sandbox.session()
    r = s.run("for i in range(30): print('o' * 9)\nimport sys\nprint('e', file=sys.stderr)\ny = 7\ny")
    assert r.stdout == ("o" * 9 + "\n") * 10 and r.stderr == "" and r.truncated
    assert r.result == "7" and r.ok and s.run("y").result == "7"
    small = s.run("print('a')\nprint('b', file=sys.stderr)")
    assert (small.stdout, small.stderr, small.truncated) == ("a\n", "b\n", False)


def test_output_past_the_ceiling_stops_the_cell_and_rolls_back():
    sandbox = e2b.E2BSandbox(e2b.Limits(max_output_bytes=100), sdk=FakeSdk())
    s = sandbox.session()
    s.run("x = 5")
    r = s.run("x = 0\nfor i in range(1100): print('y' * 1000)")  # 1.1 MB: past the 1 MiB ceiling
    assert r.truncated and len(r.stdout) == 100 and not r.timed_out
    assert r.error.name == "OutputLimitExceeded" and "state rolled back by replay" in r.error.value
    assert s.run("x").result == "5"


# -- the real SDK against a local fake of E2B ------------------------------------------------------------------------


@pytest.fixture
def e2b_server(request, tmp_path, monkeypatch):
    """A fake E2B on a free localhost port (its `heartbeat` from the test's parameter), with the SDK pointed at it."""
    pytest.importorskip("e2b_code_interpreter", reason="the E2B SDK is not installed: pip install 'agentrl[e2b]'")
    server = FakeE2B(str(tmp_path), heartbeat=getattr(request, "param", None))
    monkeypatch.setenv("E2B_API_URL", server.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
    yield server
    server.close()


def real_e2b(**options):
    return open_sandbox(backend="e2b", api_key="e2b_test", **options)


def cell_threads_end() -> bool:
    """Whether the threads of abandoned cells end (their streams close) within a second."""
    deadline = time.monotonic() + 1
    while any(t.name == "agentrl-e2b-cell" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not any(t.name == "agentrl-e2b-cell" for t in threading.enumerate())


def test_a_stalled_cell_times_out_on_time_and_the_state_survives(e2b_server):
    with real_e2b(timeout=5) as sb:
        s = sb.session()
        s.run("x = 5")
        t0 = time.perf_counter()
        r = s.run("x = 0\nprint('started')\nimport time\ntime.sleep(10)", timeout=2)
        assert time.perf_counter() - t0 < 2.2  # within 10%, the rollback included; the SDK alone answers after 4 s
        assert r.timed_out and r.error.name == "TimeoutError" and "state rolled back by replay" in r.error.value
        assert r.stdout == "started\n"
        assert s.run("x").result == "5"  # without the rollback: 0, after the stalled cell ends
        assert cell_threads_end()


@pytest.mark.parametrize("e2b_server", [0.2], indirect=True)
def test_the_time_limit_holds_where_the_sdk_timeout_fires_late(e2b_server):
    with real_e2b(timeout=5) as sb:
        sdk, ctx = sb._sdk, sb._sdk.create_code_context(cwd="/home/user", language="python")
        t0 = time.perf_counter()
        with pytest.raises(Exception, match="timed out"):
            sdk.run_code("import time; time.sleep(3)", context=ctx, timeout=1)
        assert time.perf_counter() - t0 > 1.5  # the SDK's own timeout: late
        s = sb.session()
        t0 = time.perf_counter()
        r = s.run("import time; time.sleep(10)", timeout=2)
        assert time.perf_counter() - t0 < 2.2 and r.timed_out


def test_endless_output_is_stopped_at_the_ceiling_and_rolled_back(e2b_server):
    with real_e2b(timeout=30, max_output_bytes=1000) as sb:
        s = sb.session()
        s.run("x = 5")
        t0 = time.perf_counter()
        r = s.run("x = 0\nwhile True:\n    print('y' * 1000)")
        assert time.perf_counter() - t0 < 15
        assert r.truncated and len(r.stdout) + len(r.stderr) == 1000 and not r.timed_out
        assert r.error.name == "OutputLimitExceeded" and "state rolled back by replay" in r.error.value
        assert len(e2b_server.contexts) == 1  # the endless cell's kernel is gone
        assert s.run("x").result == "5" and cell_threads_end()


def test_output_over_the_cap_is_truncated_and_the_cell_completes(e2b_server):
    with real_e2b(max_output_bytes=1000) as sb:
        s = sb.session()
        r = s.run("import sys\nfor i in range(50): print('z' * 99)\nprint('e', file=sys.stderr)\ny = 7\ny")
        assert r.truncated and r.stdout == ("z" * 99 + "\n") * 10 and r.stderr == ""
        assert r.ok and r.result == "7" and s.run("y").result == "7"
        small = s.run("print('a')\nprint('b', file=sys.stderr)")
        assert (small.stdout, small.stderr, small.truncated) == ("a\n", "b\n", False)


def test_a_replay_runs_each_cell_under_its_own_limit(e2b_server):
    with real_e2b(timeout=0.5) as sb:
        s = sb.session()
        assert s.run("import time\ntime.sleep(0.8)\nx = 5", timeout=3).ok
        r = s.run("time.sleep(10)")  # times out at 0.5 s; the replay of the first cell needs its 3 s
        assert r.timed_out and "state rolled back by replay" in r.error.value
        assert s.run("x").result == "5"


def test_a_cell_that_fails_when_replayed_loses_the_session_without_raising(e2b_server):
    once = (
        "import os\n"
        "if os.path.exists('/home/user/ran'):\n"
        "    raise RuntimeError('ran before')\n"
        "open('/home/user/ran', 'w')\n"
        "x = 5"
    )
    with real_e2b() as sb:
        s = sb.session()
        assert s.run(once).ok
        r = s.run("import time; time.sleep(10)", timeout=0.5)
        assert r.timed_out and "the session was lost" in r.error.value and "ran before" in r.error.value
        after = s.run("x")
        assert after.error.name == "SandboxCrash" and "the session was lost" in after.error.value
        assert e2b_server.executed[-1] != "x"  # a lost session runs nothing more


def test_fork_replays_the_successful_cells_and_copies_the_workdir(e2b_server):
    with real_e2b() as sb:
        s = sb.session()
        s.run("x = 1\nopen('notes.txt', 'w').write('hi')")
        assert s.run("1 / 0").error.name == "ZeroDivisionError"
        f = s.fork()
        f.run("x = x + 10")
        assert f.run("x").result == "11" and s.run("x").result == "1"
        assert f.run("open('notes.txt').read()").result == "'hi'" and f.workdir != s.workdir
        assert e2b_server.executed.count("1 / 0") == 1  # the failed cell is not replayed


def test_the_vm_is_created_offline_given_files_extended_in_use_and_killed(e2b_server):
    with real_e2b(files={"data.txt": "hello"}) as sb:
        assert e2b_server.created[0]["allow_internet_access"] is False
        assert e2b_server.created[0]["timeout"] == e2b.LIFETIME
        s = sb.session()
        assert s.run("open('data.txt').read()").result == "'hello'"
        sb._extended -= e2b.LIFETIME
        s.run("1")
        assert e2b_server.timeouts == [e2b.LIFETIME] and e2b_server.killed == []
    assert e2b_server.killed == ["fake-sbx"]


@pytest.mark.e2b
@pytest.mark.skipif(not os.environ.get("E2B_API_KEY"), reason="E2B_API_KEY is not set")
def test_live_e2b():
    pytest.importorskip("e2b_code_interpreter")
    with open_sandbox(backend="e2b", timeout=10) as sb:
        s = sb.session()
        assert s.run("x = 41\nx + 1").result == "42"
        assert s.fork().run("x").result == "41"
