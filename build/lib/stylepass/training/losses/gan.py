"""Generator and discriminator losses (pure functions on tensors).

Images are in the model range [0, 1], shape (B, 3, H, W); discriminator scores are unbounded,
shape (B, 1, h, w).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error, a scalar."""
    return F.l1_loss(prediction.float(), target.float())


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, kind: str) -> torch.Tensor:
    """Discriminator loss on real and fake scores, a scalar.

    kind "lsgan": ((real - 1)^2 + fake^2) / 2 (Mao et al.); "hinge": relu(1 - real) + relu(1 + fake).
    """
    real, fake = real_scores.float(), fake_scores.float()
    if kind == "lsgan":
        return 0.5 * ((real - 1.0).pow(2).mean() + fake.pow(2).mean())
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; allowed: lsgan, hinge")


def generator_adversarial_loss(fake_scores: torch.Tensor, kind: str) -> torch.Tensor:
    """Generator's adversarial loss on the discriminator's scores of its outputs, a scalar."""
    fake = fake_scores.float()
    if kind == "lsgan":
        return (fake - 1.0).pow(2).mean()
    if kind == "hinge":
        return -fake.mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; allowed: lsgan, hinge")


def gradient_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the horizontal and vertical neighbour differences, a scalar.

    Plain L1 is met by averaging: a blur of thin lines and hard band edges costs little. This term
    compares the edges themselves (where they are and how sharp), so the blur costs as much as a
    missing line. Both (B, C, H, W) in the same range.
    """
    x, y = prediction.float(), target.float()
    dx = (x[..., :, 1:] - x[..., :, :-1]) - (y[..., :, 1:] - y[..., :, :-1])
    dy = (x[..., 1:, :] - x[..., :-1, :]) - (y[..., 1:, :] - y[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between horizontal and vertical neighbours, a scalar."""
    x = image.float()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() if x.shape[-2] > 1 else x.new_zeros(())
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean() if x.shape[-1] > 1 else x.new_zeros(())
    return dx + dy
