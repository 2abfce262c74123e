"""Install training engine (bpy): ``stylepass.install_training_engine`` and its Cancel, and the
preferences box that shows the download size before it starts (the install itself:
:mod:`..live.training_engine`).

The install downloads, so it needs Blender's "Allow Online Access" (Preferences > System >
Network); with it off the operator refuses and nothing is touched. From the UI it runs modally (a
timer drives it; the status bar and the preferences show progress; Esc or Cancel stops it and
removes what it made); called with ``execute`` (background mode, scripts) it runs to the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import bpy

from .. import ADDON_DIR, ADDON_ID
from ..contract.headless_protocol import BadInputError, JobCancelled, JobError
from ..live import train_style_job
from ..live.stylise_job import engine_folder
from ..live.training_engine import BUILDS, EngineInstall, InstallProgress, engine_python
from .modal_progress import (
    CancelJobOperator,
    ModalJobOperator,
    end_modal,
    refuse_while_running,
    show_progress,
    update_progress,
)


def engine_status(context: bpy.types.Context) -> bpy.types.PropertyGroup:
    return context.window_manager.stylepass_engine


def check_online() -> None:
    """BadInputError unless Blender may go online (Preferences > System > Network)."""
    if not bpy.app.online_access:
        raise BadInputError("Allow Online Access is off (Preferences > System > Network): the training engine is "
                            "downloaded from PyPI and the PyTorch index. Turn it on to install; nothing was changed")


def draw_engine_box(layout: bpy.types.UILayout, preferences: bpy.types.AddonPreferences,
                    context: bpy.types.Context) -> None:
    """The preferences' Training engine box: installed or not, what an install downloads, its progress."""
    box = layout.box()
    box.label(text="Training engine (torch): needed by Train style only; stylising runs without it", icon="SHADERFX")
    status = engine_status(context)
    if status.state == "RUNNING":
        box.progress(factor=status.progress, text=status.message)
        box.operator("stylepass.cancel_install_training_engine", icon="CANCEL")
        return
    python = engine_python(engine_folder())
    if python is not None:
        box.label(text=f"Installed: {python}", icon="CHECKMARK")
    box.prop(preferences, "engine_build")
    build = BUILDS[preferences.engine_build]
    box.label(text=f"Downloads about {build.download_mb} MB (torch {build.label}, Stylepass's training code) "
                   f"into {engine_folder()}")
    if not bpy.app.online_access:
        box.label(text="Allow Online Access is off (Preferences > System > Network)", icon="ERROR")
    row = box.row()
    row.enabled = bpy.app.online_access
    row.operator("stylepass.install_training_engine", icon="IMPORT",
                 text="Reinstall training engine" if python else "Install training engine")
    if status.state in ("FAILED", "DONE", "CANCELLED"):
        for line in status.message.splitlines()[:8] or [""]:
            box.label(text=line, icon="ERROR" if status.state == "FAILED" else "INFO")


class STYLEPASS_OT_install_training_engine(ModalJobOperator, bpy.types.Operator):
    """Download torch and Stylepass's training code into a Python environment of their own, for Train style"""

    bl_idname = "stylepass.install_training_engine"
    bl_label = "Install training engine"

    timer_seconds = 0.2
    _status = staticmethod(engine_status)
    _steps: Iterator[InstallProgress] | None = None
    _install: EngineInstall | None = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse_while_running(cls, engine_status(context), "An install of the training engine")

    def _start(self, context: bpy.types.Context) -> Iterator[InstallProgress]:
        check_online()
        if train_style_job.running():
            raise BadInputError("a Train style job is running in the training engine: let it finish or cancel it "
                                "before installing the engine again")
        status = engine_status(context)
        status.state, status.message, status.progress, status.cancel_requested = "RUNNING", "starting", 0.0, False
        preferences = context.preferences.addons[ADDON_ID].preferences
        self._install = EngineInstall(engine_folder(), preferences.engine_build, ADDON_DIR)
        return self._install.steps()

    def execute(self, context: bpy.types.Context) -> set[str]:
        status = engine_status(context)
        try:
            for progress in self._start(context):
                show_progress(status, progress)
                if status.cancel_requested and self._install is not None:
                    self._install.cancel()
                time.sleep(0.05)
        except JobCancelled:
            status.state, status.message = "CANCELLED", "cancelled; nothing was installed"
            return {"CANCELLED"}
        except (JobError, OSError) as exc:
            return self._fail(context, exc)
        status.state, status.progress = "DONE", 1.0
        self.report({"INFO"}, f"Stylepass: {status.message}")
        return {"FINISHED"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        status = engine_status(context)
        if (event.type == "ESC" or status.cancel_requested) and self._install is not None:
            self._install.cancel()  # the steps notice it and clean up
        if event.type != "TIMER" and event.type != "ESC":
            return {"PASS_THROUGH"}
        try:
            progress = next(self._steps)  # type: ignore[arg-type]
        except StopIteration:
            end_modal(self, context)
            status.state, status.progress = "DONE", 1.0
            return {"FINISHED"}
        except JobCancelled:
            end_modal(self, context)
            status.state, status.message = "CANCELLED", "cancelled; nothing was installed"
            return {"CANCELLED"}
        except (JobError, OSError) as exc:
            end_modal(self, context)
            return self._fail(context, exc)
        show_progress(status, progress)
        update_progress(context, status)
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        return {"RUNNING_MODAL"}


    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (a file loaded, the window closed): stop and clean up."""
        if self._install is not None:
            self._install.cancel()
        if self._steps is not None:
            self._steps.close()  # kills pip, removes the .partial folder
        end_modal(self, context)
        status = engine_status(context)
        status.state, status.message = "CANCELLED", "cancelled; nothing was installed"


class STYLEPASS_OT_cancel_install_training_engine(CancelJobOperator, bpy.types.Operator):
    """Stop installing the training engine and remove what was made"""

    bl_idname = "stylepass.cancel_install_training_engine"
    bl_label = "Cancel"
    _status = staticmethod(engine_status)


CLASSES = (STYLEPASS_OT_install_training_engine, STYLEPASS_OT_cancel_install_training_engine)
