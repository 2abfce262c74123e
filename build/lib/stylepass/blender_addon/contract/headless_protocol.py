"""What a headless job tells the `stylepass` CLI (Blender-free).

A job runs inside Blender (bpy) in a child process. It reports progress as lines
``@@stylepass {json}`` on stdout among Blender's own output, and ends with an exit code
from :class:`.exit_codes.ExitCode` that the CLI passes on, so farm schedulers can act on it.

Events: ``start`` (total, message), ``progress`` (done, total, label, status),
``warning`` (message), ``error`` (code, message), ``done`` (message).
"""

from __future__ import annotations

import errno
import json
from typing import Any

from .exit_codes import ExitCode

EVENT_PREFIX = "@@stylepass "


class JobError(RuntimeError):
    """A job cannot go on; the message says what to fix. Subclasses pick the exit code."""

    exit_code = ExitCode.FAILED


class BadInputError(JobError, ValueError):
    """The input (scene, recipe, option) is wrong."""

    exit_code = ExitCode.BAD_INPUT


class OutputNotWritableError(JobError):
    """The output folder cannot be created or written."""

    exit_code = ExitCode.OUTPUT_UNWRITABLE


class JobCancelled(Exception):
    """The user or the farm asked the job to stop; finished work is kept."""


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def error_exit_code(exc: BaseException) -> ExitCode:
    """The exit code for an exception that ended a job: JobError's own, BAD_INPUT for any
    other ValueError (bad option values), OUTPUT_UNWRITABLE for a full disk, else FAILED."""
    if isinstance(exc, JobError):
        return exc.exit_code
    if isinstance(exc, ValueError):
        return ExitCode.BAD_INPUT
    if _disk_full(exc):
        return ExitCode.OUTPUT_UNWRITABLE
    return ExitCode.FAILED


def error_message(exc: BaseException) -> str:
    """What to tell the user about an exception that ended a job."""
    if _disk_full(exc):
        return (f"the disk is full (writing {getattr(exc, 'filename', None) or 'the output'}): free some "
                "space and run the same command again to resume; finished work is kept")
    if error_exit_code(exc) == ExitCode.FAILED:
        return f"{type(exc).__name__}: {exc}"
    return str(exc)


def encode_event(kind: str, **fields: Any) -> str:
    """One progress line, e.g. ``encode_event("progress", done=1, total=4, label="frame 3")``."""
    return EVENT_PREFIX + json.dumps({"event": kind, **fields}, sort_keys=True)


def decode_event(line: str) -> dict[str, Any] | None:
    """The event on a line of a job's output, or None for any other line."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
