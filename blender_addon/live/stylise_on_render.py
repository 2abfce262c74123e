"""Stylise every frame as Blender renders it (bpy render handlers), when the scene's
"Stylise on render" option is on.

At the start of a render the worker is started and the model loaded; after each frame
the render result's G-buffers are saved and the frame is queued with the worker (Blender
renders the next frame meanwhile); when the render completes, the results are collected
and the node group reads the stylised image (sequence). A problem is reported on the
console and in the panel; the render itself is never stopped by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from ..contract.headless_protocol import JobError
from ..scene import compositor_nodes, gbuffer_export
from . import stylise_job
from .worker_client import WorkerClient


@dataclass
class RenderSession:
    """One render job's stylisation: the worker, the model, and the queued frames."""

    worker: WorkerClient
    model_name: str
    out_dir: Path
    queued: list[tuple[int, Path]] = field(default_factory=list)  # (request id, stylised output)
    first_frame: int | None = None


_session: RenderSession | None = None


def _report(message: str, state: str) -> None:
    print(f"Stylepass: {message}")
    status = bpy.context.window_manager.stylepass_job
    status.state, status.message = state, message


@persistent
def on_render_init(scene: bpy.types.Scene, *_args: object) -> None:
    global _session
    _session = None
    if not scene.stylepass.stylise_on_render:
        return
    try:
        out_dir = gbuffer_export.output_dir_from_setting(scene.stylepass.output_dir)
        gbuffer_export.prepare_output_dir(out_dir)
        worker = stylise_job.shared_worker(stylise_job.worker_runtime())
        request = stylise_job.model_request(scene.stylepass.model, scene.stylepass.precision)
        loaded = worker.call("load", device=scene.stylepass.device, **request)
        stylise_job.remember_loaded(loaded)
        _session = RenderSession(worker, loaded["model"]["name"], out_dir)
        _report(f"stylising each rendered frame with {_session.model_name}", "RUNNING")
    except (JobError, OSError) as exc:
        _report(f"stylise on render is off for this render: {exc}", "FAILED")


@persistent
def on_render_post(scene: bpy.types.Scene, *_args: object) -> None:
    if _session is None:
        return
    frame = scene.frame_current
    try:
        row = gbuffer_export.save_rendered_frame(scene, bpy.context.view_layer, _session.out_dir, frame)
        output = stylise_job.stylised_path(_session.out_dir, _session.model_name, frame)
        request_id = _session.worker.send("stylise", input=str(_session.out_dir / row["exr"]),
                                          output=str(output), preview=str(output.with_suffix(".png")))
        _session.queued.append((request_id, output))
        _session.first_frame = frame if _session.first_frame is None else min(_session.first_frame, frame)
    except (JobError, OSError) as exc:
        _report(f"frame {frame} was not stylised: {exc}", "FAILED")


@persistent
def on_render_complete(scene: bpy.types.Scene, *_args: object) -> None:
    global _session
    session, _session = _session, None
    if session is None or not session.queued:
        return
    try:
        outputs = [output for request_id, output in session.queued
                   if session.worker.finish(session.worker.pending(request_id))]
        compositor_nodes.install_stylise_nodes(scene, session.model_name, outputs[0],
                                               sequence=len(outputs) > 1, frame_start=session.first_frame)
        _report(f"done: {len(outputs)} rendered frame(s) stylised with {session.model_name}", "DONE")
    except (JobError, OSError) as exc:
        _report(f"stylising the rendered frames failed: {exc}", "FAILED")


@persistent
def on_render_cancel(scene: bpy.types.Scene, *_args: object) -> None:
    global _session
    if _session is not None:
        _session = None
        _report("render cancelled; the compositor is unchanged", "CANCELLED")


HANDLERS = (
    (bpy.app.handlers.render_init, on_render_init),
    (bpy.app.handlers.render_post, on_render_post),
    (bpy.app.handlers.render_complete, on_render_complete),
    (bpy.app.handlers.render_cancel, on_render_cancel),
)


def register() -> None:
    for handlers, handler in HANDLERS:
        handlers.append(handler)


def unregister() -> None:
    for handlers, handler in HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
