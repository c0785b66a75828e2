"""stdout and stderr stay separate, and output of child processes is captured too."""


def test_stdout_and_stderr_are_separate(sandbox):
    r = sandbox.session().run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


def test_subprocess_output_is_captured(sandbox):
    r = sandbox.session().run("import os\nos.system('echo from-shell')")
    assert "from-shell" in r.stdout


def test_output_for_a_model_is_compact(sandbox):
    r = sandbox.session().run("print('hi')\n40 + 2")
    assert r.output() == "hi\n42"
