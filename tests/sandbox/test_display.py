"""The value of a cell's final expression is shown, as in a notebook."""


def test_final_expression_is_shown(sandbox):
    s = sandbox.session()
    assert s.run("x = 1; x").result == "1"
    assert s.run("'a' + 'b'").result == "'ab'"
    assert s.run("[1, 2][::-1]").result == "[2, 1]"


def test_repr_not_str(sandbox):
    assert sandbox.session().run("'text'").result == "'text'"


def test_no_result_for_statements_none_and_semicolon(sandbox):
    s = sandbox.session()
    assert s.run("y = 2").result is None
    assert s.run("None").result is None
    assert s.run("print('p')").result is None
    assert s.run("y;").result is None


def test_underscore_holds_last_value(sandbox):
    s = sandbox.session()
    s.run("3 * 3")
    assert s.run("_ + 1").result == "10"
