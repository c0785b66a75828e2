"""The local trainer: SFT cold start, then RL steps of rollout -> reward -> advantage -> PPO-clip update.

Reads top to bottom like CleanRL's ppo.py. Tasks, tools and engines are composed here and know nothing of
each other. Every completed step is checkpointed (atomically) before the next starts, so `--resume` loses
nothing and continues with the same RNG streams as an unbroken run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch

from agentrl.algos import AdvantageInputs, compute_advantages, policy_loss
from agentrl.config import Config
from agentrl.engines import Engine, SamplingParams, build_engine
from agentrl.errors import AgentRLError
from agentrl.guard import build_guard, guard_metrics
from agentrl.models import load_policy
from agentrl.models.loading import bf16_is_emulated, enable_checkpointing, load_pretrained
from agentrl.models.lora import AdapterOff, add_lora, require_peft
from agentrl.rollout.allocation import (
    Allocation,
    SuccessHistory,
    allocate,
    groups_with_spread,
    keep_with_spread,
    rollout_spread_share,
    spread_share,
)
from agentrl.rollout.chain import AgentLoop, Policy
from agentrl.rollout.reuse import ResponseBank
from agentrl.rollout.tree import SamplingCost, TreeGrowth
from agentrl.tasks import Problem, Task
from agentrl.tools import build_tools
from agentrl.train.batch import batched_logprobs, collate, micro_batches, token_logprobs
from agentrl.train.checkpoint import list_checkpoints, load_trainer_state, restore_rng, save_checkpoint
from agentrl.train.loggers import build_loggers
from agentrl.train.metrics import rollout_metrics
from agentrl.train.packing import packing_unsupported
from agentrl.train.rundir import RunDir
from agentrl.train.sft import expert_trajectories, sft
from agentrl.train.start import adopt_start, save_start
from agentrl.trajectory import Trajectory


@dataclass
class Hooks:
    """How the trainer reports progress (the CLI draws a progress bar; tests pass nothing)."""

    stage: Callable[[str, int], None] = lambda name, total: None
    advance: Callable[[dict], None] = lambda metrics: None
    log: Callable[[str], None] = lambda message: None


def evaluate(loop: AgentLoop, engine: Engine, task: Task, cfg: Config) -> dict[str, float]:
    """Held-out pass@1: the mean success over `eval.samples` samples of each test problem (unbiased)."""
    problems = task.problems("test", cfg.eval.problems, seed=0)
    params = SamplingParams(cfg.rollout.max_new_tokens, temperature=cfg.eval.temperature)
    trajs = loop.run(problems, cfg.eval.samples, loop.model_policy(engine, params), step_tag="eval/")
    metrics = rollout_metrics(trajs)
    return {"pass@1": metrics["pass_rate"], **metrics, **guard_metrics(trajs)}


def sample(
    loop: AgentLoop,
    problems: list[Problem],
    policy: Policy,
    cfg: Config,
    step: int,
    history: SuccessHistory | None = None,
    refill: int = 0,
) -> tuple[list[Trajectory], SamplingCost]:
    """The step's training trajectories, by chain (under rollout.allocation) or tree sampling, and what sampling
    them cost. Refill r of a step tags its groups `step.r/`, apart from the step's own. With tree sampling the
    allocation deals out trees (rollout.tree.trees per prompt under uniform)."""
    tag = f"{step}.{refill}/" if refill else f"{step}/"
    r = cfg.rollout
    grow = None
    if r.sampler == "tree":  # the allocation's unit is a tree
        grow = TreeGrowth(loop, policy, r.tree, cfg.train.seed * 1_000_003 + step + 7919 * refill, tag)
    unit = r.tree.trees if grow else r.group_size
    plan = Allocation(r.allocation, len(problems) * unit, r.presample, r.min_group, r.max_group or 2 * unit)
    run = grow or (lambda ps, counts: loop.run(ps, counts, policy, tag))
    trajs = allocate(problems, run, plan, history or SuccessHistory())
    return trajs, grow.cost if grow else SamplingCost.of(trajs)


def train_pool(task: Task, cfg: Config) -> list[Problem]:
    """The train-split problems (`train.problems` of them, or as many as the split has) a run draws its prompts from."""
    pool = task.problems("train", cfg.train.problems, seed=cfg.train.seed)
    if len(pool) < cfg.rollout.prompts_per_step:
        raise AgentRLError(
            f"task {task.name}: its train split gave {len(pool)} problems, fewer than rollout.prompts_per_step "
            f"({cfg.rollout.prompts_per_step}), and a step's prompts are distinct"
        )
    return pool


def step_problems(pool: list[Problem], seed: int, step: int, n: int, refill: int = 0) -> list[Problem]:
    """The prompts of RL step `step` (or of its refill round): a seeded draw of `n` distinct problems from the run's
    train pool."""
    picks = np.random.default_rng([seed, step, refill] if refill else [seed, step]).choice(len(pool), n, False)
    return [pool[i] for i in picks]


def sample_step(
    loop: AgentLoop,
    pool: list[Problem],
    policy: Policy,
    cfg: Config,
    step: int,
    history: SuccessHistory,
    bank: ResponseBank | None = None,
) -> tuple[list[Trajectory], SamplingCost, dict[str, float]]:
    """The step's trajectories and cost. With a response `bank` (algo.reuse_responses), each all-wrong group gains
    the latest earlier success of its problem, if any. With algo.filter_zero_variance, groups whose rewards are all
    equal are then dropped and new prompts sampled in their place (up to algo.max_refills rounds; every sampled
    token counts in the cost); if none has a spread, the step trains on what it sampled (all advantages 0)."""
    want = cfg.rollout.prompts_per_step
    reuse = bank.fill if bank is not None else list
    sampled, cost = sample(loop, step_problems(pool, cfg.train.seed, step, want), policy, cfg, step, history)
    sampled = reuse(sampled)
    refills = 0
    if cfg.algo.filter_zero_variance:
        while (missing := want - len(groups_with_spread(sampled))) > 0 and refills < cfg.algo.max_refills:
            refills += 1
            problems = step_problems(pool, cfg.train.seed, step, missing, refills)
            more, more_cost = sample(loop, problems, policy, cfg, step, history, refills)
            sampled, cost = sampled + reuse(more), cost + more_cost
    if bank is not None:
        bank.remember(sampled, step)
    trained = (keep_with_spread(sampled, want) or sampled) if cfg.algo.filter_zero_variance else sampled
    groups = len({t.group_id for t in sampled})
    metrics = {
        "groups_with_spread": spread_share(sampled),
        "rollouts_with_spread": rollout_spread_share(sampled),
        "groups_sampled": float(groups),
    }
    if cfg.algo.filter_zero_variance:
        metrics |= {"groups_dropped": float(groups - len({t.group_id for t in trained})), "refills": float(refills)}
    if bank is not None:
        metrics["reused"] = float(sum(t.reused_from is not None for t in trained))
    return trained, cost, metrics


def advantage_inputs(trajs: list[Trajectory], batch) -> AdvantageInputs:
    rewards = torch.tensor([t.reward for t in trajs])
    turns = max(len(t.steps) for t in trajs)
    format_errors = torch.tensor(
        [[s.error == "parse_error" for s in t.steps] + [False] * (turns - len(t.steps)) for t in trajs]
    )
    return AdvantageInputs(
        rewards=rewards,
        group_ids=[t.group_id for t in trajs],
        tree_ids=[t.tree_id for t in trajs] if all(t.tree_id for t in trajs) else None,
        response_mask=batch.response_mask,
        token_turn=batch.token_turn,
        format_errors=format_errors,
        codes=["\n".join(s.tool_args["code"] for s in t.steps if s.tool == "python") for t in trajs],
        correct=torch.tensor([t.correct for t in trajs]),
        first_code_pos=torch.tensor([t.first_tool_position("python") for t in trajs]),
        response_len=torch.tensor([float(len(t.response_ids)) for t in trajs]),
    )


def single_update(cfg: Config, batch_size: int) -> bool:
    """Whether the update is one optimizer step (one epoch, one minibatch). The policy is then still the one that
    sampled when the loss is computed, so the loss's own log-probs, detached, are the old ones (ratio 1): no
    separate pass computes them, as TRL does with one iteration."""
    return cfg.algo.ppo_epochs == 1 and cfg.algo.minibatch_size >= batch_size


def rl_step(model, ref_model, optimizer, trajs: list[Trajectory], cfg: Config, pad_id: int, gen: torch.Generator):
    """One policy update on a batch of trajectories; returns the update's metrics."""
    device = next(model.parameters()).device
    batch = collate(trajs, pad_id).to(device)
    advantages = compute_advantages(
        advantage_inputs(trajs, batch), cfg.algo.advantage, cfg.algo.shaping, **cfg.algo.params
    ).to(device)
    budget = cfg.train.micro_batch_tokens
    chunk = cfg.train.logits_chunk_mib
    groups = pack_groups(trajs, cfg, model)
    attention = cfg.train.shared_prefix  # how packs run, when `groups` packs them
    one_pass = single_update(cfg, len(trajs))
    whole = []
    if not one_pass or ref_model is not None:
        whole = micro_batches(batch, torch.arange(len(trajs), device=device), budget, groups, attention)
    old_logprobs = None if one_pass else batched_logprobs(model, batch, whole, chunk)
    # a reused trajectory's old log-probs are those of the policy that sampled it, recorded then
    reused = torch.tensor([t.reused_from is not None for t in trajs], device=device)
    ref_logprobs = batched_logprobs(ref_model, batch, whole, chunk) if ref_model is not None else None
    # micro-batch weights in float64: packing partitions the rows differently, float32 weights would round apart
    per_row = (
        batch.response_mask.sum(1) if cfg.algo.loss_agg == "token-mean" else batch.response_mask.sum(1) > 0
    ).double()
    stats: dict[str, list[float]] = {}
    forward_tokens = 0
    for epoch in range(cfg.algo.ppo_epochs):
        order = torch.randperm(len(trajs), generator=gen)
        for rows in order.split(cfg.algo.minibatch_size):
            rows = rows.to(device)
            optimizer.zero_grad(set_to_none=True)
            info: dict[str, float] = {}
            for micro, packed in micro_batches(batch, rows, budget, groups, attention):
                # the minibatch's loss is the weighted sum of its micro-batches' losses, whatever the aggregation
                weight = float(per_row[micro].sum() / per_row[rows].sum().clamp_min(1))
                mb = batch.select(micro).trim()
                width = mb.response_ids.shape[1]
                if epoch == 0:
                    forward_tokens += packed.tokens if packed is not None else int(mb.lengths.sum())
                logprobs, entropy = token_logprobs(model, mb, with_entropy=True, chunk_mib=chunk, packed=packed)
                old = logprobs.detach() if old_logprobs is None else old_logprobs[micro, :width]
                loss, micro_info = policy_loss(
                    logprobs,
                    torch.where(reused[micro, None], mb.sampling_logprobs.to(old.dtype), old),
                    advantages[micro, :width],
                    mb.response_mask,
                    clip_low=cfg.algo.clip_low,
                    clip_high=cfg.algo.clip_high,
                    agg=cfg.algo.loss_agg,
                    ref_logprobs=ref_logprobs[micro, :width] if ref_logprobs is not None else None,
                    kl_coef=cfg.algo.kl_coef,
                    kl_type=cfg.algo.kl_type,
                    entropy=entropy.detach(),
                )
                (loss * weight).backward()
                for key, value in micro_info.items():
                    info[key] = info.get(key, 0.0) + weight * value
            info["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm))
            for key, value in info.items():
                stats.setdefault(key, []).append(float(value))
            optimizer.step()
    return {key: sum(v) / len(v) for key, v in stats.items()} | {
        "update_tokens": batch.num_model_tokens,
        "forward_tokens": forward_tokens,
        "context_tokens": int(batch.lengths.sum()),
    }


def pack_groups(trajs: list[Trajectory], cfg: Config, model) -> list[int] | None:
    """The group of each trajectory (its prompt) when the update computes shared prefixes once, else None."""
    if cfg.train.shared_prefix == "off" or packing_unsupported(model) is not None:
        return None
    ids: dict[str, int] = {}
    return [ids.setdefault(t.group_id, len(ids)) for t in trajs]


def budget_spent(cfg: Config, state: dict) -> str | None:
    """Which RL budget the run has spent ("tokens" or "seconds"), if any."""
    if cfg.train.max_sampled_tokens is not None and state["rl_sampled_tokens"] >= cfg.train.max_sampled_tokens:
        return "tokens"
    if cfg.train.max_rl_seconds is not None and state["rl_seconds"] >= cfg.train.max_rl_seconds:
        return "seconds"
    return None


def cold_start(model, tokenizer, engine: Engine, loop: AgentLoop, task: Task, cfg: Config, hooks: Hooks):
    """SFT on the task's demonstrations (LoRA: an adapter, merged into the weights), then the held-out pass@1
    before RL; returns the model and the log records (the evaluation's last)."""
    records = []
    if cfg.sft.steps:
        demos = expert_trajectories(loop, task, cfg.sft.num_demos, cfg.train.seed)
        hooks.stage("sft", cfg.sft.steps)
        lora = cfg.model.lora if cfg.model.lora.r else None
        tuned = add_lora(model, lora) if lora else model
        last = sft(
            tuned,
            demos,
            cfg.sft,
            tokenizer.pad_token_id,
            engine.generator,
            lambda s, loss: hooks.advance({"sft_loss": loss}),
        )
        model = tuned.merge_and_unload() if lora else model  # RL starts from the merged weights
        records.append({"stage": "sft", "sft_loss": last, "demos": len(demos)})
        engine.sync_weights(model)
    hooks.stage("eval before RL", 0)
    model.eval()
    records.append({"stage": "eval_before", **evaluate(loop, engine, task, cfg)})
    return model, records


def train(
    cfg: Config,
    task: Task,
    run: RunDir,
    resume: bool = False,
    hooks: Hooks | None = None,
    start_from: RunDir | None = None,
) -> dict:
    """SFT (once), evaluate, RL for cfg.train.steps (or until its token or seconds budget is spent), evaluate;
    returns the summary. `start_from`: a run whose cold start (SFT and the evaluation before RL) this one shares
    instead of repeating it (`agentrl.train.start.shares_cold_start`)."""
    hooks = hooks or Hooks()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    device = cfg.train.device
    checkpoints = list_checkpoints(run.checkpoints) if resume else []
    with ExitStack() as stack:
        # --- the run's state and loggers (a tracker's missing package fails here, before any work) ---
        if checkpoints:
            state, extra = load_trainer_state(checkpoints[-1])
            run.truncate_after(state["step"])
        else:
            state, extra = {"step": 0, "eval_before": None}, None
        state.setdefault("rl_sampled_tokens", 0)
        state.setdefault("rl_seconds", 0.0)
        # resumed, the steps past the checkpoint run again: the trackers drop what they had of them, as metrics.jsonl
        logger = build_loggers(cfg, run, purge_step=state["step"] + 1 if checkpoints else None)
        stack.callback(logger.close)

        # --- set-up: policy, engine, tools, agent loop ---
        lora = cfg.model.lora if cfg.model.lora.r else None
        if lora:
            require_peft()
        if checkpoints:
            model, tokenizer = load_pretrained(checkpoints[-1], device, cfg.train.dtype, trainable_adapter=True)
            hooks.log(f"resumed from {checkpoints[-1]} (step {state['step']})")
        elif start_from:
            model, tokenizer = load_pretrained(start_from.sft_model, device, cfg.train.dtype)
        else:
            model, tokenizer = load_policy(cfg.model, task.vocabulary_sample, cfg.train.seed, device, cfg.train.dtype)
        if cfg.train.dtype == "bfloat16" and bf16_is_emulated(device):
            hooks.log("bfloat16 on a CPU without native bf16 instructions (AVX512-BF16, AMX): emulated, slower")
        if cfg.train.gradient_checkpointing:
            enable_checkpointing(model)
        engine = build_engine(cfg.engine, model, tokenizer, cfg.model.max_length, cfg.train.seed)
        stack.callback(engine.close)
        tools = build_tools(task, cfg, stack)
        loop = AgentLoop(task, tokenizer, tools, cfg.rollout, cfg.model.max_length, guard=build_guard(task, cfg))
        stack.callback(loop.pool.shutdown)

        def checkpoint(step: int) -> None:
            save_checkpoint(
                run.checkpoints,
                step,
                model,
                tokenizer,
                optimizer,
                engine.generator,
                state,
                cfg.train.keep_checkpoints,
            )

        # --- cold start: SFT on expert demonstrations, then the pass@1 before RL ---
        if state["eval_before"] is None:
            if start_from:
                records = adopt_start(start_from, run, engine.generator)
                hooks.log(f"cold start shared with {start_from.path}")
            else:
                model, records = cold_start(model, tokenizer, engine, loop, task, cfg, hooks)
                model.save_pretrained(run.sft_model)
                tokenizer.save_pretrained(run.sft_model)
                save_start(run, records, engine.generator)
            for record in records:
                logger.log(0, record)
            state["eval_before"] = {k: v for k, v in records[-1].items() if k != "stage"}
            hooks.log(f"held-out pass@1 before RL: {state['eval_before']['pass@1']:.3f}")
            if lora:  # a fresh adapter for RL, in place: the engine generates with it
                model = add_lora(model, lora, base=run.sft_model)

        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        if extra is not None:
            optimizer.load_state_dict(extra["optimizer"])
            restore_rng(extra["rng"], engine.generator)
        else:
            checkpoint(0)

        # the reference policy is the one RL started from; pruned checkpoints never take it away (LoRA: the
        # policy with its adapter off)
        ref_model = None
        if cfg.algo.kl_coef > 0:
            ref_model = AdapterOff(model) if lora else load_pretrained(run.sft_model, device, cfg.train.dtype)[0].eval()

        # --- RL: rollout -> reward -> advantage -> update, one checkpoint per step ---
        pool = train_pool(task, cfg)
        history = SuccessHistory.from_state(state.get("allocation"))
        bank = ResponseBank.from_state(state.get("reuse")) if cfg.algo.reuse_responses else None
        params = SamplingParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature, cfg.rollout.top_p)
        hooks.stage("rl", cfg.train.steps - state["step"])
        for step in range(state["step"] + 1, cfg.train.steps + 1):
            if budget_spent(cfg, state):
                break
            start = time.perf_counter()
            model.eval()
            policy = loop.model_policy(engine, params)
            trajs, cost, sampling = sample_step(loop, pool, policy, cfg, step, history, bank)
            rollout_s = time.perf_counter() - start
            model.train()
            update = rl_step(model, ref_model, optimizer, trajs, cfg, tokenizer.pad_token_id, engine.generator)
            update["engine_sync_s"] = engine.sync_weights(model)
            fresh = [t for t in trajs if t.reused_from is None]  # what this step's policy did
            metrics = {
                "stage": "rl",
                **rollout_metrics(fresh),
                **guard_metrics(fresh),
                **cost.as_metrics(),
                **sampling,
                **update,
                "rollout_s": rollout_s,
                "seconds": time.perf_counter() - start,
            }
            run.append_many(run.rollouts, [{"step": step, **t.to_record()} for t in trajs])
            logger.log(step, metrics)
            state["step"] = step
            state["rl_sampled_tokens"] += int(metrics["sampled_tokens"])
            state["rl_seconds"] += metrics["seconds"]
            state["allocation"] = history.state()
            if bank is not None:
                state["reuse"] = bank.state()
            if step % cfg.train.checkpoint_every == 0 or step == cfg.train.steps or budget_spent(cfg, state):
                checkpoint(step)
            hooks.advance({"step": step, **metrics})
        if spent := budget_spent(cfg, state):
            hooks.log(f"RL stopped after step {state['step']}: its {spent} budget is spent")

        # --- held-out pass@1 after RL ---
        hooks.stage("eval after RL", 0)
        model.eval()
        after = evaluate(loop, engine, task, cfg)
        logger.log(state["step"], {"stage": "eval_after", **after})
    summary = {
        "task": task.name,
        "steps": state["step"],
        "stopped_by": budget_spent(cfg, state) or "steps",
        "rl_sampled_tokens": state["rl_sampled_tokens"],
        "rl_seconds": state["rl_seconds"],
        "pass@1_before": state["eval_before"]["pass@1"],
        "pass@1_after": after["pass@1"],
        "eval_problems": cfg.eval.problems,
        "eval_samples": cfg.eval.samples,
    }
    run.summary.write_text(json.dumps(summary, indent=2))
    hooks.log(f"held-out pass@1: before RL {summary['pass@1_before']:.3f} -> after RL {summary['pass@1_after']:.3f}")
    return summary
