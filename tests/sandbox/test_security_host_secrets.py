"""Host secrets are out of reach: environment, project files, /root, /etc/shadow."""

import os

from agentrl.sandbox import open_sandbox

from .sandbox_helpers import assert_contained


def test_host_environment_is_not_inherited(monkeypatch, backend):
    monkeypatch.setenv("AGENTRL_TEST_SECRET", "hunter2")
    with open_sandbox(backend) as sb:
        s = sb.session()
        assert s.run("import os\n'AGENTRL_TEST_SECRET' in os.environ").result == "False"
        r = s.run("open('/proc/1/environ', 'rb').read()")
        assert "hunter2" not in r.output()
        r = s.run("import os\nos.system('env')")
        assert "hunter2" not in r.stdout
        assert_contained(sb)


def test_project_files_are_absent(fresh_sandbox):
    project = os.path.abspath("pyproject.toml")
    assert os.path.exists(project)
    r = fresh_sandbox.session().run(f"open({project!r}).read()")
    assert r.error.name == "FileNotFoundError"
    assert_contained(fresh_sandbox)


def test_root_home_shows_only_the_interpreter(fresh_sandbox, backend):
    r = fresh_sandbox.session().run(
        "import os\nsorted(os.path.join(d, f) for d, _, fs in os.walk('/root') for f in fs"
        " if 'pyenv/versions' not in d)"
    )
    assert r.result == "[]"
    r = fresh_sandbox.session().run("open('/root/.bash_history').read()")
    # bubblewrap mounts nothing of /root but the interpreter; a docker image has its own /root, 0700 root
    assert r.error.name == "FileNotFoundError" or (backend == "docker" and r.error.name == "PermissionError")


def test_shadow_and_ssh_keys(fresh_sandbox):
    s = fresh_sandbox.session()
    for path in ("/etc/shadow", "/etc/gshadow", "/etc/ssh/ssh_host_ed25519_key", "/root/.ssh/id_rsa"):
        r = s.run(f"open({path!r}).read()")
        assert r.error is not None and r.error.name in ("FileNotFoundError", "PermissionError"), path
    assert_contained(fresh_sandbox)
