"""Padding to a multiple of 2^depth and cropping back, so that every generator takes any size."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims of `x` on the bottom/right up to multiples of `multiple`.

    x: (..., H, W). Padding replicates the border (works for 1x1 inputs, unlike reflection).
    Returns the padded tensor and the original (H, W) to pass to :func:`crop_to`.
    """
    height, width = x.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (height, width)
    if x.dtype in (torch.long, torch.int32, torch.int64, torch.bool, torch.uint8):
        # Integer maps (material classes): replicate by index, F.pad has no integer replicate.
        rows = torch.arange(height + pad_h, device=x.device).clamp(max=height - 1)
        cols = torch.arange(width + pad_w, device=x.device).clamp(max=width - 1)
        return x[..., rows, :][..., cols], (height, width)
    flat = x.reshape(-1, *x.shape[-3:]) if x.dim() >= 3 else x[None, None]
    padded = F.pad(flat, (0, pad_w, 0, pad_h), mode="replicate")
    return padded.reshape(*x.shape[:-2], height + pad_h, width + pad_w), (height, width)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop the last two dims of `x` to `size` = (H, W), keeping the top-left corner."""
    return x[..., : size[0], : size[1]]
