"""`agentrl tasks list` shows the bundled tasks, and tasks of other folders, without importing them."""

from __future__ import annotations

from agentrl.task_authoring import find_tasks, scaffold_task
from agentrl.tasks import BUNDLED_TASKS

from .conftest import BROKEN


def test_bundled_tasks_are_listed_by_default():
    entries = find_tasks()
    assert {e.spec.name for e in entries if e.spec} >= {"arith-python", "code-tests"}
    assert all(e.folder.parent == BUNDLED_TASKS for e in entries)


def test_broken_tasks_are_listed_with_their_problem():
    entries = {e.folder.name: e for e in find_tasks([BROKEN])}
    assert entries["bad-yaml"].spec is None and "malformed YAML" in entries["bad-yaml"].problem
    assert entries["unknown-key"].spec is None and "toolz: unknown key" in entries["unknown-key"].problem
    assert entries["missing-task-py"].problem == "task.py is missing"
    assert entries["import-error"].spec.name == "import-error" and entries["import-error"].problem is None


def test_cli_lists_a_folder_of_tasks(agentrl, tmp_path):
    scaffold_task("listed-one", tmp_path)
    result = agentrl("tasks", "list", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "listed-one" in result.stdout and "python" in result.stdout


def test_cli_lists_bundled_tasks(agentrl):
    result = agentrl("tasks", "list")
    assert result.returncode == 0 and "arith-python" in result.stdout and "code-tests" in result.stdout


def test_tasks_commands_have_help(agentrl):
    for command in ("new", "validate", "list"):
        result = agentrl("tasks", command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout, command
