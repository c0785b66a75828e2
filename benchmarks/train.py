"""Trainer and rollout throughput of the tiny default model, each beside a baseline measured in the same run.

- rollout: agentrl's HF engine (batched, KV cache, stop rules, log-probs) vs plain `model.generate` sampling
  the same prompts for the same number of new tokens; tokens/s and the ratio.
- update: tokens/s of one policy update (forward + backward + AdamW) on a batch of trajectories, beside
  the same model's plain causal-LM loss on the same tokens (the floor any RL loss adds to).
Medians over repeats (the machine is shared and noisy). Run: `python benchmarks/train.py [--repeats 5]`.
"""

from __future__ import annotations

import argparse

import torch
from timing import median_time, plain_generate

from agentrl.config import build_config
from agentrl.engines import HFEngine, SamplingParams
from agentrl.models import load_policy
from agentrl.rollout.formats import chat_prompt_ids
from agentrl.tasks import load_task
from agentrl.train.batch import collate
from agentrl.train.trainer import rl_step
from agentrl.trajectory import Step, Trajectory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args()

    task = load_task("arith-python")
    cfg = build_config([{"task": task.name}, task.spec.defaults], [])
    model, tok = load_policy(cfg.model, task.vocabulary_sample, seed=0)
    model.eval()
    prompts = [chat_prompt_ids(tok, task.messages(p)) for p in task.problems("train", args.batch)]
    n_new = args.new_tokens
    engine = HFEngine(model, [], tok.pad_token_id, cfg.model.max_length, seed=0)  # no EOS: exactly n_new tokens

    def ours():
        gens = engine.generate(prompts, SamplingParams(max_new_tokens=n_new))
        assert all(len(g.token_ids) == n_new for g in gens)

    plain = plain_generate(model, prompts, tok.pad_token_id, n_new)

    ours()
    plain()  # warm-up
    t_ours, t_plain = median_time(ours, args.repeats), median_time(plain, args.repeats)
    gen_tokens = args.batch * n_new

    gens = engine.generate(prompts, SamplingParams(max_new_tokens=n_new))
    trajs = []
    for i, (p, g) in enumerate(zip(prompts, gens, strict=True)):
        t = Trajectory(str(i), str(i // 8), p, [Step(g.token_ids, g.logprobs, "", "answer")])
        t.reward = float(i % 3 == 0)
        trajs.append(t)
    # each trajectory on its own, as the LM step computes it (packing is measured by benchmarks/shared_prefix.py)
    cfg_update = build_config([], [f"algo.minibatch_size={len(trajs)}", "train.shared_prefix=off"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    batch = collate(trajs, tok.pad_token_id)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)

    def update():
        rl_step(model, None, optimizer, trajs, cfg_update, tok.pad_token_id, engine.generator)

    def lm_step():
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    update()
    lm_step()
    t_update, t_lm = median_time(update, args.repeats), median_time(lm_step, args.repeats)
    upd_tokens = batch.num_model_tokens

    params = sum(p.numel() for p in model.parameters())
    print(f"tiny model: {params / 1e6:.2f}M parameters, batch {args.batch}, threads {torch.get_num_threads()}")
    print(f"{'measure':<34}{'agentrl':>12}{'baseline':>12}{'ratio':>8}")
    print(
        f"{'rollout tokens/s (vs generate)':<34}{gen_tokens / t_ours:>12.0f}{gen_tokens / t_plain:>12.0f}"
        f"{t_plain / t_ours:>8.2f}"
    )
    print(
        f"{'update tokens/s (vs LM loss step)':<34}{upd_tokens / t_update:>12.0f}{upd_tokens / t_lm:>12.0f}"
        f"{t_lm / t_update:>8.2f}"
    )


if __name__ == "__main__":
    main()
