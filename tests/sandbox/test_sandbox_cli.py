"""`agentrl sandbox check` reports a working sandbox here; `run FILE` prints output, fails on error."""

import shutil

import pytest
from typer.testing import CliRunner

from agentrl.sandbox.cli import app, run_checks

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def test_every_check_passes_here():
    failed = [c for c in run_checks() if not c.ok]
    assert failed == []


def test_run_prints_output_and_exits_zero(tmp_path):
    script = tmp_path / "ok.py"
    script.write_text("print('hello')\n6 * 7\n")
    result = CliRunner().invoke(app, ["run", str(script)])
    assert result.exit_code == 0, result.output
    assert "hello" in result.output and "42" in result.output


def test_run_exits_nonzero_on_error(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("raise ValueError('nope')\n")
    result = CliRunner().invoke(app, ["run", str(script)])
    assert result.exit_code == 1
    assert "ValueError: nope" in result.output
