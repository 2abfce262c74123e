"""The same seed gives the same procedural scene on Blender 4.5 and 5.2 (compared through
``describe_scene``, floats to 1e-4). Seed 7 mixes primitives and assets; seed 17 draws the
FlightHelmet twice, whose second copies get names of different lengths in 4.5 and 5.x."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from typing import Any

import pytest

from stylepass.core.cli.blender_runtime import SUPPORTED_VERSIONS, env_python

from .conftest import ASSETS, REPO

SEEDS = (7, 17)
TOLERANCE = 1e-4
SCRIPT = textwrap.dedent("""
    import importlib, json, sys
    import bpy
    EXTENSION = "bl_ext.user_default.stylepass"
    bpy.ops.preferences.addon_enable(module=EXTENSION)
    try:
        procedural = importlib.import_module(EXTENSION + ".scene.procedural_scene")
        settings = procedural.ProceduralSettings(assets=tuple(sys.argv[2:]), max_objects=6)
        descriptions = [procedural.describe_scene(procedural.build_procedural_scene(int(seed), settings))
                        for seed in sys.argv[1].split(",")]
        print("DESCRIPTIONS " + json.dumps(descriptions))
    finally:
        bpy.ops.preferences.addon_disable(module=EXTENSION)  # bpy hangs at exit otherwise
""")


def describe_in_blender(version: str, seeds: tuple[int, ...], assets: list[str]) -> list[dict[str, Any]]:
    """``describe_scene`` of the procedural scene of each seed, built in a fresh bpy process."""
    python = env_python(version)
    if not python.exists():
        pytest.fail(f"Blender {version} is not set up: run `python build.py setup`")
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(REPO / ".blender" / version / "user")}
    done = subprocess.run([str(python), "-c", SCRIPT, ",".join(map(str, seeds)), *assets], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("DESCRIPTIONS ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[0].removeprefix("DESCRIPTIONS "))


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two descriptions differ (floats within TOLERANCE count as equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        return [d for key in a for d in differences(a[key], b[key], f"{where}.{key}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return [] if abs(a - b) <= TOLERANCE else [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_seeds_give_the_same_scenes_on_both_blender_versions():
    assets = sorted(str(p) for p in ASSETS.glob("*/*.gltf"))
    assert len(assets) == 3, f"the shared glTF assets are missing: {ASSETS}"
    first, second = (describe_in_blender(version, SEEDS, assets) for version in SUPPORTED_VERSIONS)
    assert [d["seed"] for d in first] == list(SEEDS)
    assert all(any(o["kind"].startswith("asset:") for o in d["objects"]) for d in first)
    assert [o["kind"] for o in first[1]["objects"]].count("asset:FlightHelmet.gltf") == 2
    assert differences(first, second) == []


def test_differences_sees_changes_beyond_the_tolerance():
    scene = {"camera": {"lens": 35.0, "location": [1.0, 2.0, 3.0]}, "objects": [{"kind": "cube"}]}
    assert differences(scene, json.loads(json.dumps(scene))) == []
    nudged = {"camera": {"lens": 35.00005, "location": [1.0, 2.0, 3.001]}, "objects": [{"kind": "cone"}]}
    assert differences(scene, nudged) == [".camera.location[2]: 3.0 != 3.001", ".objects[0].kind: 'cube' != 'cone'"]
