"""Render frames and write them as G-buffer exports (bpy).

One frame: render the view layer, save the render result as multilayer EXR to a
temporary file, rename it into place, then write the sidecar the same way, then append a
line to the folder's manifest. See ``export_format`` for the layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import bpy

from ..blender_compat import multilayer_exr_output, render_samples
from ..contract.atomic_files import (
    append_jsonl,
    partials_of,
    read_jsonl,
    temp_path_for,
    write_atomic,
    write_json_atomic,
)
from ..contract.export_format import MANIFEST_NAME, PASSES, SCHEMA_VERSION, frame_stem
from ..contract.headless_protocol import BadInputError, JobError, OutputNotWritableError
from . import passes
from .camera_record import camera_record, render_size
from .material_ids import material_table
from .render_settings import plain_render_pipeline, render_view_layer


class BadSceneError(BadInputError):
    """The scene cannot be exported as it is (no camera, wrong engine, passes off)."""


@dataclass(frozen=True)
class FrameFiles:
    """Where one frame's files go."""

    exr: Path
    sidecar: Path

    @classmethod
    def in_folder(cls, out_dir: Path, frame: int) -> FrameFiles:
        stem = frame_stem(frame)
        return cls(out_dir / f"{stem}.exr", out_dir / f"{stem}.json")


def prepare_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and check a file can be written there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = temp_path_for(out_dir / ".write-check")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputNotWritableError(
            f"cannot write to the output folder {out_dir}: {exc.strerror or exc}; "
            "choose a folder you can write to"
        ) from exc


