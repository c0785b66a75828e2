"""The command line: --help everywhere, --dry-run prints the resolved config, user errors are one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from agentrl import cli


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture()
def agentrl(capsys, monkeypatch):
    """Run the CLI entry point in-process, as the `agentrl` script would."""

    def invoke(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["agentrl", *args])
        monkeypatch.setitem(cli.STATE, "debug", False)
        with pytest.raises(SystemExit) as exit_info:
            cli.run()
        out = capsys.readouterr()
        return Result(exit_info.value.code or 0, out.out, out.err)

    return invoke


def test_the_installed_script_runs():
    script = f"{sys.prefix}/bin/agentrl"
    result = subprocess.run([script, "train", "nope", "--dry-run"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "task 'nope' not found" in result.stderr


@pytest.mark.parametrize("command", [[], ["train"], ["tasks"], ["tasks", "list"], ["sandbox"]])
def test_every_command_has_help(agentrl, command):
    result = agentrl(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_dry_run_prints_the_resolved_config_and_runs_nothing(agentrl, tmp_path):
    result = agentrl(
        "train", "arith-python", "--dry-run", "--set", "train.steps=7", "--set", f"run.runs_dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["train"]["steps"] == 7
    assert cfg["rollout"]["max_new_tokens"] == 32  # from the task's defaults
    assert not any(tmp_path.iterdir())


def test_config_file_then_overrides(agentrl, tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  steps: 4\n  lr: 0.5\n")
    result = agentrl("train", "arith-python", "--dry-run", "-c", str(tmp_path / "c.yaml"), "-s", "train.lr=0.1")
    cfg = yaml.safe_load(result.stdout)
    assert (cfg["train"]["steps"], cfg["train"]["lr"]) == (4, 0.1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "arith-python", "--dry-run", "--set", "train.stepz=1"], "train.stepz: unknown key"),
        (
            ["train", "arith-python", "--dry-run", "--set", "train.steps=x"],
            "train.steps: Input should be a valid integer",
        ),
        (["train", "no-such-task", "--dry-run"], "task 'no-such-task' not found"),
        (["train", "arith-python", "--dry-run", "-c", "/nonexistent.yaml"], "config file not found"),
    ],
)
def test_user_errors_are_one_line_without_traceback(agentrl, args, message):
    result = agentrl(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_raises_the_error_with_its_traceback(agentrl, monkeypatch):
    from agentrl.errors import AgentRLError

    monkeypatch.setattr(sys, "argv", ["agentrl", "--debug", "train", "arith-python", "--dry-run", "-s", "x.y=1"])
    with pytest.raises(AgentRLError, match="x: unknown key"):
        cli.run()


def test_resume_without_a_run_is_a_clear_error(agentrl, tmp_path):
    result = agentrl("train", "arith-python", "--resume", "--set", f"run.runs_dir={tmp_path}")
    assert result.returncode == 2 and "nothing to resume" in result.stderr


def test_tasks_list_shows_bundled_tasks(agentrl):
    result = agentrl("tasks", "list")
    assert result.returncode == 0 and "arith-python" in result.stdout


def test_sigterm_stops_a_command_as_ctrl_c_does(tmp_path):
    """A scheduler's SIGTERM unwinds like Ctrl-C (sandboxes and browsers closed by their `with` blocks)."""
    sleeper = tmp_path / "sleep.py"
    sleeper.write_text("import time\ntime.sleep(300)\n")
    script = f"{sys.prefix}/bin/agentrl"
    proc = subprocess.Popen(
        [script, "sandbox", "run", str(sleeper), "--timeout", "300"], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not _children(proc.pid):  # the sandbox is up: the command is running, its handler installed
        assert proc.poll() is None and time.monotonic() < deadline, "the sandbox never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    sandbox = _children(proc.pid)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err
    gone_by = time.monotonic() + 30  # the sandbox goes with it (on a loaded machine its exit may lag a moment)
    while [pid for pid in sandbox if Path(f"/proc/{pid}").exists()] and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not [pid for pid in sandbox if Path(f"/proc/{pid}").exists()]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
