"""Without bubblewrap the local sandbox says how to fix it; the unisolated mode needs an opt-in."""

import pytest

from agentrl.errors import AgentRLError
from agentrl.sandbox import local, open_sandbox


def test_missing_bwrap_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    with pytest.raises(AgentRLError, match="apt-get install bubblewrap"):
        open_sandbox()


def test_isolation_none_warns_loudly_and_works():
    with pytest.warns(RuntimeWarning, match="UNISOLATED"):
        sb = open_sandbox(isolation="none")
    with sb:
        assert sb.session().run("x = 2\nx * 21").result == "42"
