"""Read every channel of an OpenEXR file, single-part or multi-part (wraps ``OpenEXR``).

Blender 4.5 writes multilayer EXRs as one interleaved part; 5.x writes one part per pass.
Both come out here as one flat ``{full channel name: (H, W) array}`` mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR


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
        """Stack ``name.suffix`` channels into a (C, H, W) float32 array, or None if any is missing."""
        keys = [f"{name}.{suffix}" for suffix in suffixes]
        if not all(key in self.channels for key in keys):
            return None
        return np.stack([self.channels[key].astype(np.float32, copy=False) for key in keys])


def read_exr(path: Path) -> ExrChannels:
    """Read all channels of every part of ``path``.

    Raises:
        ExrReadError: naming the file when it is missing, unreadable or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise ExrReadError(f"EXR file not found: {path}")
    try:
        # OpenEXR drops (with a printed warning) every part whose pixel data is damaged
        # or cut off, so a truncated file still opens: compare with the declared channels.
        declared = [channel.name for part in OpenEXR.File(str(path), header_only=True).parts
                    for channel in part.header.get("channels", [])]
        exr = OpenEXR.File(str(path), separate_channels=True)
        channels: dict[str, np.ndarray] = {}
        for part in exr.parts:
            for name, channel in part.channels.items():
                channels[name] = channel.pixels
        header = dict(exr.parts[0].header) if exr.parts else {}
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
