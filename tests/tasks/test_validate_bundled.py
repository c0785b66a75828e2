"""Every bundled task passes `agentrl tasks validate`, with no check skipped and no warning."""

from __future__ import annotations

import pytest

from agentrl.task_authoring import validate_task
from agentrl.tasks import BUNDLED_TASKS

BUNDLED = sorted(p.parent.name for p in BUNDLED_TASKS.glob("*/task.yaml"))


def _param(name: str):
    """Tasks that drive a real browser take 10-20 s to validate here: they run with the slow tests."""
    uses_browser = "browser" in (BUNDLED_TASKS / name / "task.yaml").read_text()
    return pytest.param(name, marks=pytest.mark.slow) if uses_browser else name


def test_the_bundled_tasks_include_arith_python_and_code_tests():
    assert {"arith-python", "code-tests"} <= set(BUNDLED)


@pytest.mark.parametrize("name", [_param(n) for n in BUNDLED])
def test_bundled_task_validates(name):
    report = validate_task(name, problems=2)
    assert report.ok, report.text()
    assert [c.status for c in report.checks] == ["ok"] * len(report.checks), report.text()
    assert report.check("demos").summary.startswith("2/2 expert demonstrations pass")
