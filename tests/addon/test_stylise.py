"""Stylise in Blender (bpy, background mode): operators, worker, compositor, animation, failures.

The model is trained in the test, in the core's Python (Blender never imports torch): a
tiny U-Net learns to swap red and blue on random images for a few dozen steps.
"""

from __future__ import annotations

import importlib
import subprocess
import textwrap
from pathlib import Path

import bpy
import pytest

from .conftest import EXTENSION

REPO = Path(__file__).resolve().parents[2]
CORE_PYTHON = REPO / ".venv" / "bin" / "python"
ASSET = REPO.parent / "shared" / "assets" / "gltf" / "WaterBottle" / "WaterBottle.gltf"

TRAIN_SWAP_MODEL = """
import sys, torch
from stylepass.core.models.config import UNetConfig, build_generator
from stylepass.core.models.serialization import save_model
torch.manual_seed(0)
config = UNetConfig(base_width=8, depth=2)
model = build_generator(config)
optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
first = last = None
for step in range(60):
    image = torch.rand(4, 3, 32, 32)
    target = image.flip(1)  # RGB -> BGR
    out = model(image, torch.zeros(4, 0, 32, 32), torch.zeros(4, 32, 32, dtype=torch.long))
    loss = (out - target).abs().mean()
    optimiser.zero_grad(); loss.backward(); optimiser.step()
    first = float(loss) if first is None else first
    last = float(loss)
assert last < first * 0.8, (first, last)
save_model(model, config, sys.argv[1])
print(first, last)
"""

COMPARE = """
import sys, numpy as np
from stylepass.core.io.gbuffer import read_gbuffer
from stylepass.core.io.exr_file import read_exr
from stylepass.core.io.preview_images import exr_rgb
frame = read_gbuffer(sys.argv[1])
stylised = exr_rgb(read_exr(sys.argv[2]))
assert stylised.shape == frame.beauty.shape, (stylised.shape, frame.beauty.shape)
assert np.isfinite(stylised).all() and stylised.min() >= 0
red_in = frame.beauty[0] - frame.beauty[2]
red_out = stylised[0] - stylised[2]
print(float(np.corrcoef(red_in.ravel(), red_out.ravel())[0, 1]))
"""


