"""Frame ranges and farm shards (Blender-free).

``--frames A-B`` picks an inclusive range; ``--shard I/N`` (1-based) keeps every N-th
frame of it starting at the I-th, so N tasks with I = 1..N cover each frame exactly once
and each gets an even share even when frames take different times along the range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int


def parse_frame_range(text: str) -> tuple[int, int]:
    """Parse ``"A-B"`` or ``"A"`` into an inclusive ``(A, B)``.

    Raises:
        ValueError: with the accepted forms when the text is malformed or B < A.
    """
    match = _RANGE.match(text)
    if not match:
        raise ValueError(f"--frames {text!r}: expected A-B (e.g. 1-120) or a single frame")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) is not None else start
    if end < start:
        raise ValueError(f"--frames {text!r}: the end frame {end} is before the start {start}")
    return start, end


def parse_shard(text: str) -> Shard:
    """Parse ``"I/N"`` with 1 <= I <= N."""
    match = _SHARD.match(text)
    if not match:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 3/8 for the third of eight tasks")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"--shard {text!r}: I must be between 1 and N, and N at least 1")
    return Shard(index, count)


def select_frames(start: int, end: int, step: int = 1, shard: Shard | None = None) -> list[int]:
    """The frames of ``start..end`` (inclusive, every ``step``) that ``shard`` owns."""
    if step < 1:
        raise ValueError(f"frame step must be >= 1, got {step}")
    frames = list(range(start, end + 1, step))
    if shard is None:
        return frames
    return frames[shard.index - 1 :: shard.count]


def check_within(requested: tuple[int, int], available: tuple[int, int], scene_name: str) -> None:
    """Refuse a requested range that leaves the scene's frame range."""
    (a, b), (lo, hi) = requested, available
    if a < lo or b > hi:
        raise ValueError(
            f"--frames {a}-{b} is outside scene '{scene_name}' (frames {lo}-{hi}); "
            f"pick a range within {lo}-{hi} or change the scene's frame range"
        )
