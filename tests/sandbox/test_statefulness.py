"""State persists across cells: variables, imports, functions and files."""


def test_variables_persist(sandbox):
    s = sandbox.session()
    assert s.run("x = 41").ok
    assert s.run("x + 1").result == "42"


def test_imports_and_functions_persist(sandbox):
    s = sandbox.session()
    s.run("import math\ndef area(r):\n    return math.pi * r * r")
    assert s.run("round(area(2), 3)").result == "12.566"


def test_files_persist(sandbox):
    s = sandbox.session()
    s.run("open('notes.txt', 'w').write('hello')")
    assert s.run("open('notes.txt').read()").result == "'hello'"
