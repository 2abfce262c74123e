"""Fixtures for tests that run `stylepass export` in real Blender (bpy 4.5 and 5.2)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from stylepass.core.cli.blender_runtime import SUPPORTED_VERSIONS, env_python

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO.parent / "shared" / "assets" / "gltf"
STYLEPASS = Path(sys.executable).parent / "stylepass"
BLENDERS = [v for v in os.environ.get("STYLEPASS_TEST_BLENDERS", ",".join(SUPPORTED_VERSIONS)).split(",") if v]


@dataclass
class ExportRun:
    """A finished `stylepass export` run."""

    returncode: int
    output: str
    out: Path


def stylepass_export(scene: str | Path, out: Path, blender: str | None, *options: str,
                     timeout: float = 600) -> ExportRun:
    """Run the installed CLI and capture everything it printed."""
    argv = [str(STYLEPASS), "export", str(scene), "--out", str(out), *options]
    if blender is not None:
        argv += ["--blender", blender]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return ExportRun(done.returncode, done.stdout + done.stderr, out)


def run_in_blender(blender: str, code: str) -> None:
    """Run Python code in a bpy environment (to build test .blend files)."""
    done = subprocess.run([str(env_python(blender)), "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="session", params=BLENDERS)
def blender(request: pytest.FixtureRequest) -> str:
    """Each Blender version under test; fails (not skips) when its environment is missing."""
    version = request.param
    if not env_python(version).exists():
        pytest.fail(f"Blender {version} is not set up: run `python build.py setup`")
    return version


@pytest.fixture(scope="session")
def assets() -> Path:
    if not ASSETS.is_dir():
        pytest.fail(f"the shared glTF assets are missing: {ASSETS}")
    return ASSETS


@pytest.fixture(scope="session")
def asset_exports(blender: str, assets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportRun]:
    """Each shared glTF asset exported with Cycles at 128x128 (one frame)."""
    runs = {}
    for gltf in sorted(assets.glob("*/*.gltf")):
        out = tmp_path_factory.mktemp(f"{gltf.stem}-{blender}")
        run = stylepass_export(gltf, out, blender, "--resolution", "128x128", "--samples", "4")
        assert run.returncode == 0, run.output[-4000:]
        runs[gltf.stem] = run
    assert set(runs) == {"BoomBox", "FlightHelmet", "WaterBottle"}
    return runs
