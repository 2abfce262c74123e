"""Tiled inference with overlap blending, for frames that do not fit in memory at once.

Tiles overlap by `overlap` pixels and are blended with linear ramps, so no seam shows where two
tiles meet. With the per-pixel channel norm the generators use, a tile's interior equals the
full-frame result; only the outermost pixels of each tile (padding effects) differ, and those are
the ones the ramps fade out. With `context`, the model also sees that many pixels around each
tile (cut off again after it runs), which pushes the padding effects out of the kept tile.

The tile geometry and blend weights (:func:`tile_windows`) are the one definition both runtimes
use; ONNX Runtime's tiles are blended in numpy (:func:`blend_tiles`), torch's on their device
(:func:`tiled_apply`), the same sums.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
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


def blend_ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D float32 weights (length,): ramps of `overlap` samples down towards interior tile edges, else 1.

    Edges at the frame border (at_start / at_end) keep weight 1. Weights stay > 0 everywhere.
    """
    weights = np.ones(length, dtype=np.float32)
    ramp_len = min(overlap, length)
    if ramp_len > 0:
        ramp = (np.arange(ramp_len, dtype=np.float32) + 1.0) / (ramp_len + 1.0)
        if not at_start:
            weights[:ramp_len] = np.minimum(weights[:ramp_len], ramp)
        if not at_end:
            weights[-ramp_len:] = np.minimum(weights[-ramp_len:], ramp[::-1])
    return weights


@dataclass(frozen=True)
class TileWindow:
    """One tile: the input window the model sees and the part of its output that is kept.

    outer: (rows, cols) of the frame given to the model (the tile plus its context).
    keep: (rows, cols) of the model's output (relative to `outer`) that is blended in.
    place: (rows, cols) of the frame where the kept output goes.
    weight: (h, w) float32 blend weights of the kept output, > 0.
    """

    outer: tuple[slice, slice]
    keep: tuple[slice, slice]
    place: tuple[slice, slice]
    weight: np.ndarray


def tile_windows(height: int, width: int, tile: int | None, overlap: int, align: int = 1,
                 context: int = 0) -> list[TileWindow]:
    """The tiles of a (height, width) frame, row by row; one window (the frame) when `tile` is None.

    align: tile offsets are multiples of it (see :func:`tile_spans`). context: extra pixels of
    input on each side of a tile (within the frame, start kept on the `align` grid) that the
    model sees but whose output is dropped.
    """
    if tile is None:
        whole = (slice(0, height), slice(0, width))
        return [TileWindow(whole, whole, whole, np.ones((height, width), dtype=np.float32))]
    windows = []
    for top, bottom in tile_spans(height, tile, overlap, align):
        for left, right in tile_spans(width, tile, overlap, align):
            outer_top = max(0, top - context) // align * align
            outer_left = max(0, left - context) // align * align
            outer_bottom, outer_right = min(height, bottom + context), min(width, right + context)
            wy = blend_ramp(bottom - top, overlap, top == 0, bottom == height)
            wx = blend_ramp(right - left, overlap, left == 0, right == width)
            windows.append(TileWindow(
                outer=(slice(outer_top, outer_bottom), slice(outer_left, outer_right)),
                keep=(slice(top - outer_top, bottom - outer_top), slice(left - outer_left, right - outer_left)),
                place=(slice(top, bottom), slice(left, right)),
                weight=wy[:, None] * wx[None, :],
            ))
    return windows


def blend_tiles(run: Callable[[TileWindow], np.ndarray], height: int, width: int,
                windows: list[TileWindow]) -> np.ndarray:
    """Run every window and blend: `run(window)` returns (..., h_outer, w_outer) float32 for the
    window's `outer` part of the frame. Returns (..., height, width) float32."""
    out: np.ndarray | None = None
    weight_sum = np.zeros((height, width), dtype=np.float32)
    for window in windows:
        result = np.asarray(run(window), dtype=np.float32)[(..., *window.keep)]
        if out is None:
            out = np.zeros((*result.shape[:-2], height, width), dtype=np.float32)
        out[(..., *window.place)] += result * window.weight
        weight_sum[window.place] += window.weight
    assert out is not None
    return out / weight_sum


def tiled_apply(
    fn: Callable[..., torch.Tensor],
    inputs: tuple[torch.Tensor, ...],
    tile: int,
    overlap: int = 32,
    align: int = 1,
    context: int = 0,
) -> torch.Tensor:
    """Apply a torch model `fn` tile by tile (see :func:`tile_windows`) and blend the tiles.

    inputs: tensors sharing their last two dims (H, W), e.g. image (B, 3, H, W), gbuffers
    (B, C, H, W), material_id (B, H, W); `fn(*crops)` must return (B, C_out, h, w) for crops of
    size (h, w). Returns (B, C_out, H, W) in float32 on the inputs' device.
    """
    import torch

    height, width = inputs[0].shape[-2:]
    device = inputs[0].device
    out: torch.Tensor | None = None
    weight_sum = torch.zeros(height, width, device=device)
    for window in tile_windows(height, width, tile, overlap, align, context):
        crops = tuple(t[(..., *window.outer)] for t in inputs)
        result = fn(*crops).float()[(..., *window.keep)]
        if out is None:
            out = result.new_zeros(*result.shape[:-2], height, width)
        weight = torch.from_numpy(window.weight).to(device)
        out[(..., *window.place)] += result * weight
        weight_sum[window.place] += weight
    assert out is not None
    return out / weight_sum
