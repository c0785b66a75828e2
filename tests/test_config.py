import pytest

from agentrl.config import build_config, parse_override, read_yaml
from agentrl.errors import AgentRLError


def test_overrides_parse_as_yaml_values():
    cfg = build_config([], ["train.steps=7", "algo.shaping=[aspo]", "rollout.temperature=0.5", "model.path=/x"])
    assert (cfg.train.steps, cfg.algo.shaping, cfg.rollout.temperature, cfg.model.path) == (
        7,
        ["aspo"],
        0.5,
        "/x",
    )


def test_layers_merge_and_overrides_win():
    cfg = build_config([{"train": {"steps": 1, "lr": 0.5}}, {"train": {"steps": 2}}], ["train.lr=0.1"])
    assert (cfg.train.steps, cfg.train.lr) == (2, 0.1)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stepz=3", "train.stepz: unknown key"),
        ("trian.steps=3", "trian: unknown key"),
        ("train.steps=abc", "train.steps: Input should be a valid integer"),
        ("rollout.group_size=0", "rollout.group_size: Input should be greater than or equal to 1"),
        ("algo.loss_agg=mean", "algo.loss_agg: Input should be"),
        ("steps", "bad override 'steps'"),
        ("train.steps.x=1", "train.steps is not a section"),
        ("rollout.allocation=greedy", "rollout.allocation: Input should be 'uniform', 'knapsack' or 'adaptive'"),
    ],
)
def test_bad_values_name_the_key_in_one_line(override, message):
    with pytest.raises(AgentRLError) as err:
        build_config([{"train": {"steps": 1}}], [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: 3\n  lr: [1, 2\n")
    with pytest.raises(AgentRLError, match=r"bad.yaml:\d+: malformed YAML"):
        read_yaml(bad)


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(AgentRLError, match="not found"):
        read_yaml(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(AgentRLError, match="expected a mapping"):
        read_yaml(tmp_path / "list.yaml")


def test_parse_override_keeps_plain_strings():
    assert parse_override("run.name=my-run") == (["run", "name"], "my-run")


def test_a_run_written_with_overlap_tools_still_loads_as_its_schedule(tmp_path):
    for overlap, schedule in ((True, "halves"), (False, "rounds")):
        path = tmp_path / "config.yaml"
        path.write_text(f"task: arith-python\nrollout:\n  overlap_tools: {str(overlap).lower()}\n")
        assert build_config([read_yaml(path)]).rollout.schedule == schedule


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["rollout.allocation=adaptive", "rollout.presample=0"], "stages of rollout.presample: set it to 1 or more"),
        (["train.problems=3", "rollout.prompts_per_step=4"], "train.problems must be at least rollout.prompts_per"),
        (["sandbox.runtime=runsc"], "sandbox.runtime picks a docker container runtime; the local backend has none"),
    ],
)
def test_settings_that_cannot_work_together_are_refused(overrides, message):
    with pytest.raises(AgentRLError, match=message):
        build_config([], overrides)
