"""What the modal job operators (Stylise, Train style) share: starting the job from ``invoke``, a
timer that drives it, Blender's progress bar in the status bar, the job's status for the panel,
and the Cancel button.

The operator keeps its timer in ``operator._timer``; ``status`` is a ``StylepassJobStatus``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..contract.headless_protocol import JobError

if TYPE_CHECKING:
    import bpy

PROGRESS_STEPS = 1000  # resolution of Blender's progress bar


class JobProgress(Protocol):
    """A job's progress report (``stylise_job.Progress``, ``train_style_job.TrainingProgress``)."""

    done: int
    total: int
    message: str


def show_progress(status: bpy.types.PropertyGroup, progress: JobProgress) -> None:
    """Copy a progress report into the panel's status (fraction done, message)."""
    status.progress = min(progress.done / max(progress.total, 1), 1.0)
    status.message = progress.message


def begin_modal(operator: Any, context: bpy.types.Context, interval: float) -> set[str]:
    """Start the operator's timer (every `interval` s) and the status bar's progress; returns
    ``{"RUNNING_MODAL"}`` for ``invoke``."""
    window_manager = context.window_manager
    operator._timer = window_manager.event_timer_add(interval, window=context.window)
    window_manager.progress_begin(0, PROGRESS_STEPS)
    window_manager.modal_handler_add(operator)
    return {"RUNNING_MODAL"}


def update_progress(context: bpy.types.Context, status: bpy.types.PropertyGroup) -> None:
    """Move the status bar's progress to the status's fraction."""
    context.window_manager.progress_update(int(status.progress * PROGRESS_STEPS))


def end_modal(operator: Any, context: bpy.types.Context) -> None:
    """Stop the operator's timer (if it has one) and the status bar's progress."""
    if operator._timer is not None:
        context.window_manager.event_timer_remove(operator._timer)
        operator._timer = None
    context.window_manager.progress_end()


class ModalJobOperator:
    """``invoke`` of a modal job operator (mix in before ``bpy.types.Operator``).

    The operator gives ``_start(context)``, which resets its status and returns the job's
    progress iterator, ``_status(context)``, its job's status, ``modal``, and ``timer_seconds``,
    how often the timer drives the job. ``_fail`` (the error into the status and Blender's
    report, ``{"CANCELLED"}``) may be given too.
    """

    # Blender evaluates these annotations when it registers the operator: only names this module
    # imports at run time (bpy is imported for type checking only).
    timer_seconds: float
    _steps: Iterator[Any] | None = None
    _timer: Any = None  # bpy.types.Timer while the job runs

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Start the job; on success start the timer and the progress bar (``{"RUNNING_MODAL"}``)."""
        try:
            self._steps = self._start(context)  # type: ignore[attr-defined]
        except (JobError, OSError) as exc:
            return self._fail(context, exc)
        return begin_modal(self, context, self.timer_seconds)

    def _fail(self, context: bpy.types.Context, exc: Exception) -> set[str]:
        """The job failed: its message goes to the status (the panel) and to Blender's report."""
        status = self._status(context)  # type: ignore[attr-defined]
        status.state, status.message = "FAILED", str(exc)
        self.report({"ERROR"}, f"Stylepass: {exc}")  # type: ignore[attr-defined]
        return {"CANCELLED"}


def refuse_while_running(cls: Any, status: bpy.types.PropertyGroup, what: str) -> bool:
    """A job operator's ``poll``: False (with Blender's poll message) while its job runs."""
    if status.state == "RUNNING":
        cls.poll_message_set(f"{what} is running: wait for it or cancel it")
        return False
    return True


class CancelJobOperator:
    """``execute`` of a job's Cancel button (mix in before ``bpy.types.Operator``): the job stops
    after its current step. The operator gives ``_status(context)``, the job's status."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(cls._status(context).state == "RUNNING")  # type: ignore[attr-defined]

    def execute(self, context: bpy.types.Context) -> set[str]:
        self._status(context).cancel_requested = True  # type: ignore[attr-defined]
        return {"FINISHED"}
