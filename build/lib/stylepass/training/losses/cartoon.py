"""Cartoon losses after White-box cartoonization (Wang and Yu 2020), in a paired form.

The paper feeds the surface and texture representations to extra discriminators; with paired
targets we compare the representations of prediction and target directly (L1), which needs no
extra networks. The structure representation uses a small SLIC-style superpixel clustering in
torch (:func:`superpixel_means`) instead of the paper's scikit-image segmentation. Images
(B, 3, H, W) in [0, 1]; losses are scalars. Total variation is in :mod:`.gan`.
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


def superpixel_means(
    image: torch.Tensor, cell: int = 16, iterations: int = 3, compactness: float = 0.1
) -> torch.Tensor:
    """Structure representation: every pixel replaced by the mean colour of its superpixel.

    SLIC-style clustering: centres start on a `cell`-spaced grid; each pixel joins the nearest of
    the 9 centres around its grid cell by colour distance + (compactness * distance / cell)^2;
    centres move to the means of their pixels. image (B, 3, H, W) -> (B, 3, H, W), no gradient.
    """
    with torch.no_grad():
        batch, channels, height, width = image.shape
        rows, cols = max(1, height // cell), max(1, width // cell)
        ys = torch.arange(height, device=image.device, dtype=image.dtype)
        xs = torch.arange(width, device=image.device, dtype=image.dtype)
        position = torch.stack(torch.meshgrid(ys, xs, indexing="ij")) * (compactness / cell)  # (2, H, W)
        features = torch.cat([image, position.expand(batch, 2, height, width)], dim=1).flatten(2)  # (B, 5, HW)
        centres = F.adaptive_avg_pool2d(features.view(batch, channels + 2, height, width), (rows, cols)).flatten(2)
        cell_y = (torch.arange(height, device=image.device) * rows // height).clamp(max=rows - 1)
        cell_x = (torch.arange(width, device=image.device) * cols // width).clamp(max=cols - 1)
        candidates = torch.stack(
            [
                ((cell_y + dy).clamp(0, rows - 1)[:, None] * cols + (cell_x + dx).clamp(0, cols - 1)[None, :]).flatten()
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            ]
        )  # (9, HW) centre indices around each pixel
        for _ in range(max(1, iterations)):
            near = centres[:, :, candidates]  # (B, 5, 9, HW)
            distance = (near - features[:, :, None]).pow(2).sum(dim=1)  # (B, 9, HW)
            label = candidates.expand(batch, -1, -1).gather(1, distance.argmin(dim=1, keepdim=True))  # (B, 1, HW)
            sums = torch.zeros_like(centres).scatter_add_(2, label.expand(-1, channels + 2, -1), features)
            counts = torch.zeros(batch, 1, rows * cols, device=image.device, dtype=image.dtype)
            counts.scatter_add_(2, label, torch.ones_like(label, dtype=image.dtype))
            centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        return centres[:, :channels].gather(2, label.expand(-1, channels, -1)).view(batch, channels, height, width)


def structure_loss(prediction: torch.Tensor) -> torch.Tensor:
    """L1 between the prediction and its own superpixel means (pulls towards flat regions)."""
    prediction = prediction.float()
    return F.l1_loss(prediction, superpixel_means(prediction))
