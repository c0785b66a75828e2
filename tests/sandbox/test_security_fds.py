"""A cell that closes or scribbles on its file descriptors, or forks a copy of the kernel that runs
on, cannot confuse the session."""

from .sandbox_helpers import assert_contained, wait_until


def test_closing_every_fd(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("kept = 1")
    r = s.run("import os\nos.closerange(0, 4096)\nkept = 2")
    assert r.error is not None and r.error.name == "SandboxCrash"
    assert s.run("kept").result == "1"
    assert_contained(fresh_sandbox)


def test_writing_garbage_to_every_fd(fresh_sandbox):
    s = fresh_sandbox.session()
    s.run("kept = 1")
    s.run(
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'\\xff\\x00garbage' * 100)\n"
        "    except OSError:\n        pass"
    )
    r = s.run("kept")
    assert r.result == "1" or r.error.name == "SandboxCrash"
    assert s.run("1 + 1").result == "2"
    assert_contained(fresh_sandbox)


def test_forked_copy_running_on(fresh_sandbox):
    s = fresh_sandbox.session()
    r = s.run("import os\npid = os.fork()\n'parent' if pid else 'child'")
    assert r.result == "'parent'"
    assert s.run("3").result == "3"


def test_reading_stdin(fresh_sandbox):
    r = fresh_sandbox.session().run("input('name? ')")
    assert r.error.name == "EOFError"


def test_forged_status_frame(fresh_sandbox):
    s = fresh_sandbox.session()
    forge = (
        "import os, json, struct, socket\n"
        "body = json.dumps({'result': {'a': 1}, 'error': 5, 'rollback': False}).encode()\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        if os.fstat(fd).st_mode & 0o140000 == 0o140000:\n"
        "            os.write(fd, struct.pack('>I', len(body)) + body)\n"
        "    except OSError:\n"
        "        pass"
    )
    r = s.run(forge)
    assert isinstance(r.output(), str)  # whatever it claims, the host builds a result
    # a cell runs inside its kernel's process, so it can fool that kernel: at worst the session
    # loses its state and restarts fresh
    assert wait_until(lambda: s.run("1 + 1").result == "2")
    assert_contained(fresh_sandbox)
