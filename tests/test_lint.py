"""ruff (all code) and mypy (core/ and training/) pass, with their settings in pyproject.toml.

The tools are the ones installed beside the interpreter running the tests (`.venv/bin/`, pinned in the
`test` extra), run from the repository root as a developer would run them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(sys.executable).parent


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `name` from the interpreter's bin folder in the repository root; fails the test if it is missing."""
    tool = TOOLS / name
    if not tool.is_file():
        pytest.fail(f"{name} is not installed in {TOOLS}: run `python3 build.py setup` (the `test` extra)")
    return subprocess.run([str(tool), *args], cwd=REPO, capture_output=True, text=True)


def test_ruff_finds_nothing() -> None:
    result = run_tool("ruff", "check", "--no-fix", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check . found:\n{result.stdout}{result.stderr}"


def test_mypy_finds_nothing() -> None:
    result = run_tool("mypy")
    assert result.returncode == 0, f"mypy (core/ and training/) found:\n{result.stdout}{result.stderr}"
