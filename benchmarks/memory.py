"""Memory and time of one RL update of a real-size model, per memory setting, against float32 in the same run.

A Qwen2.5-0.5B-shaped model with random weights (hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate
4,864, vocabulary 151,936, tied embeddings) takes one `rl_step` on `--rows` trajectories of `--tokens` tokens
(a prompt, then two turns of model tokens and tool output), with a k3 KL term: old log-probs, reference
log-probs, forward, backward and AdamW, as `agentrl train` runs them. The reference is a second copy of the
model, except with LoRA (r 16 on every attention and MLP projection), where it is the policy with its adapter
off. Each setting runs in a fresh process, so its peak RSS (the process's high-water mark, model building
included) is its own.

    python benchmarks/memory.py                        # fp32 | bf16 + checkpointing | ... + LoRA, the 0.5B shape
    python benchmarks/memory.py --settings fp32,fp32+ckpt,fp32+ckpt+lora   # where bf16 is emulated (AVX2 CPUs)
    python benchmarks/memory.py --shape small          # seconds, for a smoke test

Prints one row per setting as it is measured: peak RSS (GiB), seconds for the step, both as ratios to the first
setting, and the parameters trained. bf16 on a CPU without native bf16 instructions is emulated and far slower.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SHAPES = {
    "qwen2.5-0.5b": {
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "vocab_size": 151936,
    },
    "small": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 4096,
    },
}
SETTINGS = {
    "fp32": ["train.dtype=float32"],
    "fp32+ckpt": ["train.dtype=float32", "train.gradient_checkpointing=true"],
    "fp32+ckpt+lora": ["train.dtype=float32", "train.gradient_checkpointing=true", "model.lora.r=16"],
    "bf16+ckpt": ["train.dtype=bfloat16", "train.gradient_checkpointing=true"],
    "bf16+ckpt+lora": ["train.dtype=bfloat16", "train.gradient_checkpointing=true", "model.lora.r=16"],
}
DEFAULT = "fp32,bf16+ckpt,bf16+ckpt+lora"


def one_step(shape: str, setting: str, rows: int, tokens: int) -> dict:
    """Build the model and a batch, run one RL update; the measurements of this process."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from agentrl.config import build_config
    from agentrl.models.loading import enable_checkpointing
    from agentrl.models.lora import AdapterOff, add_lora
    from agentrl.train.trainer import rl_step
    from agentrl.trajectory import Step, Trajectory

    cfg = build_config([], [*SETTINGS[setting], f"algo.minibatch_size={rows}", "algo.kl_coef=0.05"])
    dtype = getattr(torch, cfg.train.dtype)
    config = Qwen2Config(**SHAPES[shape], tie_word_embeddings=True, max_position_embeddings=max(2048, tokens))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(dtype)
    if cfg.model.lora.r:
        model = add_lora(model, cfg.model.lora)
        reference = AdapterOff(model)
    else:
        reference = Qwen2ForCausalLM(config).to(dtype).eval()
        reference.load_state_dict(model.state_dict())
    if cfg.train.gradient_checkpointing:
        enable_checkpointing(model)
    gen = torch.Generator().manual_seed(0)
    vocab, prompt, turn = config.vocab_size, tokens // 4, (tokens - tokens // 4) // 4

    def ids(n: int) -> list[int]:
        return torch.randint(0, vocab, (n,), generator=gen).tolist()

    trajs = []
    for i in range(rows):
        steps = [Step(ids(turn), [-2.0] * turn, "", "tool_call", obs_ids=ids(turn)) for _ in range(2)]
        trajs.append(Trajectory(f"p{i}", f"g{i // 4}", ids(prompt), steps, reward=float(i % 2)))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    model.train()
    start = time.perf_counter()
    rl_step(model, reference, optimizer, trajs, cfg, 0, gen)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    params = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"setting": setting, "peak_gib": peak, "seconds": seconds, "params": params, "trained": trained}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument(
        "--settings", default=DEFAULT, help=f"comma-separated, the first the baseline: {', '.join(SETTINGS)}"
    )
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one setting in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_step(args.shape, args.one, args.rows, args.tokens)))
        return
    base = None
    for setting in args.settings.split(","):  # each row printed as soon as it is measured: a long run keeps them
        command = [sys.executable, __file__, "--one", setting, "--shape", args.shape]
        command += ["--rows", str(args.rows), "--tokens", str(args.tokens)]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:  # a setting that does not fit is a result too (SIGKILL: the kernel's OOM killer)
            print(f"{setting:<15} died with exit code {run.returncode}: {run.stderr.strip()[-300:]}", flush=True)
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        if base is None:
            base = r
            print(
                f"{args.shape}: {r['params'] / 1e6:.1f}M parameters, one RL step of {args.rows} x {args.tokens} tokens"
            )
            versus = f"vs {r['setting']}"
            print(f"{'setting':<15} {'peak RSS GiB':>12} {versus:>9} {'s/step':>9} {versus:>9} {'trained':>10}")
        rss, secs = r["peak_gib"] / base["peak_gib"], r["seconds"] / base["seconds"]
        trained = f"{r['trained'] / 1e6:.2f}M"
        print(
            f"{r['setting']:<15} {r['peak_gib']:>12.2f} {rss:>9.2f} {r['seconds']:>9.3g} {secs:>9.2f} {trained:>10}",
            flush=True,
        )


if __name__ == "__main__":
    main()
