"""Train style operators (bpy): ``stylepass.train_style`` and ``stylepass.cancel_train_style``.

Train style trains a custom style from the export folder's painted keyframes in the core's
Python (:mod:`..live.train_style_job`) and, when it is done, makes it the scene's style, so Stylise
and Stylise animation apply it like a preset. From the UI it runs modally: a timer follows the
job, the status bar and the panel show its progress, the image "Stylepass style preview" is
reloaded whenever the job rewrites its preview PNG, and Esc or the panel's Cancel stops it
after the current step (its checkpoint is kept: the next Train style continues from it).
A checkpoint of an earlier Train style on the same paintings is continued; after a painting
was added, replaced or removed, the style is trained afresh. Called with ``execute``
(background mode, scripts) it runs to the end before returning.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import bpy

from ..contract.headless_protocol import JobCancelled, JobError
from ..live import stylise_job
from ..live.train_style_job import StyleFolders, TrainingProgress, TrainStyleJob, train_style_argv
from ..scene import gbuffer_export
from .modal_progress import (
    CancelJobOperator,
    ModalJobOperator,
    end_modal,
    refuse_while_running,
    show_progress,
    update_progress,
)

POLL_SECONDS = 0.1
PREVIEW_IMAGE = "Stylepass style preview"


def train_status(context: bpy.types.Context) -> bpy.types.PropertyGroup:
    return context.window_manager.stylepass_train


def style_folders(scene: bpy.types.Scene) -> tuple[Path, StyleFolders]:
    """The export folder and where the scene's custom style goes."""
    export_dir = gbuffer_export.output_dir_from_setting(scene.stylepass.output_dir)
    return export_dir, StyleFolders.of(export_dir, scene.stylepass.style_name)


class PreviewImage:
    """The Blender image showing the job's preview PNG, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: float | None = None

    def refresh(self) -> bpy.types.Image | None:
        """Load or reload the image if the PNG changed since the last call; returns it (or None
        before the job wrote a preview)."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        image = bpy.data.images.get(PREVIEW_IMAGE)
        if image is not None and stamp == self._stamp and Path(bpy.path.abspath(image.filepath)) == self.path:
            return image
        if image is None:
            image = bpy.data.images.load(str(self.path), check_existing=False)
            image.name = PREVIEW_IMAGE
        else:
            image.filepath = str(self.path)
            image.reload()
        image.preview_ensure().reload()  # the panel's thumbnail
        self._stamp = stamp
        return image


class STYLEPASS_OT_train_style(ModalJobOperator, bpy.types.Operator):
    """Train a custom style from the painted keyframes of the export folder, then make it the scene's
    style (Stylise applies it like a preset)"""

    bl_idname = "stylepass.train_style"
    bl_label = "Train style"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse_while_running(cls, train_status(context), "A Train style job")

    steps: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Steps", description="Training steps (0: the default, 2000: about 8 minutes on a 2-core CPU)",
        default=0, min=0)
    patch: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Patch size", description="Training patch size in pixels (0: the default, 96)", default=0, min=0)
    minutes: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Time budget", description="Stop after this many minutes and use the style so far (0: no budget)",
        default=0.0, min=0.0)
    restart: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Start over", description="Discard the previous training of this style instead of continuing it",
        default=False)

    timer_seconds = 0.25
    _status = staticmethod(train_status)
    _job: TrainStyleJob | None = None
    _steps: Iterator[TrainingProgress] | None = None
    _preview: PreviewImage | None = None
    _folders: StyleFolders | None = None

    def _start(self, context: bpy.types.Context) -> Iterator[TrainingProgress]:
        status = train_status(context)
        status.state, status.message, status.progress, status.cancel_requested = "RUNNING", "starting", 0.0, False
        scene = context.scene
        export_dir, folders = style_folders(scene)
        # An earlier run continues if it was trained on these paintings; with other paintings it starts over.
        resume = folders.has_checkpoint and not self.restart and folders.trained_on_current_paintings(export_dir)
        argv = train_style_argv(stylise_job.training_python(), export_dir, folders, scene.stylepass.device,
                                resume=resume, restart=folders.has_checkpoint and not resume,
                                steps=self.steps, patch=self.patch, minutes=self.minutes)
        self._job = TrainStyleJob(argv, export_dir)
        self._folders = folders
        self._preview = PreviewImage(folders.preview)
        return self._job.steps()

    def _cancelled(self, context: bpy.types.Context) -> set[str]:
        status = train_status(context)
        status.state = "CANCELLED"
        status.message = "cancelled: the checkpoint is kept, Train style continues from it"
        return {"CANCELLED"}

    def _succeeded(self, context: bpy.types.Context) -> set[str]:
        assert self._folders is not None and self._preview is not None
        self._preview.refresh()
        context.scene.stylepass.model = str(self._folders.model)
        status = train_status(context)
        status.state, status.progress = "DONE", 1.0
        status.message = f"style {self._folders.model.name} trained; Stylise applies it"
        self.report({"INFO"}, f"Stylepass: {status.message} ({self._folders.model})")
        return {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        status = train_status(context)
        try:
            for progress in self._start(context):
                if status.cancel_requested and self._job is not None:
                    self._job.cancel()
                show_progress(status, progress)
                assert self._preview is not None
                self._preview.refresh()
                time.sleep(POLL_SECONDS)
        except JobCancelled:
            return self._cancelled(context)
        except (JobError, OSError) as exc:
            return self._fail(context, exc)
        return self._succeeded(context)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        status = train_status(context)
        if (event.type == "ESC" or status.cancel_requested) and self._job is not None:
            self._job.cancel()  # the job ends after its step; the timer then sees it finish
            status.message = "cancelling after this step (writing a checkpoint)"
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        assert self._steps is not None and self._preview is not None
        try:
            progress = next(self._steps)
        except StopIteration:
            self._finish(context)
            return self._succeeded(context)
        except JobCancelled:
            self._finish(context)
            return self._cancelled(context)
        except (JobError, OSError) as exc:
            self._finish(context)
            return self._fail(context, exc)
        show_progress(status, progress)
        update_progress(context, status)
        if self._preview.refresh() is not None:
            for area in context.screen.areas if context.screen else ():
                if area.type in ("PROPERTIES", "IMAGE_EDITOR"):
                    area.tag_redraw()
        return {"RUNNING_MODAL"}

    def _finish(self, context: bpy.types.Context) -> None:
        end_modal(self, context)


class STYLEPASS_OT_cancel_train_style(CancelJobOperator, bpy.types.Operator):
    """Stop training after the current step; the checkpoint is kept and Train style continues from it"""

    bl_idname = "stylepass.cancel_train_style"
    bl_label = "Cancel training"
    _status = staticmethod(train_status)


CLASSES = (STYLEPASS_OT_train_style, STYLEPASS_OT_cancel_train_style)
