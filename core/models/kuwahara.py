"""A generalized Kuwahara filter (Papari, Petkov and Campisi 2007): flat, edge-respecting patches of
colour, the look of paint. A fixed stage at the end of the painterly generator, so its strokes come
from the filter, not from what a small network manages to learn (which averages them into a blur).

For each pixel, the disc of radius r around it is cut into ``sectors`` overlapping angular
sectors with smooth (Gaussian) weights. Each sector gives a weighted mean colour and variance;
the output mixes the means with weights ``1 / (1 + (255 * std) ** q)``, so the sector lying across
an edge (high variance) hardly counts and edges stay sharp while the inside of each region flattens.

Pure functions on tensors with a thin ``nn.Module`` (kornia's style); everything is convolutions
and element-wise maths, so the ONNX graph runs it too. No library we use ships this filter
(kornia has none), hence our own.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

SECTORS = 8
SHARPNESS = 8.0  # q: how strongly low-variance sectors win (Papari et al. use 8)
STD_SCALE = 255.0  # variances are weighed on the 8-bit scale the filter was designed for


def sector_kernels(radius: int, sectors: int = SECTORS) -> torch.Tensor:
    """(sectors, 1, 2r+1, 2r+1) float32 sector weights, each summing to 1.

    Radial weights: a Gaussian of sigma r/2 inside the disc of radius r + 0.5; angular weights: a
    Gaussian of sigma (pi / sectors) around each sector's direction. The centre pixel is in every sector.
    """
    if radius < 1 or sectors < 2:
        raise ValueError(f"a Kuwahara filter needs radius >= 1 and sectors >= 2, got {radius} and {sectors}")
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    y, x = torch.meshgrid(offsets, offsets, indexing="ij")
    distance = torch.sqrt(x**2 + y**2)
    radial = torch.exp(-(distance**2) / (2 * (radius / 2) ** 2)) * (distance <= radius + 0.5)
    angle = torch.atan2(y, x)
    kernels = []
    for index in range(sectors):
        direction = 2 * math.pi * index / sectors
        difference = torch.remainder(angle - direction + math.pi, 2 * math.pi) - math.pi
        angular = torch.exp(-(difference**2) / (2 * (math.pi / sectors) ** 2))
        angular[radius, radius] = 1.0  # the centre belongs to every sector
        weights = radial * angular
        kernels.append(weights / weights.sum())
    return torch.stack(kernels)[:, None].to(torch.float32)


def generalized_kuwahara(image: torch.Tensor, kernels: torch.Tensor, sharpness: float = SHARPNESS) -> torch.Tensor:
    """Filter `image` (B, C, H, W), values in [0, 1], with sector `kernels` (N, 1, k, k) of
    :func:`sector_kernels`; returns (B, C, H, W) in [0, 1]. Borders are replicated, so any H, W >= 1 works."""
    if image.dim() != 4 or kernels.dim() != 4 or kernels.shape[1] != 1 or kernels.shape[-1] % 2 != 1:
        raise ValueError(f"expected image (B, C, H, W) and kernels (N, 1, k, k) with odd k, got "
                         f"{tuple(image.shape)} and {tuple(kernels.shape)}")
    return _filter(image, grouped_weights(kernels, image.shape[1]), kernels.shape[0], sharpness)


def grouped_weights(kernels: torch.Tensor, channels: int) -> torch.Tensor:
    """The sector kernels (N, 1, k, k) for a grouped convolution over the colour channels and
    their squares: (2 * channels * N, 1, k, k), channel-major."""
    return kernels.repeat(2 * channels, 1, 1, 1)


def _filter(image: torch.Tensor, weights: torch.Tensor, sectors: int, sharpness: float) -> torch.Tensor:
    batch, channels, height, width = image.shape
    radius = weights.shape[-1] // 2
    moments = torch.cat([image, image * image], dim=1)  # (B, 2C, H, W)
    padded = F.pad(moments, (radius, radius, radius, radius), mode="replicate")
    sums = F.conv2d(padded, weights.to(image.dtype), groups=2 * channels)
    sums = sums.reshape(batch, 2, channels, sectors, height, width)
    means, squares = sums[:, 0], sums[:, 1]  # (B, C, N, H, W)
    variance = (squares - means * means).clamp(min=0.0).sum(dim=1)  # (B, N, H, W), summed over colour
    mix = 1.0 / (1.0 + (STD_SCALE * STD_SCALE * variance) ** (sharpness / 2))  # 1 / (1 + (255 std)^q)
    mix = mix / mix.sum(dim=1, keepdim=True)
    return (means * mix[:, None]).sum(dim=2).clamp(0.0, 1.0)


class KuwaharaFilter(nn.Module):
    """:func:`generalized_kuwahara` of RGB images with fixed sector kernels of `radius` (a buffer,
    not trained and not saved): (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1]."""

    weights: torch.Tensor

    def __init__(self, radius: int, sectors: int = SECTORS, sharpness: float = SHARPNESS) -> None:
        super().__init__()
        self.radius, self.sectors, self.sharpness = radius, sectors, sharpness
        self.register_buffer("weights", grouped_weights(sector_kernels(radius, sectors), 3), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"KuwaharaFilter expects (B, 3, H, W), got {tuple(image.shape)}")
        # float32 always: in bf16 (autocast on CUDA) the variances lose their precision
        device = image.device.type
        autocast = device in ("cpu", "cuda") and torch.is_autocast_enabled(device)
        with torch.autocast(device_type=device, enabled=False) if autocast else contextlib.nullcontext():
            return _filter(image.float(), self.weights, self.sectors, self.sharpness).to(image.dtype)
