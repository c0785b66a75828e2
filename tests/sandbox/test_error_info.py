"""Errors carry the exception's name, message and a traceback of the cell's own frames."""


def test_error_name_value_traceback(sandbox):
    r = sandbox.session().run("def f():\n    return 1 / 0\nf()")
    assert not r.ok
    assert r.error.name == "ZeroDivisionError"
    assert r.error.value == "division by zero"
    assert "return 1 / 0" in r.error.traceback
    assert "_kernel" not in r.error.traceback
    assert "ZeroDivisionError: division by zero" in r.output()


def test_syntax_error(sandbox):
    r = sandbox.session().run("def (:")
    assert r.error.name == "SyntaxError"
    assert "<cell-" in r.error.traceback


def test_state_before_the_exception_is_kept(sandbox):
    s = sandbox.session()
    s.run("a = 1\nraise ValueError('boom')\nb = 2")
    assert s.run("a").result == "1"
    assert s.run("'b' in globals()").result == "False"


def test_traceback_into_an_earlier_cell(sandbox):
    s = sandbox.session()
    s.run("def g(v):\n    return v['missing']")
    r = s.run("g({})")
    assert r.error.name == "KeyError"
    assert "return v['missing']" in r.error.traceback
