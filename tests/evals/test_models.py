"""Model references: a run means its newest checkpoint; sft_model is the model before RL; labels are readable."""

from __future__ import annotations

import time

import pytest

from agentrl.errors import AgentRLError
from agentrl.evals.models import resolve_model, resolve_models
from agentrl.evals.spec import ModelRef


def test_a_run_is_its_newest_checkpoint(fake_run):
    model = resolve_model(ModelRef(path=str(fake_run)))
    assert model.path == fake_run / "checkpoints" / "step-000003"
    assert (model.label, model.run, model.step) == ("tiny after RL (step 3)", fake_run, 3)


def test_sft_model_and_a_checkpoint_inside_a_run(fake_run):
    before = resolve_model(ModelRef(path=str(fake_run / "sft_model")))
    assert (before.label, before.run, before.step) == ("tiny before RL", fake_run, 0)
    step2 = resolve_model(ModelRef(path=str(fake_run / "checkpoints" / "step-000002"), label="mine"))
    assert (step2.label, step2.run, step2.step) == ("mine", fake_run, 2)


def test_a_plain_model_directory_is_named_after_itself(fake_run, tmp_path):
    plain = (fake_run / "sft_model").rename(tmp_path / "my-model")
    model = resolve_model(ModelRef(path=str(plain)))
    assert (model.label, model.run) == ("my-model", None)


def test_same_labels_get_a_suffix(fake_run):
    refs = [ModelRef(path=str(fake_run)), ModelRef(path=str(fake_run / "checkpoints" / "step-000003"), label="x")]
    refs.append(ModelRef(path=str(fake_run / "sft_model"), label="x"))
    assert [m.label for m in resolve_models(refs)] == ["tiny after RL (step 3)", "x", "x #2"]


def test_the_fingerprint_changes_with_the_weights(fake_run):
    model = resolve_model(ModelRef(path=str(fake_run / "sft_model")))
    before = model.fingerprint
    time.sleep(0.01)
    weights = fake_run / "sft_model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes())
    assert model.fingerprint != before


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda run: run / "nope", "no such directory"),
        (lambda run: run / "checkpoints", "not a transformers model directory"),
    ],
)
def test_bad_references_say_what_to_give(fake_run, setup, message):
    with pytest.raises(AgentRLError, match=message):
        resolve_model(ModelRef(path=str(setup(fake_run))))


def test_a_run_without_checkpoints_points_to_sft_model(fake_run):
    for ckpt in (fake_run / "checkpoints").iterdir():
        (ckpt / "state.json").unlink()
    with pytest.raises(AgentRLError, match="sft_model for the model before RL"):
        resolve_model(ModelRef(path=str(fake_run)))
