"""The generalized Kuwahara filter that ends the painterly generator: flat regions stay flat,
edges stay sharp where a blur of the same size smears them, and a U-Net ending in it trains,
exports to ONNX and tiles like any other."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylepass.core.models.config import ConfigError, UNetConfig, build_generator, model_config_from_dict
from stylepass.core.models.kuwahara import KuwaharaFilter, generalized_kuwahara, sector_kernels


def test_sector_kernels_cover_the_disc_and_each_sums_to_one() -> None:
    kernels = sector_kernels(4)
    assert kernels.shape == (8, 1, 9, 9)
    torch.testing.assert_close(kernels.sum(dim=(1, 2, 3)), torch.ones(8))
    assert (kernels[:, 0, 4, 4] > 0).all(), "the centre is in every sector"
    assert kernels[:, 0, 0, 0].sum() == 0, "the corners lie outside the disc"
    with pytest.raises(ValueError, match="radius >= 1"):
        sector_kernels(0)


def test_flat_regions_stay_and_edges_stay_sharp_where_a_blur_smears_them() -> None:
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(KuwaharaFilter(3)(flat), flat)
    step = torch.zeros(1, 3, 32, 32)
    step[..., 16:] = 0.8
    noisy = (step + 0.03 * torch.randn(step.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    filtered = KuwaharaFilter(4)(noisy)
    blurred = F.avg_pool2d(F.pad(noisy, (4, 4, 4, 4), mode="replicate"), 9, stride=1)
    assert (filtered - step).abs().mean() < 0.5 * (blurred - step).abs().mean()
    edge = filtered[0, 0, 16, 14:18]  # across the step: no ramp
    assert edge[1] < 0.15 and edge[2] > 0.65
    assert (filtered[..., 4:-4, 4:12] - step[..., 4:-4, 4:12]).std() < 0.5 * noisy[..., 4:-4, 4:12].std()
    with pytest.raises(ValueError, match="expected image"):
        generalized_kuwahara(flat[0], sector_kernels(2))


def test_a_unet_can_end_in_the_filter_and_learn_through_it() -> None:
    config = UNetConfig(base_width=4, depth=2, kuwahara_radius=3)
    assert model_config_from_dict({"family": "unet", "base_width": 4, "depth": 2, "kuwahara_radius": 3}) == config
    model = build_generator(config)
    image = torch.rand(2, 3, 20, 24)
    out = model(image, None, None)
    assert out.shape == (2, 3, 20, 24) and 0 <= out.min() and out.max() <= 1
    out.mean().backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    assert not any("kernels" in name for name in model.state_dict()), "the filter is fixed, not saved"
    with pytest.raises(ConfigError, match="kuwahara_radius = 40"):
        UNetConfig(kuwahara_radius=40).validate()


def test_the_filter_runs_in_float32_under_autocast_and_counts_on_meta() -> None:
    image = torch.rand(1, 3, 24, 24)
    reference = KuwaharaFilter(3)(image)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(KuwaharaFilter(3)(image).float(), reference)
    with torch.device("meta"):  # the benchmark counts FLOPs on storage-less tensors
        assert KuwaharaFilter(3)(torch.empty(1, 3, 24, 24)).shape == (1, 3, 24, 24)
