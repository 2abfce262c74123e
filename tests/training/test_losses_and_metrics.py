"""Losses and metrics against known values; VGG/LPIPS from local random-weight files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from stylepass.training.evaluate.metrics import image_tiles, kernel_inception_distance, laplacian_energy, psnr, ssim
from stylepass.training.losses import cartoon
from stylepass.training.losses.gan import (
    discriminator_loss,
    generator_adversarial_loss,
    gradient_l1,
    l1_loss,
    total_variation,
)
from stylepass.training.losses.perceptual import (
    LPIPS,
    RELU_TAPS,
    MissingWeightsError,
    PerceptualLoss,
    VGGPooledFeatures,
    build_vgg16_features,
)


def test_psnr_and_ssim_known_values() -> None:
    target = torch.full((2, 3, 16, 16), 0.5)
    prediction = target + torch.tensor([0.1, 0.01])[:, None, None, None]
    torch.testing.assert_close(psnr(prediction, target), torch.tensor([20.0, 40.0]), rtol=1e-4, atol=1e-3)
    assert math.isinf(psnr(target, target)[0].item())
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    noisy = [(image + s * torch.randn_like(image)).clamp(0, 1) for s in (0.02, 0.1, 0.3)]
    scores = [ssim(n, image).item() for n in noisy]
    torch.testing.assert_close(ssim(image, image), torch.ones(1))
    assert scores[0] > scores[1] > scores[2] > 0
    assert ssim(torch.rand(1, 3, 5, 4), torch.rand(1, 3, 5, 4)).shape == (1,)  # smaller than the window


def test_laplacian_energy_falls_with_blur_and_is_zero_on_flat_images() -> None:
    torch.manual_seed(0)
    sharp = (torch.rand(2, 3, 32, 32) > 0.5).float()  # hard edges everywhere
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1, count_include_pad=False)
    energy = laplacian_energy(sharp)
    assert energy.shape == (2,) and (energy > 0.5).all()
    assert (laplacian_energy(blurred) < 0.5 * energy).all()
    assert torch.equal(laplacian_energy(torch.full((1, 3, 8, 8), 0.7)), torch.zeros(1))
    # one vertical step edge of height 1: |Laplacian| 1 on each side of the edge, two columns of 8
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1.0
    assert float(laplacian_energy(step)[0]) == pytest.approx(2 * 8 / 64)


def test_gradient_loss_punishes_a_blurred_line_more_than_l1_does() -> None:
    target = torch.ones(1, 1, 16, 16)
    target[..., 7] = 0.0  # a one-pixel ink line
    blurred = torch.nn.functional.avg_pool2d(target, (1, 5), stride=1, padding=(0, 2), count_include_pad=False)
    shifted = target + 0.2  # every edge kept, the tone off
    assert float(gradient_l1(target, target)) == 0.0 and float(gradient_l1(shifted, target)) == pytest.approx(0.0)
    assert float(gradient_l1(blurred, target)) > float(l1_loss(blurred, target))
    assert float(l1_loss(shifted, target)) > float(l1_loss(blurred, target))  # L1 alone prefers the blur


def test_adversarial_losses() -> None:
    real, fake = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    assert discriminator_loss(real, fake, "lsgan").item() == 0.0
    assert generator_adversarial_loss(fake, "lsgan").item() == 1.0
    assert discriminator_loss(real, -fake - 1, "hinge").item() == 0.0
    assert generator_adversarial_loss(fake + 2, "hinge").item() == -2.0
    with pytest.raises(ValueError, match="allowed: lsgan, hinge"):
        discriminator_loss(real, fake, "wgan")


def test_total_variation_and_cartoon_representations() -> None:
    flat = torch.full((1, 3, 12, 12), 0.4)
    assert total_variation(flat).item() == 0.0
    stripes = torch.zeros(1, 3, 4, 4)
    stripes[..., ::2] = 1.0
    assert total_variation(stripes).item() == 1.0
    torch.testing.assert_close(cartoon.guided_filter(flat, flat), flat)
    assert cartoon.texture(flat).abs().max() < 1e-6
    torch.manual_seed(0)
    noisy = (flat + 0.1 * torch.randn_like(flat)).clamp(0, 1)
    assert cartoon.surface_loss(noisy, noisy).item() == 0.0
    assert cartoon.texture_loss(noisy, flat).item() > 0.01
    # The surface smooths fine noise away from a strong edge and keeps the edge's two levels.
    step_image = torch.full((1, 3, 48, 48), 0.2)
    step_image[..., 24:] = 0.8
    noise = 0.05 * torch.randn_like(step_image)
    smoothed = cartoon.surface(step_image + noise)
    assert smoothed[..., :10].std() < noise[..., :10].std() / 3
    assert (smoothed[..., :10].mean() - 0.2).abs() < 0.02 and (smoothed[..., 38:].mean() - 0.8).abs() < 0.02


def test_superpixel_structure_flattens_regions_and_keeps_their_colours() -> None:
    torch.manual_seed(0)
    image = torch.full((2, 3, 64, 80), 0.2)
    image[..., 40:] = 0.8
    image[..., 32:, :] += 0.1
    noisy = image + 0.05 * torch.randn_like(image)
    means = cartoon.superpixel_means(noisy)  # 16 px cells: a 4 x 5 grid of superpixels
    assert means.shape == image.shape
    assert (means - image).abs().mean() < (noisy - image).abs().mean() / 4
    assert len(torch.unique(means[0].flatten(1), dim=1).T) <= 20
    assert cartoon.structure_loss(image).item() < 1e-4 < cartoon.structure_loss(noisy).item()
    for size in ((1, 1), (5, 37)):
        assert cartoon.superpixel_means(torch.rand(1, 3, *size)).shape == (1, 3, *size)


def write_vgg(path: Path, last_index: int) -> None:
    torch.manual_seed(0)
    save_file({f"features.{k}": v for k, v in build_vgg16_features(last_index).state_dict().items()}, str(path))


def test_kid_separates_distributions_and_tiles_images() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(200, 16), torch.randn(200, 16)
    shifted = torch.randn(200, 16) + 1.0
    same, different = kernel_inception_distance(a, b), kernel_inception_distance(a, shifted)
    assert abs(same.item()) < 0.1 < different.item()
    with pytest.raises(ValueError, match="at least 2 samples"):
        kernel_inception_distance(a[:1], b)
    images = torch.arange(2 * 3 * 130 * 70, dtype=torch.float32).reshape(2, 3, 130, 70)
    tiles = image_tiles(images, 64)
    assert tiles.shape == (2 * 2 * 1, 3, 64, 64)
    assert torch.equal(tiles[1], images[0, :, 64:128, :64])
    assert image_tiles(images[..., :20, :30]).shape == (2, 3, 20, 20)


def test_perceptual_loss_from_local_weights(tmp_path: Path) -> None:
    weights = tmp_path / "vgg.safetensors"
    write_vgg(weights, RELU_TAPS[1])
    loss = PerceptualLoss(weights, taps=RELU_TAPS[:2])
    a, b = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24, requires_grad=True)
    assert loss(a, a).item() == 0.0
    value = loss(b, a)
    value.backward()
    assert value.item() > 0 and b.grad is not None and b.grad.abs().sum() > 0
    with pytest.raises(MissingWeightsError, match="lacks VGG16 layers: features.10.weight"):
        PerceptualLoss(weights, taps=RELU_TAPS[:3])


def test_missing_or_pickled_weights_are_explained(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="not found.*never downloads weights"):
        PerceptualLoss(tmp_path / "absent.safetensors")
    pickled = tmp_path / "vgg16.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, pickled)
    with pytest.raises(MissingWeightsError, match="refusing to load"):
        PerceptualLoss(pickled)


def test_lpips_and_kid_features_from_local_weights(lpips_weights: Path, tmp_path: Path) -> None:
    lpips = LPIPS(lpips_weights)
    torch.manual_seed(1)
    a = torch.rand(2, 3, 32, 32)
    near, far = (a + 0.02 * torch.randn_like(a)).clamp(0, 1), torch.rand(2, 3, 32, 32)
    assert lpips(a, a).abs().max() < 1e-6
    assert (lpips(a, near) < lpips(a, far)).all()
    assert VGGPooledFeatures(lpips_weights)(a).shape == (2, 512)
    weights = tmp_path / "vgg.safetensors"
    write_vgg(weights, RELU_TAPS[-1])
    with pytest.raises(MissingWeightsError, match="lacks the LPIPS linear layers: lin0.weight"):
        LPIPS(weights)
