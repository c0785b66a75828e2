"""`agentrl train --backend verl` without --dry-run: the run's files, verl started in them, its exit code, Ctrl-C.

A stand-in interpreter plays verl (it records how it was started); the real verl takes its config in
test_verl_side.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agentrl.backends.verl_launch import train_on_verl
from agentrl.config import ModelConfig, build_config
from agentrl.errors import AgentRLError
from agentrl.models.tiny import build_tiny_model
from agentrl.tasks import load_task

STAND_IN = """#!/bin/sh
if [ "$1" = -c ]; then exit 0; fi
echo "$$" > "{pid}"
printf '%s\\n' "$PWD" "$@" > "{args}"
{body}
"""


@pytest.fixture()
def model_dir(tmp_path, tokenizer):
    path = tmp_path / "model"
    build_tiny_model(tokenizer, ModelConfig(hidden_size=32, num_layers=1, intermediate_size=64)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def stand_in(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "verl-python"
    script.write_text(STAND_IN.format(pid=tmp_path / "verl.pid", args=tmp_path / "verl.args", body=body))
    script.chmod(0o755)
    return script


def config(tmp_path, model_dir, python, *extra):
    sets = ["train.steps=2", "rollout.prompts_per_step=2", "eval.problems=2", f"model.path={model_dir}"]
    return build_config([{"task": "arith-python"}], [*sets, f"verl.python={python}", *extra])


def run(cfg, tmp_path, resume=False):
    task = load_task("arith-python")
    printed = []
    train_on_verl(cfg, task, tmp_path / "run", dry_run=False, resume=resume, echo=printed.append, log=print)
    return printed


def test_launch_writes_the_run_and_starts_verl_in_it(tmp_path, model_dir):
    cfg = config(tmp_path, model_dir, stand_in(tmp_path, "exit 0"))
    (printed,) = run(cfg, tmp_path)
    workdir = tmp_path / "run" / "verl"
    cwd, *args = (tmp_path / "verl.args").read_text().splitlines()
    assert Path(cwd) == workdir and args[:2] == ["-m", "verl.trainer.main_ppo"]
    assert f"data.train_files={workdir / 'train.jsonl'}" in args
    assert printed.startswith("# agentrl -> verl: arith-python, 2 steps x 2 prompts x 8 samples")
    rows = [json.loads(line) for line in (workdir / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["agent_name"] for r in rows} == {"agentrl"}
    (entry,) = yaml.safe_load((workdir / "agent_loops.yaml").read_text())
    worker_cfg = yaml.safe_load(Path(entry["config_path"]).read_text())
    assert worker_cfg["task"] == "arith-python"  # bundled: each worker reads its own install's copy
    assert worker_cfg["model"]["path"] == str(model_dir.resolve())
    assert (workdir / "launch.sh").read_text().startswith(f"#!/bin/sh\ncd {workdir} && AGENTRL_CONFIG=")
    with pytest.raises(AgentRLError, match="already holds a verl run: pass --resume"):
        run(cfg, tmp_path)
    run(cfg, tmp_path, resume=True)


def test_a_failed_verl_run_says_how_to_relaunch(tmp_path, model_dir):
    cfg = config(tmp_path, model_dir, stand_in(tmp_path, "exit 3"))
    with pytest.raises(AgentRLError, match=r"exited with code 3 .* relaunch \(it resumes\): .*/verl/launch.sh"):
        run(cfg, tmp_path)


@pytest.mark.slow  # a second interpreter loads agentrl: ~10 s
def test_stopping_agentrl_stops_verl(tmp_path, model_dir):
    cfg = config(tmp_path, model_dir, stand_in(tmp_path, "exec sleep 60"))
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    driver = (
        "import json, sys; from pathlib import Path; from agentrl.config import Config; "
        "from tests.backends.test_verl_launch import run; "
        f"run(Config.model_validate_json(Path('{tmp_path / 'cfg.json'}').read_text()), Path('{tmp_path}'))"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=root, stdout=subprocess.DEVNULL)
    pid_file = tmp_path / "verl.pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    verl = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) != 0  # more than launch's own 60 s grace before it SIGKILLs verl
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(verl, 0)
