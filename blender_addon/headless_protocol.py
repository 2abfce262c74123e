"""What the headless exporter tells the `stylepass` CLI (Blender-free).

The exporter runs inside Blender (bpy) in a child process; it reports progress as lines
``@@stylepass {json}`` on stdout among Blender's own output, and ends with an exit code
from :class:`ExitCode` that the CLI passes on, so farm schedulers can act on it.
"""

from __future__ import annotations

import enum
import json
from typing import Any

EVENT_PREFIX = "@@stylepass "


class ExitCode(enum.IntEnum):
    """Exit codes of ``stylepass export`` (documented in the README)."""

    OK = 0
    FAILED = 1            # unexpected error: worth a retry, then a bug report
    BAD_INPUT = 2         # the scene, a setting or an argument is wrong: fix it, do not retry
    OUTPUT_UNWRITABLE = 3  # the output folder cannot be written
    NO_BLENDER = 4        # the requested Blender is not installed or does not start
    CANCELLED = 130       # interrupted (Ctrl-C / SIGTERM); re-run the same command to resume


def encode_event(kind: str, **fields: Any) -> str:
    """One progress line, e.g. ``encode_event("frame_done", frame=3, done=1, total=4)``."""
    return EVENT_PREFIX + json.dumps({"event": kind, **fields}, sort_keys=True)


def decode_event(line: str) -> dict[str, Any] | None:
    """The event on a line of the exporter's output, or None for any other line."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
