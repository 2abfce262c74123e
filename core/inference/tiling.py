"""Tiled inference with overlap blending, for frames that do not fit in memory at once.

Tiles overlap by `overlap` pixels and are blended with linear ramps, so no seam shows where two
tiles meet. With the per-pixel channel norm the generators use, a tile's interior equals the
full-frame result; only the outermost pixels of each tile (padding effects) differ, and those are
the ones the ramps fade out. With `context`, the model also sees that many pixels around each
tile (cut off again after it runs), which pushes the padding effects out of the kept tile.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_spans(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """(start, end) spans of tiles covering [0, length), consecutive ones overlapping >= `overlap`.

    Starts are multiples of `align` (the generator's 2^depth: a shift by a multiple of it leaves
    the strided layers' sampling grid unchanged); the last tile is stretched to reach `length`.
    """
    if tile >= length:
        return [(0, length)]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    stride = max(align, (tile - overlap) // align * align)
    last = (length - tile) // align * align
    starts = list(range(0, last, stride)) + [last]
    ends = [start + tile for start in starts[:-1]] + [length]
    return list(zip(starts, ends, strict=True))


def blend_ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    """1-D weights (length,): ramps of `overlap` samples down towards interior tile edges, else 1.

    Edges at the frame border (at_start / at_end) keep weight 1. Weights stay > 0 everywhere.
    """
    weights = torch.ones(length, device=device)
    ramp_len = min(overlap, length)
    if ramp_len > 0:
        ramp = (torch.arange(ramp_len, device=device, dtype=torch.float32) + 1.0) / (ramp_len + 1.0)
        if not at_start:
            weights[:ramp_len] = torch.minimum(weights[:ramp_len], ramp)
        if not at_end:
            weights[-ramp_len:] = torch.minimum(weights[-ramp_len:], ramp.flip(0))
    return weights


def tiled_apply(
    fn: Callable[..., torch.Tensor],
    inputs: tuple[torch.Tensor, ...],
    tile: int,
    overlap: int = 32,
    align: int = 1,
    context: int = 0,
) -> torch.Tensor:
    """Apply `fn` tile by tile and blend the tiles.

    inputs: tensors sharing their last two dims (H, W), e.g. image (B, 3, H, W), gbuffers
    (B, C, H, W), material_id (B, H, W); `fn(*crops)` must return (B, C_out, h, w) for crops of
    size (h, w). align: tile offsets are multiples of it (see :func:`tile_spans`).
    context: extra pixels of input on each side of a tile (within the frame, start kept on the
    `align` grid) that `fn` sees but whose output is dropped.
    Returns (B, C_out, H, W) in float32.
    """
    height, width = inputs[0].shape[-2:]
    out: torch.Tensor | None = None
    weight_sum = torch.zeros(height, width, device=inputs[0].device)
    for top, bottom in tile_spans(height, tile, overlap, align):
        for left, right in tile_spans(width, tile, overlap, align):
            outer_top = max(0, top - context) // align * align
            outer_left = max(0, left - context) // align * align
            outer_bottom, outer_right = min(height, bottom + context), min(width, right + context)
            crops = tuple(t[..., outer_top:outer_bottom, outer_left:outer_right] for t in inputs)
            result = fn(*crops).float()[..., top - outer_top:bottom - outer_top, left - outer_left:right - outer_left]
            if out is None:
                out = result.new_zeros(*result.shape[:-2], height, width)
            wy = blend_ramp(bottom - top, overlap, top == 0, bottom == height, result.device)
            wx = blend_ramp(right - left, overlap, left == 0, right == width, result.device)
            weight = wy[:, None] * wx[None, :]
            out[..., top:bottom, left:right] += result * weight
            weight_sum[top:bottom, left:right] += weight
    assert out is not None
    return out / weight_sum
