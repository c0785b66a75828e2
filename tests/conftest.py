"""Shared fixtures: a tiny tokenizer and model, and a tiny config that trains in seconds."""

from __future__ import annotations

import pytest

from agentrl.config import ModelConfig, build_config
from agentrl.models.tiny import build_tiny_model, train_tokenizer
from agentrl.tasks import load_task

TINY_OVERRIDES = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.intermediate_size=64",
    "model.num_heads=2",
    "sft.steps=20",
    "sft.num_demos=64",
    "sft.batch_size=16",
    "rollout.group_size=4",
    "rollout.prompts_per_step=2",
    "rollout.max_new_tokens=24",
    "train.steps=3",
    "eval.problems=4",
    "eval.samples=2",
    "sandbox.timeout=5",
]


@pytest.fixture(scope="session")
def arith_task():
    return load_task("arith-python")


@pytest.fixture(scope="session")
def tokenizer(arith_task):
    return train_tokenizer(arith_task.vocabulary_sample, 320)


@pytest.fixture()
def tiny_model(tokenizer):
    import torch

    torch.manual_seed(0)
    return build_tiny_model(tokenizer, ModelConfig(hidden_size=32, num_layers=1, intermediate_size=64, num_heads=2))


@pytest.fixture()
def make_config(tmp_path):
    """A tiny arith-python config writing runs under tmp_path; extra `key=value` overrides on top."""

    def make(*overrides: str):
        return build_config([{"task": "arith-python"}], [*TINY_OVERRIDES, f"run.runs_dir={tmp_path}", *overrides])

    return make
