"""python_ast: imports and calls resolved through aliases, writes outside the workdir; look-alikes pass."""

from __future__ import annotations

import pytest

from .rule_helpers import checker, output, pre

NETWORK = checker("python_ast", imports=["socket", "urllib", "http"])
DELETE = checker("python_ast", calls=["os.remove", "os.unlink", "shutil.rmtree", "*.unlink"])
WRITES = checker("python_ast", writes_outside_workdir=True, workdir="/home/user")


def verdict(check, code: str):
    return check.check(pre("python", {"code": code}))


@pytest.mark.parametrize(
    "code",
    [
        "import socket",
        "import urllib.request as r\nr.urlopen('http://x')",
        "from http.client import HTTPConnection",
        "net = __import__('socket')",
        "import importlib\nimportlib.import_module('urllib.request')",
        "__import__('so' + 'cket')",
        'exec("import socket")',
        "def f():\n    import socket\n",
    ],
)
def test_forbidden_imports_are_found_however_written(code):
    finding = verdict(NETWORK, code)
    assert finding is not None and finding.rule.startswith("import of ")


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.remove('/etc/passwd')",
        "import os as o\no.unlink('x')",
        "from os import remove as rm\nrm('x')",
        "from os import *\nremove('x')",
        "import os\ngetattr(os, 'remove')('x')",
        "import os\nf = os.remove\nf('x')",
        "import shutil\nshutil.rmtree('/home')",
        "from pathlib import Path\nPath('x').unlink()",
        "import os\nlist(map(os.remove, ['a', 'b']))",
    ],
)
def test_forbidden_calls_are_found_through_aliases(code):
    assert verdict(DELETE, code) is not None


@pytest.mark.parametrize(
    "code",
    [
        "items = [1, 2]\nitems.remove(1)",
        "print('os.remove is forbidden')",
        "# os.remove('x')\nprint(1)",
        "import math\nprint(math.sqrt(2))",
        "d = {'socket': 1}\nprint(d['socket'])",
        "import os\nprint(os.path.exists('/etc/passwd'))",
        "print(1",  # does not parse, so it cannot run either
    ],
)
def test_look_alikes_pass(code):
    assert verdict(NETWORK, code) is None and verdict(DELETE, code) is None


@pytest.mark.parametrize(
    ("code", "outside"),
    [
        ("open('/etc/x', 'w')", True),
        ("open(file='/etc/x', mode='a')", True),
        ("open('../x.txt', 'w')", True),
        ("open('~/.bashrc', 'a')", True),
        ("name = 'x'\nopen('/tmp/' + name, 'w')", True),
        ("open(f'/var/{1}.txt', 'x')", True),
        ("from pathlib import Path\nPath('/tmp/x').write_text('y')", True),
        ("from pathlib import Path\n(Path('/var') / 'x').write_bytes(b'')", True),
        ("import shutil\nshutil.copy('a', '/etc/a')", True),
        ("import os\nos.makedirs('/srv/x')", True),
        ("import os\nos.open('/etc/x', os.O_WRONLY | os.O_CREAT)", True),
        ("open('/etc/hostname').read()", False),
        ("open('/etc/hostname', 'rb').read()", False),
        ("open('result.txt', 'w')", False),
        ("open('sub/dir/../x.txt', 'w')", False),
        ("open('/home/user/out.txt', 'w')", False),  # the configured workdir
        ("import shutil\nshutil.copy('/etc/hosts', 'hosts')", False),
        ("open(path, 'w')", False),  # not literal: unknown, allowed
    ],
)
def test_writes_outside_the_workdir(code, outside):
    assert (verdict(WRITES, code) is not None) == outside


def test_only_the_configured_tool_and_argument_before_the_call():
    assert NETWORK.check(pre("other", {"code": "import socket"})) is None
    assert NETWORK.check(pre("python", {"source": "import socket"})) is None
    assert NETWORK.check(output("python", {"code": "import socket"}, "ok")) is None  # pre only: once per step
    custom = checker("python_ast", tool="jupyter", argument="source", imports=["socket"])
    assert custom.check(pre("jupyter", {"source": "import socket"})) is not None


def test_the_span_is_the_offending_code():
    finding = verdict(DELETE, "import os\nx = 1\nos.remove('/etc/passwd')")
    assert finding.span == "os.remove" and finding.rule == "call of os.remove"
