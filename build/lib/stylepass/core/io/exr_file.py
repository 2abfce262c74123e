"""Read and write OpenEXR files, single-part or multi-part (wraps ``OpenEXR``).

Blender 4.5 writes multilayer EXRs as one interleaved part; 5.x writes one part per pass.
Both come out of :func:`read_exr` as one flat ``{full channel name: (H, W) array}`` mapping.

Threads. OpenEXR (de)compresses a file's line blocks on its global thread pool, which is off
unless asked for. :func:`exr_threads` turns it on around each read and write and off again
after, because a pool left running is inherited dead by processes forked later (a training
DataLoader's workers) and their next EXR read would wait on it forever. Turning it on and off
costs well under a millisecond; a 1920x1080 G-buffer export decodes about 1.7x faster on two
cores (more with more cores).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR

EXR_THREADS_ENV = "STYLEPASS_EXR_THREADS"  # threads for EXR (de)compression; 0 or 1: none
_pool_lock = threading.Lock()
_pool_users = 0


class ExrReadError(RuntimeError):
    """The file is missing, not an EXR, or damaged."""


@dataclass
class ExrChannels:
    """All channels of an EXR file.

    Attributes:
        path: the file read.
        channels: full channel name (``"ViewLayer.Depth.Z"``) -> (H, W) array as stored
            (float16 or float32; uint32 channels as uint32).
        header: the first part's header (Blender puts its metadata there, Cryptomatte
            manifests included).
    """

    path: Path
    channels: dict[str, np.ndarray]
    header: dict[str, Any]

    def layer(self, name: str, suffixes: tuple[str, ...]) -> np.ndarray | None:
        """Stack ``name.suffix`` channels into a new (C, H, W) float32 array, or None if any is missing."""
        keys = [f"{name}.{suffix}" for suffix in suffixes]
        if not all(key in self.channels for key in keys):
            return None
        stacked = np.empty((len(keys), *self.channels[keys[0]].shape), dtype=np.float32)
        for index, key in enumerate(keys):
            stacked[index] = self.channels[key]  # one converting copy per channel (half -> float)
        return stacked


def exr_thread_count() -> int:
    """Threads to (de)compress EXRs with: ``$STYLEPASS_EXR_THREADS``, else one per usable core.

    Raises ValueError when the variable is not a whole number >= 0.
    """
    requested = os.environ.get(EXR_THREADS_ENV, "").strip()
    if requested:
        if not requested.isdigit():
            raise ValueError(f"{EXR_THREADS_ENV}={requested!r}: give a whole number of threads (0: none)")
        return int(requested)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def exr_threads() -> Iterator[None]:
    """Run OpenEXR's thread pool inside the block and stop its threads when the last user leaves.

    Safe to nest and to enter from several threads at once (the pool is shared and counted).
    """
    global _pool_users
    count = exr_thread_count()
    if count <= 1:
        yield
        return
    with _pool_lock:
        if _pool_users == 0:
            OpenEXR.set_global_thread_count(count)
        _pool_users += 1
    try:
        yield
    finally:
        with _pool_lock:
            _pool_users -= 1
            if _pool_users == 0:
                OpenEXR.set_global_thread_count(0)


def write_exr(path: Path, channels: Mapping[str, np.ndarray],
              compression: OpenEXR.Compression = OpenEXR.ZIP_COMPRESSION) -> None:
    """Write one scanline part with `channels` (name -> (H, W) float16/float32/uint32 array) to `path`.

    Not atomic: write to a temporary name and rename (see ``atomic_files``) when readers may look.
    """
    header = {"compression": compression, "type": OpenEXR.scanlineimage}
    contiguous = {name: np.ascontiguousarray(data) for name, data in channels.items()}
    with exr_threads():
        OpenEXR.File(header, contiguous).write(str(path))


def _decode(path: Path) -> tuple[list[str], dict[str, np.ndarray], dict[str, Any]]:
    """(channel names the headers declare, the channels decoded, the first part's header)."""
    # OpenEXR drops (with a printed warning) every part whose pixel data is damaged or cut
    # off, so a truncated file still opens: the caller compares with the declared channels.
    declared = [channel.name for part in OpenEXR.File(str(path), header_only=True).parts
                for channel in part.header.get("channels", [])]
    exr = OpenEXR.File(str(path), separate_channels=True)
    channels = {name: channel.pixels for part in exr.parts for name, channel in part.channels.items()}
    header = dict(exr.parts[0].header) if exr.parts else {}
    return declared, channels, header


def read_exr(path: Path) -> ExrChannels:
    """Read all channels of every part of ``path``.

    Raises:
        ExrReadError: naming the file when it is missing, unreadable or truncated.
        ValueError: ``$STYLEPASS_EXR_THREADS`` is not a number of threads.
    """
    path = Path(path)
    if not path.is_file():
        raise ExrReadError(f"EXR file not found: {path}")
    with exr_threads():
        try:
            declared, channels, header = _decode(path)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ExrReadError(f"{path} is not a readable EXR (damaged or incomplete?): {exc}") from exc
    lost = [name for name in declared if name not in channels]
    if lost:
        raise ExrReadError(f"{path} is damaged or incomplete (truncated?): no pixel data for "
                           f"{len(lost)} of {len(declared)} channels ({', '.join(lost[:4])}"
                           f"{', ...' if len(lost) > 4 else ''})")
    if not channels:
        raise ExrReadError(f"{path} holds no image channels (damaged or incomplete?)")
    return ExrChannels(path, channels, header)
