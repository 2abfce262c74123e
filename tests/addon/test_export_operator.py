"""The panel's Export G-buffers operator and the panel's draw code in every state."""

from __future__ import annotations

import json

import bpy
import pytest


def small(scene):
    scene.render.resolution_x, scene.render.resolution_y = 48, 27
    scene.cycles.samples = 1


def test_export_writes_the_current_frame(demo_scene, tmp_path):
    small(demo_scene)
    demo_scene.stylepass.output_dir = str(tmp_path)
    demo_scene.frame_set(3)
    bpy.ops.stylepass.setup_passes()
    assert bpy.ops.stylepass.export_gbuffers() == {"FINISHED"}
    sidecar = json.loads((tmp_path / "frame_000003.json").read_text())
    assert sidecar["frame"] == 3 and sidecar["resolution"] == [48, 27]
    assert sidecar["exr"]["bytes"] == (tmp_path / "frame_000003.exr").stat().st_size
    assert [json.loads(x)["frame"] for x in (tmp_path / "manifest.jsonl").read_text().splitlines()] == [3]
    assert demo_scene.render.image_settings.file_format == "PNG", "the user's output format is restored"


def test_export_asks_for_setup_when_passes_are_off(demo_scene, view_layer, tmp_path):
    demo_scene.stylepass.output_dir = str(tmp_path)
    bpy.ops.stylepass.setup_passes()
    view_layer.use_pass_normal = False
    with pytest.raises(RuntimeError, match="lacks the passes normal: run Stylepass > Set up passes"):
        bpy.ops.stylepass.export_gbuffers()
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_relative_folder_in_an_unsaved_file(demo_scene):
    bpy.ops.stylepass.setup_passes()
    demo_scene.stylepass.output_dir = "//exports/"
    with pytest.raises(RuntimeError, match="not saved yet"):
        bpy.ops.stylepass.export_gbuffers()


def test_export_without_camera_names_the_problem(demo_scene, tmp_path):
    bpy.ops.stylepass.setup_passes()
    demo_scene.stylepass.output_dir = str(tmp_path)
    demo_scene.camera = None
    with pytest.raises(RuntimeError, match="has no active camera"):
        bpy.ops.stylepass.export_gbuffers()


