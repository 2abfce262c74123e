"""Fixtures for the tests of build.py."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "build.py"


@pytest.fixture(scope="module")
def build_module() -> Iterator[ModuleType]:
    """build.py imported as a module (its functions, without running a command)."""
    spec = importlib.util.spec_from_file_location("stylepass_build_script", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]
