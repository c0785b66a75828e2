"""Eval specs from options and suite files; the shipped suites are valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrl.errors import AgentRLError
from agentrl.evals.spec import build_spec, spec_from_options

SUITES = sorted((Path(__file__).parents[2] / "evals").glob("*.yaml"))


def test_names_become_references_and_defaults_apply():
    spec = build_spec({"tasks": ["arith-python"], "models": ["runs/x"]})
    assert spec.tasks[0].name == "arith-python" and spec.models[0].path == "runs/x"
    assert (spec.n, spec.k, spec.tools, spec.split) == (16, [1, 2, 4, 8, 16], [True], "test")
    assert spec.batch_problems == 8  # about 128 trajectories per batch


def test_k_larger_than_n_is_a_clear_error():
    with pytest.raises(AgentRLError, match="pass@32 needs at least 32 samples per problem, but n=16"):
        build_spec({"tasks": ["t"], "models": ["m"], "k": [1, 32]})


def test_options_override_the_suite(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks: [arith-python]\nmodels: [{path: a, label: A}, b]\nn: 8\nk: [1, 8]\ntools: false\n"
    )
    spec = spec_from_options(suite, {"n": 4, "k": [1, 2, 4], "models": None, "out": "o"})
    assert (spec.n, spec.k, spec.out, spec.tools) == (4, [1, 2, 4], "o", [False])
    assert [(m.path, m.label) for m in spec.models] == [("a", "A"), ("b", None)]


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ("tasks: [t]\nmodels: [m]\nsamples: 3\n", "unknown key\\(s\\) samples"),
        ("tasks: [t]\nmodels: [m]\nn: zero\n", "n: Input should be a valid integer"),
        ("models: [m]\n", "no task to evaluate"),
        ("tasks: [t]\n", "no model to evaluate"),
    ],
)
def test_suite_errors_name_the_problem(tmp_path, suite, message):
    path = tmp_path / "bad.yaml"
    path.write_text(suite)
    with pytest.raises(AgentRLError, match=message):
        spec_from_options(path, {})


@pytest.mark.parametrize("suite", SUITES, ids=[p.name for p in SUITES])
def test_shipped_suites_are_valid(suite):
    spec = spec_from_options(suite, {})
    assert spec.name and spec.description


def test_the_demo_suite_is_the_readme_table():
    spec = spec_from_options(Path(__file__).parents[2] / "evals" / "arith-python-demo.yaml", {})
    assert [t.name for t in spec.tasks] == ["arith-python"]
    assert [m.path for m in spec.models] == ["runs/demo/sft_model", "runs/demo"]
    assert spec.tools == [True, False] and spec.k == [1, 2, 4, 8, 16] and spec.n == 16
