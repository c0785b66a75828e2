"""A toy RL problem that learns in seconds: reward is the share of sampled tokens that are digits."""

from __future__ import annotations

import torch

from agentrl.config import build_config
from agentrl.engines import HFEngine, SamplingParams
from agentrl.train.trainer import rl_step
from agentrl.trajectory import Step, Trajectory


def test_grpo_update_raises_the_reward(tiny_model, tokenizer):
    torch.manual_seed(0)
    cfg = build_config([], ["train.lr=0.01", "algo.minibatch_size=64"])
    optimizer = torch.optim.AdamW(tiny_model.parameters(), lr=cfg.train.lr)
    engine = HFEngine(tiny_model, [tokenizer.eos_token_id], tokenizer.pad_token_id, 64, seed=0)
    digits = {tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    prompt = tokenizer.encode("Say digits:")
    history = []
    for step in range(20):
        gens = engine.generate([prompt] * 32, SamplingParams(max_new_tokens=6))
        trajs = []
        for i, g in enumerate(gens):
            t = Trajectory(f"q{i // 8}", f"{step}/q{i // 8}", prompt, [Step(g.token_ids, g.logprobs, "", "answer")])
            t.reward = sum(tok in digits for tok in g.token_ids) / len(g.token_ids)
            trajs.append(t)
        history.append(sum(t.reward for t in trajs) / len(trajs))
        metrics = rl_step(tiny_model, None, optimizer, trajs, cfg, tokenizer.pad_token_id, engine.generator)
        assert {"pg_loss", "clipfrac", "approx_kl", "entropy", "grad_norm"} <= metrics.keys()
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    assert last > first + 0.3, history
