"""Cold-start SFT: teach the policy the tool-call format from the task's own expert demonstrations.

Demonstrations go through the real agent loop with a scripted policy, so their observations are exactly what
the tools return and their tokens are laid out exactly as in RL rollouts. Loss: masked NLL on model tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from agentrl.algos import masked_mean
from agentrl.config import SFTConfig
from agentrl.errors import AgentRLError
from agentrl.rollout.chain import AgentLoop
from agentrl.tasks import Task
from agentrl.train.batch import collate, token_logprobs
from agentrl.trajectory import Trajectory

WARMUP_STEPS = 10


def expert_trajectories(loop: AgentLoop, task: Task, n: int, seed: int) -> list[Trajectory]:
    """Run the task's demonstrations through the agent loop; each must pass the task's own verifier."""
    problems = task.problems("train", n, seed)
    trajs = loop.run(problems, 1, loop.scripted_policy({p.id: task.demo(p) for p in problems}), step_tag="demo/")
    failed = [t for t in trajs if not t.correct]
    if failed:
        t = failed[0]
        raise AgentRLError(
            f"task {task.name}: {len(failed)}/{len(trajs)} expert demonstrations fail the verifier, e.g. "
            f"problem {t.problem_id} answered {t.answer!r} (steps: {[s.action_text for s in t.steps]})"
        )
    return trajs


def lr_factor(step: int, cfg: SFTConfig) -> float:
    """The share of `cfg.lr` at `step`: linear warm-up, then constant or a cosine decay to 0 at `cfg.steps`."""
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    return warm if cfg.schedule == "constant" else warm * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))


def sft(
    model,
    demos: list[Trajectory],
    cfg: SFTConfig,
    pad_token_id: int,
    generator: torch.Generator,
    on_step: Callable[[int, float], None] = lambda step, loss: None,
) -> float:
    """Masked NLL over model tokens; returns the last loss."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
    model.train()
    loss_value = float("nan")
    for step in range(cfg.steps):
        rows = torch.randint(len(demos), (min(cfg.batch_size, len(demos)),), generator=generator)
        batch = collate([demos[i] for i in rows.tolist()], pad_token_id).to(device)
        logp = token_logprobs(model, batch)
        loss = -masked_mean(logp, batch.response_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        loss_value = loss.item()
        on_step(step, loss_value)
    return loss_value
