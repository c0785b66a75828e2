"""The e2b backend: fork and rollback by replay (checked on a fake SDK), and a live run when
E2B_API_KEY is set."""

import os
import types

import pytest

from agentrl.sandbox import e2b, open_sandbox


class TimeoutException(Exception):
    pass


class FakeSdk:
    """Contexts are dicts; run_code execs in them (trusted test code only)."""

    def __init__(self, **_):
        self.contexts = []

    def create_code_context(self, cwd, language):
        self.contexts.append({})
        return len(self.contexts) - 1

    def remove_code_context(self, ctx):
        self.contexts[ctx] = None

    def run_code(self, code, context, timeout=None):
        if code.startswith(("import os, shutil", "import shutil")):  # workdir set-up: not here
            return types.SimpleNamespace(results=[], logs=types.SimpleNamespace(stdout=[], stderr=[]), error=None)
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
        pass


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


@pytest.mark.e2b
@pytest.mark.skipif(not os.environ.get("E2B_API_KEY"), reason="E2B_API_KEY is not set")
def test_live_e2b():
    pytest.importorskip("e2b_code_interpreter")
    with open_sandbox(backend="e2b", timeout=10) as sb:
        s = sb.session()
        assert s.run("x = 41\nx + 1").result == "42"
        assert s.fork().run("x").result == "41"
