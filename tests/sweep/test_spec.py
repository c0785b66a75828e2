"""Sweep specs: grid expansion, point names, the command line's --grid values, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrl.errors import AgentRLError
from agentrl.sweep.spec import SweepSpec, build_spec, parse_grid, split_values
from agentrl.tasks import task_config


def test_the_grid_expands_to_its_cross_product_in_order_with_readable_names():
    spec = SweepSpec(
        name="s", task="arith-python", grid={"algo.advantage": ["grpo", "rloo"], "algo.shaping": [[], ["aspo"]]}
    )
    points = spec.grid_points()
    assert [p.label for p in points] == [
        "advantage-grpo_shaping-none",
        "advantage-grpo_shaping-aspo",
        "advantage-rloo_shaping-none",
        "advantage-rloo_shaping-aspo",
    ]
    assert points[1].overrides == ("algo.advantage=grpo", "algo.shaping=[aspo]")
    assert spec.baseline_point() == points[0]


def test_keys_with_the_same_last_part_keep_their_full_names():
    spec = SweepSpec(name="s", task="t", grid={"train.lr": [0.1], "sft.lr": [0.5]})
    assert [p.label for p in spec.grid_points()] == ["train.lr-0.1_sft.lr-0.5"]


def test_an_empty_grid_is_one_point_and_values_that_name_the_same_folder_are_refused():
    assert [p.label for p in SweepSpec(name="s", task="t").grid_points()] == ["base"]
    with pytest.raises(AgentRLError, match="differ only in punctuation"):
        SweepSpec(name="s", task="t", grid={"run.name": ["a b", "a/b"]}).grid_points()


def test_grid_options_split_on_commas_outside_brackets_and_read_values_as_yaml():
    assert split_values("a, b,[c,d],{e: 1, f: 2}") == ["a", "b", "[c,d]", "{e: 1, f: 2}"]
    assert parse_grid(["algo.shaping=[],[aspo]", "train.lr=1e-4,0.001"]) == {
        "algo.shaping": [[], ["aspo"]],
        "train.lr": ["1e-4", 0.001],  # YAML 1.1: 1e-4 without a dot is a string; the config reads it as a float
    }
    for bad in ["algo.advantage", "=grpo", "algo.advantage="]:
        with pytest.raises(AgentRLError, match="bad --grid"):
            parse_grid([bad])


def test_a_spec_file_takes_command_line_options_on_top(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: algos\ntask: arith-python\ngrid:\n  algo.advantage: [grpo, rloo]\nseeds: 3\n")
    spec = build_spec(path, None, ["train.lr=0.1,0.2"], ["train.steps=2"], seeds=2, baseline=None, name=None)
    assert (spec.name, spec.seeds, spec.sets) == ("algos", 2, ["train.steps=2"])
    assert list(spec.grid) == ["algo.advantage", "train.lr"]


def test_bad_specs_say_what_is_wrong(tmp_path):
    with pytest.raises(AgentRLError, match="give a TASK"):
        build_spec(None, None, [], [])
    with pytest.raises(AgentRLError, match="no such point"):
        build_spec(None, "arith-python", ["algo.advantage=grpo,rloo"], [], baseline="advantage-gtpo")
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ntask: arith-python\nseed: 3\n")
    with pytest.raises(AgentRLError, match="seed"):
        build_spec(path, None, [], [])
    path.write_text("name: x\ntask: arith-python\ngrid: {algo.advantage: []}\n")
    with pytest.raises(AgentRLError, match="no values for algo.advantage"):
        build_spec(path, None, [], [])


def test_named_points_run_the_grid_at_each_and_keep_their_own_settings_first():
    spec = SweepSpec(
        name="s",
        task="arith-python",
        points={"chain": [], "tree": ["rollout.sampler=tree", "algo.advantage=tree_grpo"]},
        grid={"train.lr": [0.1, 0.2]},
        baseline="tree_lr-0.2",
    )
    points = spec.grid_points()
    assert [p.label for p in points] == ["chain_lr-0.1", "chain_lr-0.2", "tree_lr-0.1", "tree_lr-0.2"]
    assert points[3].overrides == ("rollout.sampler=tree", "algo.advantage=tree_grpo", "train.lr=0.2")
    assert spec.baseline_point() == points[3]
    alone = SweepSpec(name="s", task="t", points={"grpo+aspo": ["algo.shaping=[aspo]"], "rloo": []})
    assert [p.label for p in alone.grid_points()] == ["grpo+aspo", "rloo"]


def test_point_names_must_be_folder_names_and_a_budget_needs_a_match():
    with pytest.raises(ValueError, match="folder names"):
        SweepSpec(name="s", task="t", points={"a/b": []})
    with pytest.raises(ValueError, match="match is steps"):
        SweepSpec(name="s", task="t", budget=1000)
    assert SweepSpec(name="s", task="t", match="tokens", budget=1000).budget == 1000


def test_a_task_given_with_a_spec_runs_that_spec_on_it_in_a_folder_of_its_own(tmp_path):
    path = tmp_path / "algos.yaml"
    path.write_text("name: algos\ntask: arith-python\npoints: {grpo: [], rloo: [algo.advantage=rloo]}\n")
    spec = build_spec(path, "code-tests", [], [])
    assert (spec.name, spec.task) == ("algos-code-tests", "code-tests")


SWEEPS = Path(__file__).parents[2] / "sweeps"


def test_the_repository_sweeps_are_valid_specs():
    spec = build_spec(SWEEPS / "algorithms.yaml", None, [], [])
    assert [p.label for p in spec.grid_points()] == ["grpo", "tree-grpo", "gtpo", "grpo+aspo", "rloo"]
    assert (spec.match, spec.baseline_point().label, spec.seeds) == ("tokens", "grpo", 3)
    spec = build_spec(SWEEPS / "tree-vs-chain.yaml", None, [], [])
    assert [p.label for p in spec.grid_points()] == ["chain", "tree"] and spec.task == "code-tests"
    for path in SWEEPS.glob("*.yaml"):  # every point's config validates on its task
        spec = build_spec(path, None, [], [])
        for point in spec.grid_points():
            task_config(spec.task, None, [*spec.sets, *point.overrides])
