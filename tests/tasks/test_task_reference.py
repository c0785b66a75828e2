"""A task as another process (a Ray worker) finds it: bundled tasks by name, others by absolute path."""

from __future__ import annotations

from agentrl.task_authoring.scaffold import scaffold_task
from agentrl.tasks import load_task, task_reference


def test_a_bundled_task_is_named_and_a_task_folder_is_its_absolute_path(tmp_path, monkeypatch):
    assert task_reference(load_task("arith-python")) == "arith-python"
    monkeypatch.chdir(tmp_path)
    scaffold_task("my-task", tmp_path)
    reference = task_reference(load_task("my-task"))
    assert reference == str((tmp_path / "my-task").resolve())
    assert load_task(reference).name == "my-task"