def core_python(script: str, *args: str) -> str:
    done = subprocess.run([str(CORE_PYTHON), "-c", textwrap.dedent(script), *args], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.strip()


@pytest.fixture(scope="session")
def swap_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "swap-red-blue"
    core_python(TRAIN_SWAP_MODEL, str(folder))
    return folder


@pytest.fixture
def nodes():
    return importlib.import_module(f"{EXTENSION}.scene.compositor_nodes")


@pytest.fixture
def ready_scene(addon, swap_model, tmp_path):
    """A real asset (the shared WaterBottle glTF) set up to stylise with the swap model."""
    scene = addon.scene.scene_loading.import_gltf_scene(ASSET)
    scene.render.resolution_x, scene.render.resolution_y = 48, 48
    scene.cycles.samples = 2
    scene.stylepass.output_dir = str(tmp_path / "export")
    scene.stylepass.model = str(swap_model)
    scene.stylepass.device = "cpu"
    bpy.ops.stylepass.setup_passes()
    bpy.context.window_manager.stylepass_job.state = "IDLE"
    return scene


def stylised_files(scene) -> list[Path]:
    return sorted((Path(scene.stylepass.output_dir) / "stylised" / "swap-red-blue").glob("stylised_*.exr"))


def test_stylise_a_frame_shows_the_result_in_the_compositor(ready_scene, nodes):
    ready_scene.frame_end = 2
    ready_scene.frame_set(2)
    assert bpy.ops.stylepass.stylise() == {"FINISHED"}
    job = bpy.context.window_manager.stylepass_job
    assert job.state == "DONE" and job.progress == 1.0
    (output,) = stylised_files(ready_scene)
    assert output.name == "stylised_000002.exr" and output.with_suffix(".png").is_file()
    exported = Path(ready_scene.stylepass.output_dir) / "frame_000002.exr"
    correlation = float(core_python(COMPARE, str(exported), str(output)))
    assert correlation < -0.3, "the model swaps red and blue: red-minus-blue flips sign (identity: +1)"
    group = nodes.installed_group(ready_scene)
    assert group is not None and group.name == "Stylepass: swap-red-blue"
    nodes.set_stylise_strength(ready_scene, 0.25)
    assert nodes.stylise_strength(ready_scene) == pytest.approx(0.25)


def test_fast_int8_on_a_model_without_one_runs_it_in_full_precision(ready_scene, nodes):
    """A style trained in Blender has no int8 model: Fast (int8) left on from a preset still stylises."""
    stylise_job = importlib.import_module(f"{EXTENSION}.live.stylise_job")
    ready_scene.stylepass.precision = "int8"
    assert stylise_job.int8_missing(ready_scene.stylepass.model, "int8")
    assert stylise_job.model_request(ready_scene.stylepass.model, "int8")["precision"] == "fp32"
    assert not stylise_job.int8_missing("toon", "int8")  # a preset: the worker finds its int8 model
    assert bpy.ops.stylepass.stylise() == {"FINISHED"}
    assert bpy.context.window_manager.stylepass_job.state == "DONE"


def test_stylise_again_replaces_and_remove_restores(ready_scene, nodes):
    bpy.ops.stylepass.stylise()
    bpy.ops.stylepass.stylise()
    assert [g.name for g in bpy.data.node_groups if g.name.startswith("Stylepass: ") and g.users] == [
        "Stylepass: swap-red-blue"]
    assert bpy.ops.stylepass.remove_stylise() == {"FINISHED"}
    assert nodes.installed_group(ready_scene) is None


def test_stylise_animation_reads_the_image_sequence(ready_scene, nodes):
    ready_scene.frame_start, ready_scene.frame_end = 2, 4
    ready_scene.objects["WaterBottle"].rotation_euler.z = 0.0
    ready_scene.objects["WaterBottle"].keyframe_insert("rotation_euler", frame=2)
    ready_scene.objects["WaterBottle"].rotation_euler.z = 1.5
    ready_scene.objects["WaterBottle"].keyframe_insert("rotation_euler", frame=4)
    assert bpy.ops.stylepass.stylise_animation() == {"FINISHED"}
    assert [p.name for p in stylised_files(ready_scene)] == [
        "stylised_000002.exr", "stylised_000003.exr", "stylised_000004.exr"]
    image = nodes.installed_image(ready_scene)
    assert image.source == "SEQUENCE"


def test_no_model_chosen_is_refused_and_changes_nothing(ready_scene, nodes):
    ready_scene.stylepass.model = ""
    with pytest.raises(RuntimeError, match="no model or preset chosen"):
        bpy.ops.stylepass.stylise()
    assert bpy.context.window_manager.stylepass_job.state == "FAILED"
    assert nodes.installed_group(ready_scene) is None


def test_a_model_needing_passes_the_scene_lacks_offers_set_up(ready_scene, nodes):
    bpy.context.view_layer.use_pass_normal = False
    with pytest.raises(RuntimeError, match="lacks the passes normal: click Set up passes"):
        bpy.ops.stylepass.stylise()
    assert nodes.installed_group(ready_scene) is None


def test_a_preset_reading_a_pass_the_scene_lacks_is_refused_before_rendering(ready_scene, nodes):
    """A scene set up by an earlier version has no glossy colour pass; toon reads it."""
    ready_scene.stylepass.model = "toon"
    bpy.context.view_layer.use_pass_glossy_color = False
    with pytest.raises(RuntimeError, match="reads the passes glossy_albedo, which the view layer lacks: click Set up"):
        bpy.ops.stylepass.stylise()
    assert not list(Path(ready_scene.stylepass.output_dir).glob("frame_*.exr")), "nothing was rendered"
    assert nodes.installed_group(ready_scene) is None


def test_a_job_cancelled_midway_keeps_finished_frames_and_leaves_the_tree_as_it_was(ready_scene, nodes):
    job = importlib.import_module(f"{EXTENSION}.live.stylise_job")
    protocol = importlib.import_module(f"{EXTENSION}.contract.headless_protocol")
    seen: list[str] = []
    ready_scene.frame_end = 3
    steps = job.stylise_steps(ready_scene, bpy.context.view_layer, [1, 2, 3], "cpu")
    with pytest.raises(protocol.JobCancelled):
        job.run_to_end(steps, lambda progress: seen.append(progress.message),
                       should_cancel=lambda: "rendering frame 2" in seen)
    assert [p.name for p in stylised_files(ready_scene)] == ["stylised_000001.exr"]
    assert nodes.installed_group(ready_scene) is None


def test_a_worker_that_crashes_is_reported_and_blender_goes_on(addon, ready_scene, nodes, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Fatal: the GPU driver went away' >&2\nexit 7\n")
    fake.chmod(0o755)
    preferences = bpy.context.preferences.addons[EXTENSION].preferences
    preferences.worker_python = str(fake)
    try:
        with pytest.raises(RuntimeError, match="stopped with exit code 7:\n.*GPU driver went away"):
            bpy.ops.stylepass.stylise()
        assert nodes.installed_group(ready_scene) is None
    finally:
        preferences.worker_python = ""
    assert bpy.ops.stylepass.stylise() == {"FINISHED"}, "the next job starts a fresh worker"


def test_a_worker_python_without_torch_says_so(ready_scene, tmp_path):
    preferences = bpy.context.preferences.addons[EXTENSION].preferences
    preferences.worker_python = "/usr/bin/python3"  # a Python without stylepass or torch
    try:
        with pytest.raises(RuntimeError, match="stopped with exit code"):
            bpy.ops.stylepass.stylise()
    finally:
        preferences.worker_python = ""
    assert "stylepass" in bpy.context.window_manager.stylepass_job.message


def test_stylise_on_render_stylises_each_rendered_frame(ready_scene, nodes, tmp_path):
    ready_scene.stylepass.stylise_on_render = True
    ready_scene.frame_start, ready_scene.frame_end = 1, 2
    ready_scene.render.filepath = str(tmp_path / "render_")
    ready_scene.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(animation=True)
    assert [p.name for p in stylised_files(ready_scene)] == ["stylised_000001.exr", "stylised_000002.exr"]
    assert bpy.context.window_manager.stylepass_job.state == "DONE"
    assert nodes.installed_image(ready_scene).source == "SEQUENCE"


def test_cuda_asked_for_without_cuda_offers_the_cpu(ready_scene, nodes):
    if core_python("import torch; print(torch.cuda.is_available())") == "True":
        pytest.skip("the core's torch has CUDA here: nothing to refuse")
    ready_scene.stylepass.device = "cuda"
    with pytest.raises(RuntimeError, match="CUDA"):
        bpy.ops.stylepass.stylise()
    assert "Set Device to CPU" in bpy.context.window_manager.stylepass_job.message
    assert nodes.installed_group(ready_scene) is None


def test_the_style_browser_offers_the_presets_and_a_model_folder(ready_scene, swap_model, tmp_path):
    browser = importlib.import_module(f"{EXTENSION}.ui.style_browser")
    names = [item[0] for item in browser.preset_items(None, bpy.context)]
    assert names == ["enhance", "painterly", "sketch", "toon"]
    assert all(item[2] and item[2] != item[0] for item in browser.preset_items(None, bpy.context)), "a card line"
    ready_scene.stylepass.style_preset = "toon"
    assert ready_scene.stylepass.model == "toon"

    assert bpy.ops.stylepass.choose_model_folder(directory=str(swap_model)) == {"FINISHED"}
    assert ready_scene.stylepass.model == str(swap_model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="holds no model"):
        bpy.ops.stylepass.choose_model_folder(directory=str(tmp_path / "empty"))
    assert ready_scene.stylepass.model == str(swap_model)


def test_the_panel_says_what_runs_the_model(ready_scene):
    job = importlib.import_module(f"{EXTENSION}.live.stylise_job")
    assert bpy.ops.stylepass.stylise() == {"FINISHED"}
    assert job.runtime_summary() == "Runs on onnxruntime 1.32.0 (CPUExecutionProvider) on cpu"
