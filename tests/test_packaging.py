"""The wheel carries the bundled tasks and evals (as agentrl/_bundled/), and bundled data resolves from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from agentrl import bundled
from agentrl.bundled import bundled_dir, bundled_path
from agentrl.errors import AgentRLError
from agentrl.evals.spec import resolve_suite
from agentrl.tasks import list_tasks, load_task, resolve_task_path

ROOT = Path(__file__).resolve().parents[1]
IN_WHEEL = {"tasks": "agentrl/_bundled/tasks", "evals": "agentrl/_bundled/evals"}
"""Top-level folder of the repo -> where the wheel carries it."""


def _build_requirements_installed() -> bool:
    """Whether this environment's setuptools satisfies [build-system] (then the build needs no network)."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    try:
        return all(version(req.name) in req.specifier for req in map(Requirement, requires))
    except PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    """The file list of a wheel built from this checkout; setuptools' build folders go to tmp, not the tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    (tmp / "setup.cfg").write_text(f"[build]\nbuild_base = {tmp / 'build'}\n[egg_info]\negg_base = {tmp}\n")
    isolation = ["--no-build-isolation"] if _build_requirements_installed() else []
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(tmp / "dist"), str(ROOT)]
    env = {**os.environ, "DIST_EXTRA_CONFIG": str(tmp / "setup.cfg")}
    built = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("agentrl-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def _in_wheel(path: str) -> str:
    top, _, rest = path.partition("/")
    return f"{IN_WHEEL[top]}/{rest}" if top in IN_WHEEL else path


def test_the_wheel_carries_every_tracked_file_of_the_package_tasks_and_evals(wheel_files):
    listed = subprocess.run(
        ["git", "ls-files", "agentrl", "tasks", "evals"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    tracked = [path for path in listed if (ROOT / path).is_file()]
    assert any(path.startswith("tasks/arith-python/") for path in tracked)
    assert any(path.startswith("evals/guard/") for path in tracked)
    missing = sorted(_in_wheel(path) for path in tracked if _in_wheel(path) not in wheel_files)
    assert not missing, f"not in the wheel (pyproject.toml's [tool.setuptools]): {missing}"
    assert not [name for name in wheel_files if "__pycache__" in name]


def test_bundled_tasks_and_suites_resolve_from_an_unrelated_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    root = resolve_task_path("arith-python")
    assert root.is_absolute() and root == bundled_path("tasks", "arith-python")
    assert load_task("arith-python").problems("test", 2)
    assert {"arith-python", "code-tests", "shop-policy", "web-qa"} <= {task.name for task in list_tasks()}
    suite = bundled_path("evals", "arith-python-demo.yaml")
    assert resolve_suite("arith-python-demo") == resolve_suite("evals/arith-python-demo.yaml") == suite
    assert (bundled_dir("evals", "guard") / "train.jsonl").is_file()
    assert list(tmp_path.iterdir()) == []


def test_a_path_wins_over_a_bundled_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(bundled_path("tasks", "arith-python"), tmp_path / "arith-python")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "arith-python-demo.yaml").write_text("tasks: [arith-python]\n")
    assert resolve_task_path("arith-python") == Path("arith-python")
    assert resolve_suite("evals/arith-python-demo.yaml") == Path("evals/arith-python-demo.yaml")


def test_an_installed_wheel_reads_its_own_copy(monkeypatch, tmp_path):
    (tmp_path / "_bundled" / "tasks").mkdir(parents=True)
    monkeypatch.setattr(bundled, "INSTALLED", tmp_path / "_bundled")
    assert bundled_dir("tasks") == tmp_path / "_bundled" / "tasks"


def test_a_broken_install_says_what_is_missing_and_how_to_fix_it(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled, "INSTALLED", tmp_path / "_bundled")
    monkeypatch.setattr(bundled, "CHECKOUT", tmp_path)
    with pytest.raises(AgentRLError, match=r"bundled tasks folder is missing .*reinstall agentrl") as info:
        resolve_task_path("arith-python")
    assert "\n" not in str(info.value)
    with pytest.raises(AgentRLError, match="bundled evals folder is missing"):
        resolve_suite("arith-python-demo")
