"""Filling the disk hits the file size limit or the tmpfs size, never the host's disk."""

import shutil

from .sandbox_helpers import assert_contained


def test_one_huge_file(fresh_sandbox):
    free = shutil.disk_usage("/tmp").free
    r = fresh_sandbox.session().run("f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 10**6)")
    assert r.error.name == "OSError" and "File too large" in r.error.value
    assert shutil.disk_usage("/tmp").free > free - 10**8
    assert_contained(fresh_sandbox)


def test_many_files(fresh_sandbox):
    r = fresh_sandbox.session().run("for i in range(10**4):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * 10**6)")
    assert r.error.name == "OSError" and "No space left" in r.error.value
    assert_contained(fresh_sandbox)
