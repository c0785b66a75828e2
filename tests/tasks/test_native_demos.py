"""Every bundled task's structured demonstrations run in native format with every fixture's own template."""

from __future__ import annotations

import pytest

from agentrl.models.fixtures import FIXTURES, build_fixture
from agentrl.models.loading import load_tokenizer
from agentrl.task_authoring.render import render_demos
from agentrl.tasks import BUNDLED_TASKS

TASKS = sorted(p.parent.name for p in BUNDLED_TASKS.glob("*/task.yaml"))


@pytest.fixture(scope="module")
def fixture_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixtures")
    return {kind: build_fixture(kind, root / kind) for kind in FIXTURES}


@pytest.mark.parametrize("kind", FIXTURES)
@pytest.mark.parametrize("task", TASKS)
def test_demos_pass_the_verifier_in_the_models_own_format(task, kind, fixture_dirs):
    rendered = render_demos(task, str(fixture_dirs[kind]), "native", 2, ["model.max_length=4096"])
    tokenizer = load_tokenizer(fixture_dirs[kind])
    end_of_turn = tokenizer.convert_tokens_to_ids("<|eot_id|>" if kind == "llama3.1" else "<|im_end|>")
    assert rendered.format["format"] == "native"
    for traj in rendered.trajectories:
        assert traj.score > 0 and traj.done == "answer", [s.action_text for s in traj.steps]
        assert all(s.action_ids[-1] == end_of_turn and s.error is None for s in traj.steps)
        assert sum(traj.response_mask) == sum(len(s.action_ids) for s in traj.steps)
