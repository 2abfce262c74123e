"""Edge guides computed from the G-buffers: where ink lines and shading breaks belong.

Pure functions on tensors (a thin part of the generator, so the ONNX graph computes them too).
Lines in toon, sketch and painterly styles follow silhouettes (depth jumps) and creases (normal
changes); a network finds a thin line far more easily when it is handed these edges than when it
has to find them in a tone-mapped beauty pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEPTH_EDGE_GAIN = 8.0   # a depth jump of 1/8 of the local depth gives tanh(1) = 0.76
NORMAL_EDGE_GAIN = 2.0  # a 30 degree crease (|dn| about 0.5 per axis) gives tanh(1) = 0.76


def _abs_differences(x: torch.Tensor) -> torch.Tensor:
    """|x - right neighbour| + |x - lower neighbour| per channel, borders replicated: (B, C, H, W)."""
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    dx = padded[:, :, :-1, 1:] - x
    dy = padded[:, :, 1:, :-1] - x
    return dx.abs() + dy.abs()


def depth_edges(depth: torch.Tensor) -> torch.Tensor:
    """Silhouettes: relative depth jumps, (B, 1, H, W) depth in [0, 1] (0 = no surface) -> (B, 1, H, W)
    in [0, 1). A jump is measured against the nearer depth, so far and near edges count alike."""
    return torch.tanh(DEPTH_EDGE_GAIN * _abs_differences(depth) / (depth + 1e-3))


def normal_edges(normal: torch.Tensor) -> torch.Tensor:
    """Creases and outlines: normal changes, (B, 3, H, W) unit normals (0 = no surface) -> (B, 1, H, W)
    in [0, 1). The edge between a surface and the background (normal 0) counts as a crease."""
    return torch.tanh(NORMAL_EDGE_GAIN * _abs_differences(normal).sum(dim=1, keepdim=True) / 2.0)


def edge_guides(depth: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """Both guides, (B, 2, H, W) in [0, 1): channel 0 depth edges, channel 1 normal edges."""
    if depth.shape[1] != 1 or normal.shape[1] != 3 or depth.shape[-2:] != normal.shape[-2:]:
        raise ValueError(f"edge_guides expects depth (B, 1, H, W) and normal (B, 3, H, W) of one size, got "
                         f"{tuple(depth.shape)} and {tuple(normal.shape)}")
    return torch.cat([depth_edges(depth), normal_edges(normal)], dim=1)
