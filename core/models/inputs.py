"""From G-buffer passes to model tensors and back: tone map, G-buffer stacking, material classes.

Model range. Every generator reads and writes images in [0, 1) through the invertible tone map
``y = x / (1 + x)`` of scene-linear HDR values ``x >= 0``; :func:`inverse_tonemap` gives
``x = y / (1 - y)`` back (both defined in :mod:`stylepass.core.io.colour`). An 8-bit sRGB target
is decoded to linear first, so a display white (1.0 linear) sits at 0.5 in the model range.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..io.colour import tonemap
from ..io.gbuffer import missing_passes

# Channels each G-buffer pass contributes to the `gbuffers` tensor, in this order.
PASS_CHANNELS: dict[str, int] = {"albedo": 3, "glossy_albedo": 3, "normal": 3, "depth": 1, "motion": 4}


def gbuffer_channels(passes: Sequence[str]) -> int:
    """Number of channels of :func:`stack_gbuffers` for `passes`: their channels + 1 valid mask."""
    unknown = [name for name in passes if name not in PASS_CHANNELS]
    if unknown:
        raise ValueError(
            f"unknown G-buffer pass(es) {', '.join(unknown)}; allowed: {', '.join(PASS_CHANNELS)}"
        )
    return sum(PASS_CHANNELS[name] for name in passes) + 1


def pass_slices(passes: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Where each pass lies in :func:`stack_gbuffers`' channels: ``{name: (start, stop)}``."""
    gbuffer_channels(passes)
    slices, start = {}, 0
    for name in passes:
        slices[name] = (start, start + PASS_CHANNELS[name])
        start += PASS_CHANNELS[name]
    return slices


def stack_gbuffers(frame: Any, passes: Sequence[str]) -> torch.Tensor:
    """Stack the requested passes of a G-buffer frame into a float32 tensor (C, H, W).

    frame: an object with the attributes of ``stylepass.core.io.gbuffer.GBufferFrame``.
    Channel order follows `passes`, then one valid-mask channel (1 valid, 0 not). Value ranges:
    albedo and glossy_albedo [0, 1]; normal [-1, 1] (camera space); depth divided by the frame's largest valid
    depth, so [0, 1], 0 where invalid; motion divided by max(H, W) (pixels to frame widths).
    """
    gbuffer_channels(passes)
    missing = missing_passes(frame, passes)
    if missing:
        raise ValueError(f"G-buffer frame lacks the pass(es) the model needs: {', '.join(missing)}")
    valid = torch.from_numpy(np.ascontiguousarray(frame.valid, dtype=np.bool_))
    height, width = valid.shape
    planes: list[torch.Tensor] = []
    for name in passes:
        data = torch.from_numpy(np.ascontiguousarray(getattr(frame, name), dtype=np.float32))
        if name == "depth":
            data = data[None] if data.dim() == 2 else data
            data = torch.where(valid, data, torch.zeros_like(data))
            far = data.max()
            data = data / far if far > 0 else data
        elif name == "motion":
            data = data / float(max(height, width))
        planes.append(data.reshape(PASS_CHANNELS[name], height, width))
    planes.append(valid.to(torch.float32)[None])
    return torch.cat(planes, dim=0)


def material_classes(material_id: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Map arbitrary material ids (int, 0 = none/background) to classes in [0, num_classes).

    Id 0 stays class 0; ids > 0 map to 1 + (id - 1) mod (num_classes - 1). Negative ids count as 0.
    material_id: (..., H, W) integer. Returns a long tensor of the same shape.
    """
    if num_classes < 2:
        return torch.zeros_like(material_id, dtype=torch.long)
    ids = material_id.long().clamp(min=0)
    return torch.where(ids > 0, 1 + (ids - 1) % (num_classes - 1), torch.zeros_like(ids))


def frame_to_tensors(frame: Any, passes: Sequence[str]) -> dict[str, torch.Tensor]:
    """A G-buffer frame to the generator inputs (no batch dim).

    Returns ``image`` (3, H, W) tone-mapped beauty in [0, 1), ``gbuffers`` (C, H, W) from
    :func:`stack_gbuffers` and ``material_id`` (H, W) long (raw ids; the model maps them to classes).
    """
    gbuffers = stack_gbuffers(frame, passes)
    beauty = torch.from_numpy(np.ascontiguousarray(frame.beauty, dtype=np.float32))
    beauty = torch.nan_to_num(beauty, nan=0.0, posinf=0.0, neginf=0.0)
    material = torch.from_numpy(np.ascontiguousarray(frame.material_id, dtype=np.int64))
    return {"image": tonemap(beauty), "gbuffers": gbuffers, "material_id": material}
