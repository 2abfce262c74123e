"""Stylise operators (bpy): ``stylepass.stylise``, ``stylepass.stylise_animation``,
``stylepass.remove_stylise``.

From the UI the stylise operators run modally: a timer advances the job, Blender's status
bar and the panel show progress, Esc or the panel's Cancel stops it. Called with
``execute`` (background mode, scripts) they run to the end before returning. A failed or
cancelled job leaves the compositor tree as it was.
"""

from __future__ import annotations

from collections.abc import Iterator

import bpy

from ..contract.headless_protocol import JobCancelled, JobError
from ..live import stylise_job
from ..scene import compositor_nodes
from .modal_progress import (
    CancelJobOperator,
    ModalJobOperator,
    end_modal,
    refuse_while_running,
    show_progress,
    update_progress,
)


def job_status(context: bpy.types.Context) -> bpy.types.PropertyGroup:
    return context.window_manager.stylepass_job


def frames_to_stylise(scene: bpy.types.Scene, animation: bool) -> list[int]:
    """The current frame, or every frame of the scene's range."""
    if not animation:
        return [scene.frame_current]
    return list(range(scene.frame_start, scene.frame_end + 1, scene.frame_step))


class StyliseOperatorBase(ModalJobOperator):
    """Shared by the still and animation operators (``animation`` picks the frames)."""

    bl_options = {"REGISTER", "UNDO"}  # the compositor change is one undo step
    animation = False
    timer_seconds = 0.05
    _status = staticmethod(job_status)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse_while_running(cls, job_status(context), "A stylise job")
    _steps: Iterator[stylise_job.Progress] | None = None

    def _start(self, context: bpy.types.Context) -> Iterator[stylise_job.Progress]:
        status = job_status(context)
        status.state, status.message, status.progress, status.cancel_requested = "RUNNING", "starting", 0.0, False
        scene = context.scene
        return stylise_job.stylise_steps(scene, context.view_layer, frames_to_stylise(scene, self.animation),
                                         scene.stylepass.device)

    def _fail(self, context: bpy.types.Context, exc: Exception) -> set[str]:
        status = job_status(context)
        message = str(exc)
        if getattr(exc, "kind", "") == "no_cuda":
            message += "\nSet Device to CPU in the Stylepass panel (slower), or give the worker a CUDA build of torch."
        status.state, status.message = "FAILED", message
        if not isinstance(exc, JobError) or getattr(exc, "kind", "") == "worker_failed":
            stylise_job.stop_workers()
        self.report({"ERROR"}, f"Stylepass: {message}")
        return {"CANCELLED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        status = job_status(context)
        try:
            last = stylise_job.run_to_end(self._start(context), lambda p: show_progress(status, p),
                                          lambda: status.cancel_requested)
        except JobCancelled:
            status.state, status.message = "CANCELLED", "cancelled; the compositor is unchanged"
            return {"CANCELLED"}
        except (JobError, OSError) as exc:
            return self._fail(context, exc)
        status.state, status.message, status.progress = "DONE", last.message, 1.0
        self.report({"INFO"}, f"Stylepass: {last.message}")
        return {"FINISHED"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        status = job_status(context)
        if event.type == "ESC" or status.cancel_requested:
            self._finish(context)
            status.state, status.message = "CANCELLED", "cancelled; the compositor is unchanged"
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            progress = next(self._steps)
        except StopIteration:
            self._finish(context)
            status.state, status.progress = "DONE", 1.0
            self.report({"INFO"}, f"Stylepass: {status.message}")
            return {"FINISHED"}
        except (JobError, OSError) as exc:
            self._finish(context)
            return self._fail(context, exc)
        show_progress(status, progress)
        update_progress(context, status)
        for area in context.screen.areas if context.screen else ():
            if area.type == "PROPERTIES":
                area.tag_redraw()
        return {"RUNNING_MODAL"}

    def _finish(self, context: bpy.types.Context) -> None:
        if self._steps is not None:
            self._steps.close()
        end_modal(self, context)


class STYLEPASS_OT_stylise(StyliseOperatorBase, bpy.types.Operator):
    """Render the current frame, stylise it with the chosen style, and show it in the compositor"""

    bl_idname = "stylepass.stylise"
    bl_label = "Stylise"


class STYLEPASS_OT_stylise_animation(StyliseOperatorBase, bpy.types.Operator):
    """Render and stylise every frame of the scene's range; the compositor plays the stylised sequence"""

    bl_idname = "stylepass.stylise_animation"
    bl_label = "Stylise animation"
    animation = True


class STYLEPASS_OT_cancel_stylise(CancelJobOperator, bpy.types.Operator):
    """Stop the running stylise job after the current step"""

    bl_idname = "stylepass.cancel_stylise"
    bl_label = "Cancel"
    _status = staticmethod(job_status)


class STYLEPASS_OT_remove_stylise(bpy.types.Operator):
    """Remove the Stylepass node group and restore the compositor as it was"""

    bl_idname = "stylepass.remove_stylise"
    bl_label = "Remove stylisation"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if compositor_nodes.installed_node(context.scene) is None:
            cls.poll_message_set("The compositor holds no Stylepass node group")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not compositor_nodes.remove_stylise_nodes(context.scene):
            self.report({"INFO"}, "Stylepass: no stylisation to remove")
            return {"CANCELLED"}
        job_status(context).state = "IDLE"
        return {"FINISHED"}


CLASSES = (STYLEPASS_OT_stylise, STYLEPASS_OT_stylise_animation, STYLEPASS_OT_cancel_stylise,
           STYLEPASS_OT_remove_stylise)