class LayoutRecorder:
    """Stands in for bpy.types.UILayout (no UI in background mode) and records the calls."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.enabled = True

    def _child(self, *args, **kwargs) -> LayoutRecorder:
        return LayoutRecorder(self.log)

    row = box = column = grid_flow = _child

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.log.append(("label", text, icon))

    def operator(self, idname: str, icon: str = "NONE", **kwargs) -> None:
        self.log.append(("operator", idname, self))

    def prop(self, data, name: str, **kwargs) -> None:
        assert hasattr(data, name)
        self.log.append(("prop", name, None))

    def progress(self, factor: float = 0.0, text: str = "", **kwargs) -> None:
        self.log.append(("progress", text, factor))

    def template_icon_view(self, data, name: str, **kwargs) -> None:
        assert hasattr(data, name)
        self.log.append(("icon_view", name, None))


def draw(addon, scene) -> list:
    log: list = []
    addon.ui.panel.draw_stylepass_panel(LayoutRecorder(log), scene, bpy.context.view_layer,
                                     bpy.context.window_manager.stylepass_job)
    return log


def test_panel_draws_every_state(addon, demo_scene, view_layer):
    view_layer.use_pass_normal = False
    missing = draw(addon, demo_scene)
    assert ("label", "normal", "X") in missing
    assert {e[1] for e in missing if e[0] == "operator"} == {
        "stylepass.setup_passes", "stylepass.remove_passes", "stylepass.export_gbuffers",
        "stylepass.add_painted_keyframe", "stylepass.choose_model_folder", "stylepass.stylise",
        "stylepass.stylise_animation"}
    assert ("icon_view", "style_preset", None) in missing  # the preset browser
    assert any(e[0] == "label" and e[1].startswith(("Runs in ", "Runs on ")) and e[2] == "SYSTEM" for e in missing)

    bpy.ops.stylepass.setup_passes()
    ready = draw(addon, demo_scene)
    assert not [e for e in ready if e[0] == "label" and e[2] == "X"]
    export_row = next(e[2] for e in ready if e[:2] == ("operator", "stylepass.export_gbuffers"))
    assert export_row.enabled

    demo_scene.camera = None
    no_camera = draw(addon, demo_scene)
    assert ("label", "The scene has no camera", "ERROR") in no_camera
    assert not next(e[2] for e in no_camera if e[:2] == ("operator", "stylepass.export_gbuffers")).enabled

    demo_scene.camera = bpy.data.objects["Stylepass Camera"]
    job = bpy.context.window_manager.stylepass_job
    stylise_row = next(e[2] for e in ready if e[:2] == ("operator", "stylepass.stylise"))
    assert not stylise_row.enabled and any("Click a preset" in e[1] for e in ready if e[0] == "label")
    demo_scene.stylepass.model = "toon"
    chosen = draw(addon, demo_scene)
    assert next(e[2] for e in chosen if e[:2] == ("operator", "stylepass.stylise")).enabled
    job.state, job.progress, job.message = "RUNNING", 0.4, "stylising frame 3"
    running = draw(addon, demo_scene)
    assert ("progress", "stylising frame 3", 0.4) in [(e[0], e[1], round(e[2], 3)) for e in running
                                                      if e[0] == "progress"]
    assert ("operator", "stylepass.cancel_stylise") in [e[:2] for e in running]
    assert ("operator", "stylepass.stylise") not in [e[:2] for e in running]
    job.state, job.message = "FAILED", "the stylise worker stopped with exit code 3:\ntorch is not installed"
    failed = draw(addon, demo_scene)
    assert ("label", "torch is not installed", "ERROR") in failed
    job.state = "IDLE"

    demo_scene.render.engine = "BLENDER_WORKBENCH"
    workbench = draw(addon, demo_scene)
    assert len(workbench) == 1 and workbench[0][2] == "ERROR" and "Cycles or Eevee" in workbench[0][1]


def test_add_painted_keyframe_registers_a_copy_of_the_painting(demo_scene, tmp_path):
    small(demo_scene)
    demo_scene.stylepass.output_dir = str(tmp_path / "export")
    bpy.ops.stylepass.setup_passes()
    bpy.ops.stylepass.export_gbuffers()
    painting = bpy.data.images.new("painting", 48, 27)
    painting.filepath_raw = str(tmp_path / "my painting.png")
    painting.file_format = "PNG"
    painting.save()
    original = (tmp_path / "my painting.png").read_bytes()
    assert bpy.ops.stylepass.add_painted_keyframe(filepath=str(tmp_path / "my painting.png")) == {"FINISHED"}
    copy = tmp_path / "export" / "keyframes" / "keyframe_000001.png"
    assert copy.read_bytes() == original == (tmp_path / "my painting.png").read_bytes()
    rows = [json.loads(x) for x in (tmp_path / "export" / "pairs.jsonl").read_text().splitlines()]
    assert rows == [{"input": "frame_000001.exr", "target": "keyframes/keyframe_000001.png", "split": "train",
                     "scene": demo_scene.name, "frame": 1}]
    with pytest.raises(RuntimeError, match="has a painting already"):
        bpy.ops.stylepass.add_painted_keyframe(filepath=str(tmp_path / "my painting.png"))
    wrong = bpy.data.images.new("wrong", 20, 20)
    wrong.filepath_raw = str(tmp_path / "wrong.png")
    wrong.file_format = "PNG"
    wrong.save()
    with pytest.raises(RuntimeError, match="is 20x20 but frame 1 was rendered at 48x27"):
        bpy.ops.stylepass.add_painted_keyframe(filepath=str(tmp_path / "wrong.png"), replace=True)
    assert copy.read_bytes() == original, "a refused painting changes nothing"


def test_the_cancel_buttons_ask_their_running_job_to_stop(addon):
    window_manager = bpy.context.window_manager
    for cancel, status in ((bpy.ops.stylepass.cancel_stylise, window_manager.stylepass_job),
                           (bpy.ops.stylepass.cancel_train_style, window_manager.stylepass_train),
                           (bpy.ops.stylepass.cancel_install_training_engine, window_manager.stylepass_engine)):
        status.cancel_requested, status.state = False, "IDLE"
        assert not cancel.poll(), "nothing to cancel"
        status.state = "RUNNING"
        assert cancel() == {"FINISHED"}
        assert status.cancel_requested
        status.cancel_requested, status.state = False, "IDLE"


def test_operators_refuse_where_they_cannot_run(addon, demo_scene):
    """poll(): no export without a camera, no second job while one runs, nothing to remove."""
    assert bpy.ops.stylepass.export_gbuffers.poll()
    demo_scene.camera = None
    assert not bpy.ops.stylepass.export_gbuffers.poll()
    demo_scene.camera = bpy.data.objects["Stylepass Camera"]
    window_manager = bpy.context.window_manager
    for operator, status in ((bpy.ops.stylepass.stylise, window_manager.stylepass_job),
                             (bpy.ops.stylepass.stylise_animation, window_manager.stylepass_job),
                             (bpy.ops.stylepass.train_style, window_manager.stylepass_train),
                             (bpy.ops.stylepass.install_training_engine, window_manager.stylepass_engine)):
        status.state = "RUNNING"
        assert not operator.poll()
        status.state = "IDLE"
        assert operator.poll()
    assert not bpy.ops.stylepass.remove_stylise.poll()
