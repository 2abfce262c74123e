"""The same seed gives the same procedural scene on Blender 4.5 and 5.2 (compared through
``describe_scene``, floats to 1e-4)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from typing import Any

import pytest

from stylepass.core.blender_runtime import SUPPORTED_VERSIONS, env_python

from .conftest import ASSETS, REPO

SEED = 7
TOLERANCE = 1e-4
SCRIPT = textwrap.dedent("""
    import importlib, json, sys
    import bpy
    EXTENSION = "bl_ext.user_default.stylepass"
    bpy.ops.preferences.addon_enable(module=EXTENSION)
    try:
        procedural = importlib.import_module(EXTENSION + ".procedural_scene")
        settings = procedural.ProceduralSettings(assets=tuple(sys.argv[2:]), min_objects=4, max_objects=6)
        scene = procedural.build_procedural_scene(int(sys.argv[1]), settings)
        print("DESCRIPTION " + json.dumps(procedural.describe_scene(scene)))
    finally:
        bpy.ops.preferences.addon_disable(module=EXTENSION)  # bpy hangs at exit otherwise
""")


def describe_in_blender(version: str, seed: int, assets: list[str]) -> dict[str, Any]:
    """``describe_scene`` of the procedural scene of ``seed``, built in a fresh bpy process."""
    python = env_python(version)
    if not python.exists():
        pytest.fail(f"Blender {version} is not set up: run `python build.py setup`")
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(REPO / ".blender" / version / "user")}
    done = subprocess.run([str(python), "-c", SCRIPT, str(seed), *assets], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("DESCRIPTION ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[0].removeprefix("DESCRIPTION "))


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two descriptions differ (floats within TOLERANCE count as equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        return [d for key in a for d in differences(a[key], b[key], f"{where}.{key}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return [] if abs(a - b) <= TOLERANCE else [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_seed_7_is_the_same_scene_on_both_blender_versions():
    assets = sorted(str(p) for p in ASSETS.glob("*/*.gltf"))
    assert len(assets) == 3, f"the shared glTF assets are missing: {ASSETS}"
    first, second = (describe_in_blender(version, SEED, assets) for version in SUPPORTED_VERSIONS)
    assert first["seed"] == SEED and any(o["kind"].startswith("asset:") for o in first["objects"])
    assert differences(first, second) == []


def test_differences_sees_changes_beyond_the_tolerance():
    scene = {"camera": {"lens": 35.0, "location": [1.0, 2.0, 3.0]}, "objects": [{"kind": "cube"}]}
    assert differences(scene, json.loads(json.dumps(scene))) == []
    nudged = {"camera": {"lens": 35.00005, "location": [1.0, 2.0, 3.001]}, "objects": [{"kind": "cone"}]}
    assert differences(scene, nudged) == [".camera.location[2]: 3.0 != 3.001", ".objects[0].kind: 'cube' != 'cone'"]
