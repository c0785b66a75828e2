"""Training curves read from a run's metrics.jsonl go into strict-JSON reports."""

from __future__ import annotations

import json

from agentrl.evals.models import ResolvedModel
from agentrl.evals.runner import training_curves


def test_a_nan_metric_of_a_run_becomes_null(tmp_path):
    run = tmp_path / "web-run"
    run.mkdir()
    # Python's json writes NaN for a mean over nothing, e.g. first_code_pos on a task without code
    (run / "metrics.jsonl").write_text(
        json.dumps({"step": 1, "stage": "rl", "pass_rate": 0.5, "first_code_pos": float("nan")}) + "\n"
    )
    (curve,) = training_curves([ResolvedModel("after RL", run / "checkpoints", run=run)])
    assert curve["metrics"] == [{"step": 1, "stage": "rl", "pass_rate": 0.5, "first_code_pos": None}]
    json.dumps(curve, allow_nan=False)  # what write_reports does
