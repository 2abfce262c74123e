"""Image-quality metrics. PSNR and SSIM need no weights (images in [0, 1], (B, C, H, W));
KID works on features from a network the caller loads from local weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, shape (B,); identical images give +inf."""
    mse = (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def laplacian_energy(images: torch.Tensor) -> torch.Tensor:
    """Fine detail per image: the mean absolute 3x3 Laplacian over pixels and channels, shape (B,).

    images: (B, C, H, W), any value range (the result scales with it); borders are replicated. A blur
    lowers it, crisp lines and texture raise it; ``detail ratio`` = output's / target's.
    """
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=images.device)
    channels = images.shape[1]
    padded = F.pad(images.float(), (1, 1, 1, 1), mode="replicate")
    response = F.conv2d(padded, kernel.expand(channels, 1, 3, 3), groups=channels)
    return response.abs().flatten(1).mean(dim=1)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian, shape (size,)."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    window = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return window / window.sum()


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004; 11x11 Gaussian, sigma 1.5) per image, shape (B,).

    Computed per channel and averaged; images smaller than 11 px use a window of their size.
    """
    x, y = prediction.float(), target.float()
    channels = x.shape[1]
    size = min(11, x.shape[-2], x.shape[-1])
    window_1d = gaussian_window(size, 1.5 * size / 11).to(x.device)
    kernel = (window_1d[:, None] * window_1d[None, :]).expand(channels, 1, size, size)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, kernel, groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(dim=1)


def kernel_inception_distance(features_x: torch.Tensor, features_y: torch.Tensor) -> torch.Tensor:
    """Unbiased squared MMD with the cubic polynomial kernel (Binkowski et al. 2018), a scalar.

    features_x (m, D), features_y (n, D), m, n >= 2; k(a, b) = (a . b / D + 1)^3. Near 0 when both
    sets come from the same distribution (can be slightly negative), larger the further apart.
    """
    x, y = features_x.double(), features_y.double()
    m, n, dim = x.shape[0], y.shape[0], x.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {m} and {n}")
    k_xx = (x @ x.T / dim + 1.0) ** 3
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    mmd = (
        (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
        + (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
        - 2.0 * k_xy.mean()
    )
    return mmd.float()


def image_tiles(images: torch.Tensor, tile: int = 64) -> torch.Tensor:
    """Non-overlapping tile x tile crops of (B, C, H, W) images: (B * rows * cols, C, t, t).

    The tile shrinks to min(tile, H, W) for small images; remainders at the right/bottom are dropped.
    """
    tile = min(tile, images.shape[-2], images.shape[-1])
    tiles = images.unfold(2, tile, tile).unfold(3, tile, tile)  # (B, C, rows, cols, t, t)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1], tile, tile)
