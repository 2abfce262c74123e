"""Cartoon losses after White-box cartoonization (Wang and Yu 2020), in a paired form.

The paper feeds the surface and texture representations to extra discriminators; with paired
targets we compare the representations of prediction and target directly (L1), which needs no
extra networks. Images (B, 3, H, W) in [0, 1]; losses are scalars. Total variation is in
:mod:`.losses`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights for the grey-scale texture representation.
_GREY = (0.299, 0.587, 0.114)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, borders averaged over the pixels inside; (B, C, H, W)."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def guided_filter(x: torch.Tensor, guide: torch.Tensor, radius: int = 5, eps: float = 2e-1) -> torch.Tensor:
    """Edge-preserving guided filter (He et al. 2010) of `x` by `guide`, both (B, C, H, W)."""
    radius = max(0, min(radius, (min(x.shape[-2:]) - 1) // 2))
    mean_g, mean_x = box_filter(guide, radius), box_filter(x, radius)
    cov = box_filter(guide * x, radius) - mean_g * mean_x
    var = box_filter(guide * guide, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_x - a * mean_g
    return box_filter(a, radius) * guide + box_filter(b, radius)


def surface(image: torch.Tensor) -> torch.Tensor:
    """Surface representation: the image smoothed by a self-guided filter, (B, 3, H, W)."""
    return guided_filter(image, image)


def grey(image: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W) of an RGB image (B, 3, H, W)."""
    weights = image.new_tensor(_GREY)[None, :, None, None]
    return (image * weights).sum(dim=1, keepdim=True)


def texture(image: torch.Tensor) -> torch.Tensor:
    """Texture representation: grey-scale detail (grey minus its surface), (B, 1, H, W)."""
    g = grey(image)
    return g - guided_filter(g, g)


def surface_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the surface representations of prediction and target."""
    return F.l1_loss(surface(prediction.float()), surface(target.float()))


def texture_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the texture representations of prediction and target."""
    return F.l1_loss(texture(prediction.float()), texture(target.float()))
