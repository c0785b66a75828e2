"""Writes outside the session's working directory and /tmp fail, and the host is untouched."""

import os

import pytest

from .sandbox_helpers import assert_contained


def test_write_to_system_and_interpreter_dirs(fresh_sandbox):
    s = fresh_sandbox.session()
    import sys

    targets = ["/usr/agentrl_pwned", "/etc/agentrl_pwned", f"{sys.base_prefix}/agentrl_pwned", "/agentrl_pwned"]
    for path in targets:
        r = s.run(f"open({path!r}, 'w').write('x')")
        assert r.error is not None and r.error.name in ("PermissionError", "OSError"), (path, r)
        assert not os.path.exists(path)
    assert_contained(fresh_sandbox)


@pytest.mark.local_only("a docker sandbox's sessions share one uid, so the container, not the session, is the boundary")
def test_write_to_another_sessions_workdir(fresh_sandbox):
    victim = fresh_sandbox.session()
    victim.run("open('mine.txt', 'w').write('secret')")
    attacker = fresh_sandbox.session()
    r = attacker.run(f"open({victim.workdir + '/mine.txt'!r}).read()")
    assert r.error.name == "PermissionError"
    r = attacker.run(f"open({victim.workdir + '/planted.txt'!r}, 'w').write('x')")
    assert r.error.name == "PermissionError"
    assert victim.run("open('mine.txt').read()").result == "'secret'"
