"""The data that ships with agentrl: the bundled tasks (`tasks/`), eval suites and guard benchmark (`evals/`).

The repo keeps both folders at its top; a wheel carries them inside the package as `agentrl/_bundled/` (mapped
in pyproject.toml). A source checkout, and so an editable install, has no `_bundled/` and reads the repo's own.
"""

from __future__ import annotations

from pathlib import Path

from agentrl.errors import AgentRLError

PACKAGE = Path(__file__).resolve().parent
INSTALLED = PACKAGE / "_bundled"
CHECKOUT = PACKAGE.parent


def bundled_path(*parts: str) -> Path:
    """Where a piece of bundled data lives (`bundled_path("evals", "guard")`), whether or not it is there."""
    in_checkout = not INSTALLED.is_dir() and (CHECKOUT / "pyproject.toml").is_file()
    return (CHECKOUT if in_checkout else INSTALLED).joinpath(*parts)


def bundled_dir(*parts: str) -> Path:
    """`bundled_path(*parts)`, which must be a folder: a broken install says what is missing and how to fix it."""
    path = bundled_path(*parts)
    if not path.is_dir():
        raise AgentRLError(
            f"agentrl's bundled {'/'.join(parts)} folder is missing ({path}): the install is incomplete; "
            "reinstall agentrl (`pip install --force-reinstall agentrl`, or `pip install -e .` in a checkout)"
        )
    return path
