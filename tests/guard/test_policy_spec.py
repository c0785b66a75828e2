"""The policies: list in task.yaml: validated with the file and key in every error; build_guard only when needed."""

from __future__ import annotations

import shutil

import pytest
import yaml

from agentrl.config import build_config
from agentrl.errors import AgentRLError
from agentrl.guard import build_guard, parse_policies, task_policies
from agentrl.tasks import BUNDLED_TASKS, load_task

GOOD = {"id": "no-net", "description": "No network.", "checker": {"type": "python_ast", "imports": ["socket"]}}


def task_with(tmp_path, policies):
    root = tmp_path / "mytask"
    shutil.copytree(BUNDLED_TASKS / "arith-python", root)
    spec = yaml.safe_load((root / "task.yaml").read_text())
    (root / "task.yaml").write_text(yaml.safe_dump({**spec, "policies": policies}))
    return load_task(str(root))


def test_a_policy_naming_a_tool_the_task_lacks_is_a_clear_error(tmp_path):
    browse = {"id": "local", "description": "Local only.", "checker": {"type": "url_allowlist", "allow": ["localhost"]}}
    task = task_with(tmp_path, [GOOD, browse])
    with pytest.raises(AgentRLError) as info:
        task_policies(task)
    message = str(info.value)
    assert str(task.root / "task.yaml") in message and "policies[1] (local).checker" in message
    assert "browser" in message and "its tools: python" in message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({**GOOD, "action": "nuke"}, "policies[0] (no-net).action: Input should be 'block', 'terminate'"),
        ({**GOOD, "checker": {"type": "magic"}}, "policies[0] (no-net).checker.type: unknown checker 'magic'"),
        ({**GOOD, "checker": {"imports": ["x"]}}, "policies[0] (no-net).checker.type: missing"),
        (
            {**GOOD, "checker": {"type": "python_ast", "import": ["x"]}},
            "policies[0] (no-net).checker.import: unknown key",
        ),
        ({**GOOD, "checker": {"type": "regex", "patterns": ["("]}}, "is not a valid regular expression"),
        ({**GOOD, "checker": {"type": "budget", "tool": "python"}}, "set max_calls, or value and max_value"),
        ({**GOOD, "penalty": -1}, "policies[0] (no-net).penalty: Input should be greater than or equal to 0"),
        ({**GOOD, "colour": "red"}, "policies[0] (no-net).colour: unknown key"),
        ({"id": "x"}, "policies[0] (x).description: Field required"),
    ],
)
def test_schema_errors_name_the_file_and_key(entry, expected):
    with pytest.raises(AgentRLError) as info:
        parse_policies([entry], "tasks/t/task.yaml", ["python"])
    assert str(info.value).startswith("tasks/t/task.yaml: ") and expected in str(info.value)


def test_duplicate_ids_are_an_error():
    with pytest.raises(AgentRLError, match="duplicate policy id 'no-net'"):
        parse_policies([GOOD, GOOD], "task.yaml", ["python"])


def test_penalty_defaults():
    (penalize, block) = parse_policies(
        [{**GOOD, "action": "penalize"}, {**GOOD, "id": "b", "action": "block"}], "task.yaml", ["python"]
    )
    assert penalize.penalty(0.5) == 0.5 and block.penalty(0.5) == 0.0


def test_build_guard_only_with_policies_and_enabled(tmp_path, arith_task):
    cfg = build_config([{"task": "arith-python"}])
    assert build_guard(arith_task, cfg) is None  # no policies
    task = task_with(tmp_path, [GOOD])
    guard = build_guard(task, cfg)
    assert [p.id for p in guard.policies] == ["no-net"] and guard.fail_mode == "open"
    assert build_guard(task, build_config([{"task": "arith-python"}], ["guard.enabled=false"])) is None


def test_the_guard_config_section_validates():
    with pytest.raises(AgentRLError, match="guard.fail_mode"):
        build_config([{}], ["guard.fail_mode=sometimes"])
