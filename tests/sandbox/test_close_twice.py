"""close() is harmless twice, and a closed session or sandbox says so clearly."""

import pytest

from agentrl.errors import AgentRLError
from agentrl.sandbox import open_sandbox


def test_session_close_twice(sandbox):
    s = sandbox.session()
    s.close()
    s.close()
    with pytest.raises(AgentRLError, match="closed"):
        s.run("1")


def test_sandbox_close_twice_and_closes_its_sessions():
    sb = open_sandbox()
    s = sb.session()
    sb.close()
    sb.close()
    with pytest.raises(AgentRLError, match="closed"):
        s.run("1")
    with pytest.raises(AgentRLError, match="closed"):
        sb.session()


def test_context_managers():
    with open_sandbox() as sb, sb.session() as s:
        assert s.run("1 + 1").result == "2"
    assert sb._closed


def test_a_dropped_session_is_cleaned_up(sandbox):
    import gc

    before = dict(sandbox._families)
    s = sandbox.session()
    s.run("x = 1")
    del s
    gc.collect()
    assert sandbox._families == before
