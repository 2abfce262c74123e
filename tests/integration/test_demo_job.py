"""`python build.py demo`, the README's main job, end to end at a small size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from stylepass.core.models.config import UNetConfig, build_generator
from stylepass.core.models.serialization import save_model

from .conftest import BLENDERS, REPO, run_in_blender


def tiny_preset(presets: Path, name: str) -> None:
    """A preset with an untrained tiny U-Net (the demo only needs a model that runs)."""
    torch.manual_seed(0)
    config = UNetConfig(base_width=4, depth=2)
    save_model(build_generator(config), config, presets / name / "model")


def run_demo(out: Path, presets: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "STYLEPASS_PRESETS": str(presets)}
    return subprocess.run([sys.executable, str(REPO / "build.py"),
                           "demo", "--out", str(out), "--resolution", "64x36"],
                          capture_output=True, text=True, timeout=900, env=env, cwd=REPO)


def test_demo_stylises_with_every_trained_preset_and_writes_a_sheet_and_a_blend(tmp_path):
    """Each preset stylises the render it was trained on: toon here says Eevee (as enhance does), so
    the demo also renders in Eevee, and the sheet shows that render before toon's column."""
    presets = tmp_path / "presets"
    for name in ("sketch", "toon"):
        tiny_preset(presets, name)
    (presets / "toon" / "dataset.toml").write_text('[input]\nengine = "eevee"\nsamples = 1\n')
    (presets / "enhance").mkdir()  # no model: not used
    done = run_demo(tmp_path / "out", presets)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    out = tmp_path / "out"
    for engine, folder, frames in (("CYCLES", "gbuffers", 12), ("EEVEE", "gbuffers_eevee", 3)):
        assert len(list((out / folder).glob("frame_*.exr"))) == frames  # Eevee: the sheet's frames 1, 6, 11
        assert engine in json.loads((out / folder / "frame_000001.json").read_text())["engine"]
    for name, frames in (("sketch", 12), ("toon", 3)):
        assert len(list((out / "stylised" / name).glob("stylised_*.exr"))) == frames
    with Image.open(out / "side_by_side.png") as sheet:  # render | sketch | eevee render | toon, 3 frames
        assert sheet.size == (4 * (64 + 4) + 4, 18 + 3 * (36 + 4) + 4)
    assert "open in Blender" in done.stdout and "Stylepass: sketch" in done.stdout  # the first Cycles preset
    run_in_blender(BLENDERS[-1], f"""
        import bpy
        bpy.ops.wm.open_mainfile(filepath={str(out / 'demo.blend')!r})
        scene = bpy.context.scene
        tree = getattr(scene, "compositing_node_group", None) or scene.node_tree
        groups = [n.node_tree.name for n in tree.nodes if n.bl_idname == "CompositorNodeGroup"]
        assert groups == ["Stylepass: sketch"], groups
        assert (scene.frame_start, scene.frame_end) == (1, 12)
    """)


def test_demo_without_trained_presets_says_how_to_make_one(tmp_path):
    (tmp_path / "presets").mkdir()
    done = run_demo(tmp_path / "out", tmp_path / "presets")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "no shipped preset has trained weights yet" in done.stdout
    assert not (tmp_path / "out" / "stylised").exists()
