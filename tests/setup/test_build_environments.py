"""build.py's environment set-up: what it builds venvs from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs to run inside a virtual environment")
def test_a_venv_is_rebuilt_from_the_base_python_not_from_itself(build_module) -> None:
    # `.venv/bin/python build.py demo` with a stale .venv once deleted the interpreter running it
    python = build_module.base_python()
    assert python.is_file()
    assert not python.resolve().is_relative_to(Path(sys.prefix).resolve())
    assert build_module.find_python(f"{sys.version_info.major}.{sys.version_info.minor}") == python
