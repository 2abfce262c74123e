"""Train style in Blender (bpy, background mode): a custom style from a painted keyframe becomes
the scene's style and stylises like a preset.

The training runs in the core's Python (`stylepass train-style`), never in Blender's process.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import textwrap
from pathlib import Path

import bpy
import pytest

from .conftest import EXTENSION

REPO = Path(__file__).resolve().parents[2]
CORE_PYTHON = REPO / ".venv" / "bin" / "python"

PAINT_OVER_TEMPLATE = """
import sys
import numpy as np
from PIL import Image
path = sys.argv[1]
painted = np.asarray(Image.open(path).convert("RGB")).copy()
painted[..., 0] = 255 - painted[..., 0]  # a bold grade
painted[::3] //= 4                       # and strokes
Image.fromarray(painted).save(path)
"""


@pytest.fixture
def painted_scene(addon, demo_scene, tmp_path):
    """The demo scene at 32x32, frames 1 and 2 exported, frame 1 painted over and registered."""
    demo_scene.render.resolution_x = demo_scene.render.resolution_y = 32
    demo_scene.cycles.samples = 1
    demo_scene.stylepass.output_dir = str(tmp_path / "export")
    demo_scene.stylepass.device = "cpu"
    bpy.ops.stylepass.setup_passes()
    for frame in (2, 1):
        demo_scene.frame_set(frame)
        assert bpy.ops.stylepass.export_gbuffers() == {"FINISHED"}
    assert bpy.ops.stylepass.add_painted_keyframe(filepath=str(paint_over(tmp_path / "export", 1))) == {"FINISHED"}
    bpy.context.window_manager.stylepass_train.state = "IDLE"
    return demo_scene


def paint_over(export: Path, frame: int) -> Path:
    """A painting over the frame's template, made in the core's Python; returns its path."""
    painting = export.parent / f"painting_{frame}.png"
    done = subprocess.run([str(CORE_PYTHON), "-m", "stylepass.core.cli", "keyframe", "template",
                           str(export), "--frame", str(frame), "--out", str(painting)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([str(CORE_PYTHON), "-c", textwrap.dedent(PAINT_OVER_TEMPLATE), str(painting)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return painting


def test_train_style_makes_the_new_style_the_scenes_and_stylise_applies_it(painted_scene):
    operators = importlib.import_module(f"{EXTENSION}.ui.train_style_operators")
    if operators.PREVIEW_IMAGE in bpy.data.images:
        bpy.data.images.remove(bpy.data.images[operators.PREVIEW_IMAGE])
    assert bpy.ops.stylepass.train_style(steps=4, patch=16) == {"FINISHED"}
    status = bpy.context.window_manager.stylepass_train
    model = Path(painted_scene.stylepass.output_dir) / "styles" / "custom_style"
    assert status.state == "DONE" and status.progress == 1.0, status.message
    assert painted_scene.stylepass.model == str(model)
    assert (model / "model.safetensors").is_file() and (model / "style.json").is_file()
    preview = bpy.data.images[operators.PREVIEW_IMAGE]
    assert Path(bpy.path.abspath(preview.filepath)) == model.with_name("custom_style.run") / "preview.png"
    assert preview.size[0] > 0 and preview.size[1] > 0

    assert bpy.ops.stylepass.stylise() == {"FINISHED"}, "the trained style stylises like a preset"
    assert (Path(painted_scene.stylepass.output_dir) / "stylised" / "custom_style" / "stylised_000001.exr").is_file()

    painted_scene.stylepass.model = ""
    assert bpy.ops.stylepass.train_style(steps=6, patch=16) == {"FINISHED"}, "training again continues the run"
    assert painted_scene.stylepass.model == str(model)
    assert json.loads((model / "style.json").read_text())["steps"] == 6

    painted_scene.frame_set(2)
    export = Path(painted_scene.stylepass.output_dir)
    assert bpy.ops.stylepass.add_painted_keyframe(filepath=str(paint_over(export, 2))) == {"FINISHED"}
    assert bpy.ops.stylepass.train_style(steps=3, patch=16) == {"FINISHED"}, "a new painting: trained afresh"
    card = json.loads((model / "style.json").read_text())
    assert [k["frame"] for k in card["trained_from"]["keyframes"]] == [1, 2] and card["steps"] == 3


def test_the_panel_offers_train_style_only_with_painted_keyframes(addon, demo_scene, tmp_path, painted_scene):
    from .test_export_operator import LayoutRecorder

    def operators_drawn(scene) -> set[str]:
        log: list = []
        addon.ui.panel.draw_stylepass_panel(LayoutRecorder(log), scene, bpy.context.view_layer,
                                         bpy.context.window_manager.stylepass_job,
                                         bpy.context.window_manager.stylepass_train)
        return {entry[1] for entry in log if entry[0] == "operator"}

    assert "stylepass.train_style" in operators_drawn(painted_scene)
    painted_scene.stylepass.output_dir = str(tmp_path / "elsewhere")
    assert "stylepass.train_style" not in operators_drawn(painted_scene)


def test_train_style_without_paintings_says_what_to_do(painted_scene, tmp_path):
    painted_scene.stylepass.output_dir = str(tmp_path / "empty")
    with pytest.raises(RuntimeError, match="has no painted keyframes: add one with Add painted keyframe"):
        bpy.ops.stylepass.train_style(steps=2)
    assert bpy.context.window_manager.stylepass_train.state == "FAILED"
