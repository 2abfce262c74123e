"""Tone map, G-buffer stacking, material classes, and whole-frame stylisation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from stylepass.core.inference.predict import predict, resolve_device, stylise_frame
from stylepass.core.io.colour import decode_srgb, inverse_tonemap, tonemap
from stylepass.core.models import RADConfig, UNetConfig, build_generator
from stylepass.core.models.inputs import material_classes, stack_gbuffers


def frame(height: int = 6, width: int = 5) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    valid = np.ones((height, width), dtype=bool)
    valid[0, 0] = False
    depth = rng.uniform(1, 50, (height, width)).astype(np.float32)
    depth[0, 0] = 0.0
    return SimpleNamespace(
        beauty=rng.uniform(0, 20, (3, height, width)).astype(np.float32),
        albedo=rng.uniform(0, 1, (3, height, width)).astype(np.float32),
        normal=rng.uniform(-1, 1, (3, height, width)).astype(np.float32),
        depth=depth,
        valid=valid,
        material_id=rng.integers(0, 40, (height, width)).astype(np.int32),
        motion=None,
        meta={},
    )


def test_tonemap_is_invertible_over_hdr_range() -> None:
    linear = torch.tensor([0.0, 0.01, 0.5, 1.0, 7.0, 300.0])
    mapped = tonemap(linear)
    assert mapped.min() >= 0 and mapped.max() < 1
    torch.testing.assert_close(inverse_tonemap(mapped), linear, rtol=1e-4, atol=1e-6)
    assert tonemap(torch.tensor([-3.0])).item() == 0.0
    torch.testing.assert_close(decode_srgb(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([0.0, 0.21404, 1.0]),
                               rtol=1e-4, atol=1e-5)


def test_stack_gbuffers_orders_and_normalises_passes() -> None:
    f = frame()
    stacked = stack_gbuffers(f, ("albedo", "depth"))
    assert stacked.shape == (3 + 1 + 1, 6, 5)
    torch.testing.assert_close(stacked[:3], torch.from_numpy(f.albedo))
    assert stacked[3].max() == 1.0 and stacked[3, 0, 0] == 0.0
    assert stacked[4, 0, 0] == 0.0 and stacked[4].sum() == 6 * 5 - 1


def test_missing_passes_are_named() -> None:
    f = frame()
    f.albedo = None
    with pytest.raises(ValueError, match="lacks the pass\\(es\\) the model needs: albedo, motion"):
        stack_gbuffers(f, ("albedo", "normal", "motion"))


def test_material_classes_keep_background_and_wrap_ids() -> None:
    ids = torch.tensor([0, 1, 2, 3, 4, 7, -5])
    assert material_classes(ids, 4).tolist() == [0, 1, 2, 3, 1, 1, 0]
    assert material_classes(ids, 1).tolist() == [0] * 7


def test_stylise_frame_returns_linear_hdr_of_frame_size() -> None:
    config = RADConfig(widths=(4, 8), blocks=(1, 1), gbuffer_widths=(4, 4))
    model = build_generator(config).eval()  # identity at initialisation
    f = frame(7, 9)
    out = stylise_frame(model, config, f)
    assert out.shape == (3, 7, 9) and out.dtype == np.float32
    np.testing.assert_allclose(out, f.beauty, rtol=2e-3)
    tiled = stylise_frame(model, config, f, tile=4, overlap=2)
    np.testing.assert_allclose(tiled, out, rtol=1e-5, atol=1e-5)


def test_predict_clamps_to_model_range() -> None:
    config = UNetConfig(base_width=4, depth=2)
    model = build_generator(config)
    out = predict(model, torch.rand(2, 3, 5, 6), torch.zeros(2, 1, 5, 6), torch.zeros(2, 5, 6, dtype=torch.long))
    assert out.shape == (2, 3, 5, 6) and 0 <= out.min() and out.max() <= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_gpu_suggests_cpu() -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available.*use --device cpu"):
        resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"
