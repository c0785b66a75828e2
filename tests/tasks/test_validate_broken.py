"""`agentrl tasks validate` fails each broken task at the right check, with file, line and what to fix."""

from __future__ import annotations

import shutil

import pytest

from agentrl.task_authoring import validate_task

from .conftest import BROKEN

# fixture folder -> (the check that fails, texts its details must hold; {root} is the fixture folder)
CASES = {
    "bad-yaml": ("task.yaml", ["{root}/task.yaml:5:", "expected ',' or ']'", "flow sequence at line 4"]),
    "unknown-key": ("schema", ["{root}/task.yaml:4: toolz: unknown key; did you mean tools?"]),
    "bad-type": ("schema", ["{root}/task.yaml:6: sandbox.preload: Input should be a valid list"]),
    "bad-default": (
        "schema",
        ["{root}/task.yaml:10: defaults.rollout.max_turnz: unknown key; did you mean max_turns?"],
    ),
    "missing-task-py": ("task.py", ["task.py is missing", "agentrl tasks new"]),
    "missing-function": ("task.py", ["missing function(s) demo", "demo(problem)"]),
    "import-error": ("task.py", ["{root}/task.py:3 in <module>: ImportError: cannot import name 'in_splitt'"]),
    "verifier-raises": ("verify", ["verify(problem train-0-0, None)", "{root}/task.py:12 in verify: TypeError"]),
    "unknown-tool": ("tools", ["{root}/task.yaml:6: tools.calculator: unknown tool", "known: ", "python"]),
    "demo-fails": ("demos", ["3/3 expert demonstrations fail", "answer '4'", "-> '```output 4 ```'"]),
    "split-overlap": ("generate", ["train and test share problems", "'Spell 0.'", "in_split"]),
    "nondeterministic": ("generate", ["not deterministic", "random.Random(seed)"]),
    "bad-policy": ("policies", ["{root}/task.yaml:13: policies[1] (no-files).checker.callz: unknown key"]),
    "demo-breaks-policy": ("demos", ["3/3 expert demonstrations break the task's policies", "policy no-os (block)"]),
}


def test_every_fixture_has_a_case():
    assert sorted(p.name for p in BROKEN.iterdir() if p.is_dir()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_task_fails_at_its_check_with_a_clear_message(name):
    failing, expected = CASES[name]
    root = BROKEN / name
    report = validate_task(root, problems=3)
    assert not report.ok
    assert [c.name for c in report.checks if c.status == "fail"] == [failing], report.text()
    check = report.check(failing)
    text = "\n".join([check.summary, *check.details])
    for fragment in expected:
        assert fragment.format(root=root) in text, report.text()
    later = [c for c in report.checks[[c.name for c in report.checks].index(failing) + 1 :] if c.status == "skip"]
    assert all(c.summary.startswith("needs ") for c in later)


def test_a_syntax_error_names_its_line(tmp_path):
    root = _with_extra_code(tmp_path, "")
    (root / "task.py").write_text("def generate(split, n, seed):\n    return [\n\ndef verify(p, a):\n    pass\n")
    report = validate_task(root, problems=2)
    (detail,) = report.check("task.py").details
    assert detail.startswith(f"{root}/task.py:2: SyntaxError"), detail


def _with_extra_code(tmp_path, code: str):
    """A copy of the verifier-raises fixture with `code` appended (a later def replaces an earlier one)."""
    root = tmp_path / "task"
    shutil.copytree(BROKEN / "verifier-raises", root)
    with (root / "task.py").open("a") as f:
        f.write(f"\n\n{code}\n")
    return root


def test_a_wrong_signature_is_named(tmp_path):
    root = _with_extra_code(tmp_path, "def demo(problem, extra):\n    return []")
    report = validate_task(root, problems=2)
    assert report.check("task.py").status == "fail"
    assert "demo(problem, extra) should be demo(problem)" in report.check("task.py").details[0]


def test_a_verifier_that_returns_a_non_score_fails(tmp_path):
    root = _with_extra_code(tmp_path, "def verify(problem, answer):\n    return None")
    report = validate_task(root, problems=2)
    assert report.check("verify").summary == "verify() must return a number in [0, 1]"
    assert "returned None" in report.check("verify").details[0]


def test_cli_exits_1_and_prints_the_report(agentrl):
    result = agentrl("tasks", "validate", str(BROKEN / "unknown-key"), "--problems", "2")
    assert result.returncode == 1
    assert f"{BROKEN / 'unknown-key'}/task.yaml:4: toolz: unknown key" in result.stdout
    assert "INVALID" in result.stdout


def test_cli_names_a_missing_folder_in_one_line(agentrl):
    result = agentrl("tasks", "validate", "no/such/task")
    assert result.returncode == 2 and "no such task folder" in result.stderr


def test_a_generate_that_never_returns_is_stopped_at_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr("agentrl.task_authoring.validate.GENERATE_TIMEOUT_S", 0.5)
    root = _with_extra_code(tmp_path, "def generate(split, n, seed):\n    while True: pass")  # line 20
    report = validate_task(root, problems=2)
    (detail,) = report.check("generate").details
    assert f"{root}/task.py:20 in generate: TimeoutError: generate('train', 2, 0) did not return in 0.5 s" in detail