def check_exportable(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> None:
    """Raise BadSceneError unless the scene has a camera, a G-buffer engine and its passes on."""
    if scene.camera is None:
        raise BadSceneError(f"scene '{scene.name}' has no active camera: add one, or set "
                            "Scene Properties > Camera")
    try:
        missing = passes.missing_required(scene, view_layer)
    except passes.UnsupportedEngineError as exc:
        raise BadSceneError(str(exc)) from exc
    if missing:
        raise BadSceneError(f"view layer '{view_layer.name}' lacks the passes {', '.join(missing)}: "
                            "run Stylepass > Set up passes")


def is_frame_finished(files: FrameFiles) -> bool:
    """A frame is finished when its sidecar exists and names an EXR of the recorded size."""
    try:
        sidecar = json.loads(files.sidecar.read_text())
        return files.exr.stat().st_size == sidecar["exr"]["bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def enabled_pass_names(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> list[str]:
    """Our names of the passes that are on, in ``export_format.PASSES`` order."""
    on = {status.spec.name for status in passes.pass_status(scene, view_layer)
          if status.enabled and not status.unavailable_reason}
    return [spec.name for spec in PASSES if spec.name in on]


def build_sidecar(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, frame: int,
                  exr: Path) -> dict[str, object]:
    """The sidecar of a frame just written (keys in ``export_format.SIDECAR_KEYS``)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    width, height = render_size(scene)
    view = scene.view_settings
    return {
        "schema_version": SCHEMA_VERSION,
        "frame": frame,
        "exr": {"file": exr.name, "bytes": exr.stat().st_size},
        "engine": scene.render.engine,
        "samples": render_samples(scene),
        "seed": int(scene.cycles.seed) if scene.render.engine == "CYCLES" else None,
        "blender_version": bpy.app.version_string,
        "blend_file": bpy.data.filepath or None,
        "scene": scene.name,
        "view_layer": view_layer.name,
        "resolution": [width, height],
        "pixel_aspect": [float(scene.render.pixel_aspect_x), float(scene.render.pixel_aspect_y)],
        "fps": scene.render.fps / scene.render.fps_base,
        "camera": camera_record(scene, depsgraph),
        "view_transform": {
            "display_device": scene.display_settings.display_device,
            "view_transform": view.view_transform,
            "look": view.look,
            "exposure": float(view.exposure),
            "gamma": float(view.gamma),
        },
        "passes": enabled_pass_names(scene, view_layer),
        "materials": material_table(scene),
    }


def export_frame(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, out_dir: Path,
                 frame: int) -> dict[str, object]:
    """Render ``frame`` and write its EXR, sidecar and manifest line; returns the manifest row."""
    scene.frame_set(frame)
    with plain_render_pipeline(scene):  # the passes as rendered: no compositor, no sequencer strips
        render_view_layer(scene, view_layer)
    return save_rendered_frame(scene, view_layer, out_dir, frame)


def save_rendered_frame(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, out_dir: Path,
                        frame: int) -> dict[str, object]:
    """Write Blender's current render result as ``frame``'s EXR, sidecar and manifest line."""
    files = FrameFiles.in_folder(out_dir, frame)
    for leftover in partials_of(files.exr) + partials_of(files.sidecar):
        leftover.unlink(missing_ok=True)
    result = bpy.data.images.get("Render Result")
    if result is None:
        raise JobError(f"Blender produced no render result for frame {frame}")

    def save_exr(temp: Path) -> None:
        with multilayer_exr_output(scene):
            result.save_render(filepath=str(temp), scene=scene)
        if not temp.is_file() or temp.stat().st_size == 0:
            raise JobError(f"Blender wrote no EXR for frame {frame} to {temp}")

    write_atomic(files.exr, save_exr)
    write_json_atomic(files.sidecar, build_sidecar(scene, view_layer, frame, files.exr))
    row = {"frame": frame, "exr": files.exr.name, "sidecar": files.sidecar.name}
    append_jsonl(out_dir / MANIFEST_NAME, row)
    return row


def repair_manifest(out_dir: Path, frames: Iterable[int]) -> None:
    """Add manifest lines for finished frames a killed job did not get to record."""
    listed = {row.get("frame") for row in read_jsonl(out_dir / MANIFEST_NAME)}
    for frame in frames:
        files = FrameFiles.in_folder(out_dir, frame)
        if frame not in listed and is_frame_finished(files):
            append_jsonl(out_dir / MANIFEST_NAME,
                         {"frame": frame, "exr": files.exr.name, "sidecar": files.sidecar.name})


@dataclass
class ExportSummary:
    """Frames written and skipped (already finished) by ``export_frames``; whether it was cancelled."""

    written: list[int]
    skipped: list[int]
    cancelled: bool = False


ProgressCallback = Callable[[str, int, int, int], None]  # (event, frame, done, total)


def export_frames(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, out_dir: Path,
                  frames: list[int], on_progress: ProgressCallback | None = None,
                  should_cancel: Callable[[], bool] | None = None) -> ExportSummary:
    """Export ``frames``, skipping finished ones, so re-running resumes a killed job.

    ``on_progress(event, frame, done, total)`` is called with ``"skipped"`` or ``"written"``
    after each frame; ``should_cancel()`` is polled before each frame and stops the loop.
    """
    check_exportable(scene, view_layer)
    prepare_output_dir(out_dir)
    repair_manifest(out_dir, frames)
    summary = ExportSummary([], [])
    original_frame = scene.frame_current
    try:
        for done, frame in enumerate(frames, start=1):
            if should_cancel is not None and should_cancel():
                summary.cancelled = True
                break
            if is_frame_finished(FrameFiles.in_folder(out_dir, frame)):
                summary.skipped.append(frame)
                event = "skipped"
            else:
                export_frame(scene, view_layer, out_dir, frame)
                summary.written.append(frame)
                event = "written"
            if on_progress is not None:
                on_progress(event, frame, done, len(frames))
    finally:
        scene.frame_set(original_frame)
    return summary


def output_dir_from_setting(path_setting: str) -> Path:
    """Resolve the panel's output folder (``//`` is relative to the saved .blend)."""
    if path_setting.startswith("//") and not bpy.data.filepath:
        raise OutputNotWritableError("the output folder is relative to the .blend file, which is not "
                                     "saved yet: save the file or choose an absolute folder")
    return Path(os.path.normpath(bpy.path.abspath(path_setting)))
