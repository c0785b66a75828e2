"""The one-line step summary printed during training."""

from __future__ import annotations

from agentrl.train.progress import describe

STEP = {"step": 3, "reward_mean": 0.5, "pass_rate": 0.25, "tool_calls": 2.0, "approx_kl": 0.0001, "seconds": 1.5}


def test_the_step_line_shows_the_kl_to_the_reference_when_there_is_one():
    assert describe({**STEP, "kl": 0.0185}) == ("step 3  reward 0.500  pass 0.250  tools 2.00  kl(ref) +0.0185  1.5s")
    assert "  kl +0.0001  " in describe(STEP)  # no reference: the step's old-vs-new estimate


def test_an_sft_step_shows_its_loss():
    assert describe({"sft_loss": 0.123}) == "loss 0.123"
