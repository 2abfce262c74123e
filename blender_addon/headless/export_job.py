"""The ``export`` job: render a scene's frames to G-buffer exports (bpy; run by ``headless_main``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import bpy

from ..blender_compat import eevee_engine_id, set_render_samples
from ..contract import export_options, export_settings, frame_selection
from ..contract.headless_protocol import JobCancelled
from ..scene import cycles_device, gbuffer_export, passes, scene_loading

Emit = Callable[..., None]


def apply_render_options(scene: bpy.types.Scene, engine: str | None, samples: int | None,
                         resolution: tuple[int, int] | None, seed: int) -> None:
    """Override the scene's engine, samples, output size and Cycles seed where given."""
    if engine == "cycles":
        scene.render.engine = "CYCLES"
    elif engine == "eevee":
        scene.render.engine = eevee_engine_id()
    if resolution:
        scene.render.resolution_x, scene.render.resolution_y = resolution
        scene.render.resolution_percentage = 100
    passes.require_family(scene)
    if samples:
        set_render_samples(scene, samples)
    scene.cycles.seed = seed
    scene.cycles.use_animated_seed = False


def run(argv: list[str], emit: Emit, should_cancel: Callable[[], bool]) -> None:
    """Parse the export options, load the scene and export the frames this shard owns."""
    parser = argparse.ArgumentParser(prog="stylepass export (in Blender)")
    export_options.add_export_arguments(parser)
    options = export_options.ExportOptions.from_namespace(parser.parse_args(argv))
    cycles_device.use_cycles_device(options.cycles_device)
    scene, warnings = scene_loading.load_scene(options.scene)
    for warning in warnings:
        emit("warning", message=warning)
    apply_render_options(scene, options.engine, options.samples, options.resolution, options.seed)
    view_layer = bpy.context.view_layer
    passes.setup_passes(scene, view_layer)
    scene_range = (scene.frame_start, scene.frame_end)
    requested = options.frames or scene_range
    frame_selection.check_within(requested, scene_range, scene.name)
    frames = frame_selection.select_frames(*requested, step=scene.frame_step, shard=options.shard)
    out_dir = Path(options.out).resolve()
    gbuffer_export.prepare_output_dir(out_dir)  # an unwritable folder is exit 3, before anything else
    export_settings.check_or_record(out_dir, {
        **export_settings.scene_identity(options.scene), "engine": scene.render.engine,
        "resolution": [scene.render.resolution_x * scene.render.resolution_percentage // 100,
                       scene.render.resolution_y * scene.render.resolution_percentage // 100],
        "samples": scene.cycles.samples if scene.render.engine == "CYCLES" else scene.eevee.taa_render_samples,
        "seed": options.seed})
    emit("start", total=len(frames), message=f"exporting {len(frames)} frame(s) to {out_dir} with Blender "
                                               f"{bpy.app.version_string} ({scene.render.engine})")
    summary = gbuffer_export.export_frames(
        scene, view_layer, out_dir, frames,
        on_progress=lambda status, frame, done, total: emit(
            "progress", status=status, label=f"frame {frame}", done=done, total=total),
        should_cancel=should_cancel,
    )
    if summary.cancelled:
        raise JobCancelled
    emit("done", message=f"{len(summary.written)} frame(s) written, {len(summary.skipped)} already finished, "
                         f"in {out_dir}")
