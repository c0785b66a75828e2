"""Parity with verl: our grpo / rloo advantages and policy loss equal verl's `core_algos` on random inputs.

verl pins a transformers version that conflicts with ours, so it lives in its own interpreter: the test
runs a small script there (`AGENTRL_VERL_PYTHON`, else `.venv-verl/bin/python`) and skips without it.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from agentrl.algos import agg_loss, grpo_advantages, kl_penalty, policy_loss, rloo_advantages

REPO = Path(__file__).resolve().parents[2]
AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")

VERL_SCRIPT = r"""
import sys
import numpy as np
import torch
from verl.trainer.ppo import core_algos as C

data = torch.load(sys.argv[1])
index = np.array(data["group_ids"], dtype=object)
mask = data["response_mask"]
out = {}
for norm in (True, False):
    adv, _ = C.compute_grpo_outcome_advantage(
        data["token_level_rewards"].clone(), mask, index, epsilon=1e-6, norm_adv_by_std_in_grpo=norm
    )
    out[f"grpo_{norm}"] = adv
out["rloo"], _ = C.compute_rloo_outcome_advantage(data["token_level_rewards"].clone(), mask, index)


class ActorConfig:  # the fields compute_policy_loss_vanilla reads
    clip_ratio = 0.2
    clip_ratio_low = 0.2
    clip_ratio_high = 0.28
    clip_ratio_c = 3.0
    global_batch_info = {}

    def get(self, key, default=None):
        return getattr(self, key, default)


for mode in data["agg_modes"]:
    loss, metrics = C.compute_policy_loss_vanilla(
        data["old_logprobs"], data["logprobs"], data["advantages"], mask, mode, config=ActorConfig()
    )
    out[f"pg_{mode}"] = loss
    out[f"metrics_{mode}"] = metrics
    for kl_type in ("k1", "low_var_kl"):
        kld = C.kl_penalty(data["logprobs"], data["ref_logprobs"], kl_type)
        out[f"kl_{kl_type}_{mode}"] = C.agg_loss(kld, mask, mode)
torch.save(out, sys.argv[2])
"""


def verl_python() -> Path | None:
    path = Path(os.environ.get("AGENTRL_VERL_PYTHON", REPO / ".venv-verl" / "bin" / "python"))
    return path if path.exists() else None


def random_batch() -> dict:
    gen = torch.Generator().manual_seed(0)
    sizes = [1, 2, 3, 4, 5, 8, 1, 8]
    group_ids = [f"prompt-{g}" for g, size in enumerate(sizes) for _ in range(size)]
    batch, length = len(group_ids), 12
    binary = torch.randint(0, 2, (batch,), generator=gen).float()
    rewards = torch.where(torch.arange(batch) % 2 == 0, binary, torch.rand(batch, generator=gen))
    rewards[sum(sizes[:5]) : sum(sizes[:6])] = 1.0  # one group where every sample is right
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    response_mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    response_mask[:, 1::3] *= (torch.rand(batch, 1, generator=gen) > 0.5).float()  # observation holes
    response_mask[:, 0] = 1.0
    token_level_rewards = torch.zeros(batch, length)
    token_level_rewards[torch.arange(batch), lengths - 1] = rewards
    old_logprobs = -torch.rand(batch, length, generator=gen) * 3
    return dict(
        group_ids=group_ids,
        rewards=rewards,
        token_level_rewards=token_level_rewards,
        response_mask=response_mask,
        old_logprobs=old_logprobs,
        logprobs=old_logprobs + torch.randn(batch, length, generator=gen) * 0.4,
        ref_logprobs=old_logprobs + torch.randn(batch, length, generator=gen) * 0.4,
        advantages=torch.randn(batch, length, generator=gen) * 2,
        agg_modes=list(AGG_MODES),
    )


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    python = verl_python()
    if python is None:
        pytest.skip(
            "verl interpreter not found: set AGENTRL_VERL_PYTHON, or build .venv-verl with "
            "`python3 -m venv .venv-verl && .venv-verl/bin/pip install torch==2.13.0 verl==0.9.1`"
        )
    tmp = tmp_path_factory.mktemp("verl")
    data = random_batch()
    torch.save(data, tmp / "in.pt")
    (tmp / "verl_side.py").write_text(VERL_SCRIPT)
    run = subprocess.run(
        [str(python), str(tmp / "verl_side.py"), str(tmp / "in.pt"), str(tmp / "out.pt")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, f"verl side failed:\n{run.stderr[-3000:]}"
    return data, torch.load(tmp / "out.pt")


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_grpo_matches_verl(parity, norm_by_std):
    data, verl = parity
    ours = grpo_advantages(data["rewards"], data["group_ids"], norm_by_std=norm_by_std)
    torch.testing.assert_close(ours[:, None] * data["response_mask"], verl[f"grpo_{norm_by_std}"])


def test_rloo_matches_verl(parity):
    data, verl = parity
    ours = rloo_advantages(data["rewards"], data["group_ids"])
    torch.testing.assert_close(ours[:, None] * data["response_mask"], verl["rloo"])


@pytest.mark.parametrize("agg", AGG_MODES)
def test_policy_loss_matches_verl(parity, agg):
    data, verl = parity
    loss, metrics = policy_loss(
        data["logprobs"], data["old_logprobs"], data["advantages"], data["response_mask"], agg=agg
    )
    torch.testing.assert_close(loss, verl[f"pg_{agg}"])
    verl_metrics = verl[f"metrics_{agg}"]
    assert metrics["clipfrac"] == pytest.approx(verl_metrics["actor/pg_clipfrac"], abs=1e-6)
    assert metrics["clipfrac_lower"] == pytest.approx(verl_metrics["actor/pg_clipfrac_lower"], abs=1e-6)
    assert metrics["approx_kl"] == pytest.approx(verl_metrics["actor/ppo_kl"], abs=1e-6)


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("kl_type", ["k1", "low_var_kl"])
def test_kl_matches_verl(parity, agg, kl_type):
    data, verl = parity
    ours = agg_loss(kl_penalty(data["logprobs"], data["ref_logprobs"], kl_type), data["response_mask"], agg)
    torch.testing.assert_close(ours, verl[f"kl_{kl_type}_{agg}"])
