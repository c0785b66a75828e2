"""Fixtures of the training tests."""

from __future__ import annotations

import pytest
import torch


def rms_norm_in_its_own_dtype(norm: torch.nn.Module):
    """transformers' RMSNorm computes in float32 whatever the model's dtype, so its backward rounds gradients to
    float32 and two correct orders of summing them differ by ~1e-8; in float64 throughout they agree to ~1e-15."""

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return norm.weight * hidden * torch.rsqrt(variance + norm.variance_epsilon)

    return forward


@pytest.fixture()
def model64(tiny_model):
    for module in tiny_model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = rms_norm_in_its_own_dtype(module)
    return tiny_model.double().train()
