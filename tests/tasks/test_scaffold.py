"""`agentrl tasks new` writes a commented task that validates, and trains, as it stands."""

from __future__ import annotations

import re

import pytest

from agentrl.errors import AgentRLError
from agentrl.task_authoring import scaffold_task, validate_task
from agentrl.tasks import TaskSpec, load_task
from tests.conftest import TINY_OVERRIDES


def test_new_task_validates_cleanly(tmp_path):
    root = scaffold_task("my-task", tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["task.py", "task.yaml"]
    report = validate_task(root, problems=4)
    assert report.ok and not report.warnings, report.text()


def test_new_task_yaml_sets_every_task_key_and_explains_it(tmp_path):
    root = scaffold_task("explained", tmp_path)
    text = (root / "task.yaml").read_text()
    for key in TaskSpec.model_fields:  # every key shown, the optional ones commented out
        assert re.search(rf"^(# )?{key}:", text, re.MULTILINE), key
    assert "name: explained" in text and f"agentrl tasks validate {root}" in text
    assert "python" in text.split("Known tools here:")[1].splitlines()[0]
    # a comment line right above every top-level key
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#")):
            assert lines[i - 1].startswith("#"), f"no comment above {line!r}"


def test_new_task_names_its_own_module(tmp_path):
    task = load_task(str(scaffold_task("named", tmp_path)))
    assert task.name == "named"
    assert task.problems("train", 3) == task.problems("train", 3)


@pytest.mark.parametrize("name", ["My-Task", "1task", "a b", "../escape", ""])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(AgentRLError, match="lowercase letters"):
        scaffold_task(name, tmp_path)


def test_an_existing_folder_is_never_overwritten(tmp_path):
    root = scaffold_task("taken", tmp_path)
    (root / "task.py").write_text("# mine")
    with pytest.raises(AgentRLError, match="already exists"):
        scaffold_task("taken", tmp_path)
    assert (root / "task.py").read_text() == "# mine"


def test_cli_new_then_validate(agentrl, tmp_path):
    created = agentrl("tasks", "new", "cli-task", "--dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    assert f"agentrl tasks validate {tmp_path / 'cli-task'}" in created.stdout
    checked = agentrl("tasks", "validate", str(tmp_path / "cli-task"), "-n", "2", "--strict")
    assert checked.returncode == 0, checked.stdout
    assert "is valid" in checked.stdout
    again = agentrl("tasks", "new", "cli-task", "--dir", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_new_task_trains_end_to_end(agentrl, tmp_path):
    root = scaffold_task("trainable", tmp_path)
    sets = [a for o in [*TINY_OVERRIDES, f"run.runs_dir={tmp_path / 'runs'}", "train.steps=2"] for a in ("--set", o)]
    result = agentrl("train", str(root), "--quiet", *sets)
    assert result.returncode == 0, result.stderr
    assert "held-out pass@1 on 4 test problems" in result.stdout
    assert list((tmp_path / "runs").glob("trainable-*/summary.json"))


def test_reasoning_gym_task_validates_and_scores_with_reasoning_gym(tmp_path):
    reasoning_gym = pytest.importorskip("reasoning_gym")
    root = scaffold_task("bits", tmp_path, reasoning_gym="count_bits")
    report = validate_task(root, problems=3)
    assert report.ok and not report.warnings, report.text()
    task = load_task(str(root))
    problem = task.problems("test", 1)[0]
    entry = reasoning_gym.create_dataset("count_bits", seed=0, size=10**9)[
        int(problem.data["entry"]["metadata"]["source_index"])
    ]
    assert problem.prompt == entry["question"]
    assert task.verify(problem, entry["answer"]) == 1.0
    assert task.verify(problem, str(int(entry["answer"]) + 1)) == 0.0


def test_an_unknown_reasoning_gym_dataset_is_named_with_close_matches(tmp_path):
    pytest.importorskip("reasoning_gym")
    with pytest.raises(AgentRLError, match="no dataset 'count_bit'; did you mean count_bits"):
        scaffold_task("bits", tmp_path, reasoning_gym="count_bit")
    assert not (tmp_path / "bits").exists()
