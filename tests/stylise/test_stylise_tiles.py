"""Tiled stylisation: no seams on a smooth frame, both runtimes agree tile for tile, and smaller
tiles when memory runs out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from stylepass.core.inference.stylise import (
    REPO_PRESETS,
    StyliseError,
    Styliser,
    load_styliser,
    read_frame,
    smaller_tile,
)
from stylepass.core.inference.tiling import tile_spans
from stylepass.core.io.gbuffer import GBufferFrame
from stylepass.core.models import RADConfig

from .conftest import PASSES, TINY_RAD, TINY_UNET, smooth_frame, write_export, write_model

MOTION_RAD = RADConfig(widths=(8, 8), blocks=(1, 1), gbuffer_widths=(4, 4), gbuffer_passes=(*PASSES, "motion"))

TILE = 64


def frame_of(tmp_path, height: int, width: int) -> GBufferFrame:
    [source] = write_export(tmp_path / "export", [smooth_frame(height, width, peak=4.0)])
    return read_frame(source)


def with_tiles(styliser: Styliser, tile: int | None, **changes: int) -> Styliser:
    """The same styliser with another tile size (and overlap or context, if given)."""
    return dataclasses.replace(styliser, tile=tile, **changes)


def border_and_other_steps(image: np.ndarray, axis: int, tile: int, overlap: int, align: int,
                           margin: int = 8) -> tuple[float, float]:
    """Largest mean step between neighbouring pixel lines along `axis` (2: columns, 1: rows) at
    tile borders, and elsewhere away from the frame's own edges. image: (3, H, W) model range."""
    steps = np.abs(np.diff(image, axis=axis)).mean(axis=tuple(a for a in (0, 1, 2) if a != axis))
    length = image.shape[axis]
    borders = {edge for span in tile_spans(length, tile, overlap, align) for edge in span if 0 < edge < length}
    at_borders = sorted({i for edge in borders for i in (edge - 1, edge)})
    others = [i for i in range(margin, length - 1 - margin) if i not in at_borders]
    return float(steps[at_borders].max()), float(steps[others].max())


@pytest.mark.parametrize("engine", ["onnx", "torch"])
@pytest.mark.parametrize("config", [TINY_RAD, TINY_UNET], ids=["rad", "unet"])
def test_tiles_leave_no_step_at_their_borders(tmp_path, config, engine):
    styliser = load_styliser(write_model(tmp_path / "model", config), "cpu", engine=engine)
    assert (styliser.overlap, styliser.context) == (32, 32)
    frame = frame_of(tmp_path, 96, 160)
    align = styliser.multiple
    model_range = {}
    for name, tiled in (("whole", with_tiles(styliser, None)), ("tiled", with_tiles(styliser, TILE)),
                        ("naive", with_tiles(styliser, TILE, overlap=0, context=0))):
        linear = tiled.stylise(frame)
        model_range[name] = linear / (1.0 + linear)

    whole, tiled, naive = model_range["whole"], model_range["tiled"], model_range["naive"]
    assert np.abs(tiled - whole).max() < 1e-3
    for axis in (1, 2):
        at_borders, elsewhere = border_and_other_steps(tiled, axis, TILE, 32, align)
        assert at_borders <= elsewhere, f"a step at tile borders along axis {axis}"
    # The same checks see the seams of tiles cut without overlap or context.
    assert np.abs(naive - whole).max() > 0.01
    at_borders, elsewhere = border_and_other_steps(naive, 2, TILE, 0, align)
    assert at_borders > elsewhere


@pytest.mark.parametrize("config", [TINY_RAD, TINY_UNET, MOTION_RAD], ids=["rad", "unet", "rad_motion"])
def test_onnx_runtime_matches_torch_whole_and_in_tiles(tmp_path, config):
    """ONNX Runtime on model.onnx (written from the weights on first use) and torch on the weights
    agree within 1e-3 in the model range, whole frames and tiles, with depth and motion normalised
    by the whole frame in every tile."""
    model_dir = write_model(tmp_path / "model", config)
    frame = frame_of(tmp_path, 150, 230)
    frame.depth *= 7.0  # the frame's own far depth, not 1: a tile normalised by its own would differ
    if frame.motion is None:
        frame.motion = np.random.default_rng(0).normal(size=(4, 150, 230)).astype(np.float32) * 20
    onnx_styliser = load_styliser(model_dir, "cpu", engine="onnx")
    torch_styliser = load_styliser(model_dir, "cpu", engine="torch")
    assert (model_dir / "model.onnx").is_file() and onnx_styliser.model_id == torch_styliser.model_id
    assert onnx_styliser.runtime.startswith("onnxruntime") and torch_styliser.runtime.startswith("torch")
    for tile in (None, 64, 96):
        onnx_out = with_tiles(onnx_styliser, tile).stylise(frame)
        torch_out = with_tiles(torch_styliser, tile).stylise(frame)
        assert onnx_out.dtype == np.float32 and onnx_out.shape == (3, 150, 230)
        difference = np.abs(onnx_out / (1 + onnx_out) - torch_out / (1 + torch_out)).max()
        assert difference < 1e-3, f"tile {tile}: {difference}"


class RunsOutOfMemory(nn.Module):
    """A generator on a GPU too small for inputs of more than `max_pixels` pixels."""

    def __init__(self, model: nn.Module, max_pixels: int) -> None:
        super().__init__()
        self.model = model
        self.multiple = model.multiple
        self.max_pixels = max_pixels
        self.sizes: list[tuple[int, int]] = []

    def forward(self, image: torch.Tensor, gbuffers: torch.Tensor, material_id: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        self.sizes.append((height, width))
        if height * width > self.max_pixels:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return self.model(image, gbuffers, material_id)


def test_out_of_memory_falls_back_to_smaller_tiles(tmp_path):
    styliser = load_styliser(write_model(tmp_path / "model", TINY_RAD), "cpu", engine="torch")
    frame = frame_of(tmp_path, 300, 280)
    small_gpu = RunsOutOfMemory(styliser.model, max_pixels=200 * 200)
    notes: list[str] = []
    progress: list[tuple[int, int]] = []
    result = dataclasses.replace(styliser, model=small_gpu).stylise(
        frame, lambda done, total: progress.append((done, total)), notes.append)

    # The whole frame, then a 256 px tile with its 32 px of context (within the frame), fail;
    # 128 px tiles fit.
    assert small_gpu.sizes[:2] == [(300, 280), (288, 280)]
    assert max(h * w for h, w in small_gpu.sizes[2:]) <= 200 * 200
    assert notes == ["out of memory on cpu with the whole frame; trying 256px tiles",
                     "out of memory on cpu with 256px tiles; trying 128px tiles"]
    tiles = len(small_gpu.sizes[2:])
    assert tiles == 9 and progress[-tiles:] == [(done, tiles) for done in range(1, tiles + 1)]
    np.testing.assert_array_equal(result, with_tiles(styliser, 128).stylise(frame))


def test_out_of_memory_with_the_smallest_tiles_is_an_error(tmp_path):
    styliser = load_styliser(write_model(tmp_path / "model", TINY_RAD), "cpu", engine="torch")
    frame = frame_of(tmp_path, 300, 280)
    never_fits = dataclasses.replace(styliser, model=RunsOutOfMemory(styliser.model, max_pixels=0), tile=200)
    with pytest.raises(StyliseError, match="out of memory on cpu .* even with 64px tiles") as error:
        never_fits.stylise(frame)
    assert error.value.kind == "out_of_memory"
    assert never_fits.model.sizes == [(232, 232), (160, 160), (96, 96)]  # tiles 200, 128, 64 + context


def test_tile_sizes_halve_on_the_power_of_two_grid():
    assert smaller_tile(None, 1080, 1920, 64) == 1024
    assert smaller_tile(1024, 1080, 1920, 64) == 512
    assert smaller_tile(5000, 300, 280, 64) == 256  # a tile larger than the frame is the whole frame
    assert smaller_tile(128, 1080, 1920, 64) == 64
    assert smaller_tile(64, 1080, 1920, 64) is None
    assert smaller_tile(None, 1080, 1920, 160) == 1024 and smaller_tile(256, 1080, 1920, 160) is None


def test_small_tiles_of_a_deep_unet_match_the_whole_frame(tmp_path):
    """The shipped presets' U-Nets have a 32-pixel grid: their tiles see twice that much context,
    so 64-pixel tiles stay within 0.01 of the whole frame (with 32 pixels they were off by 0.06)."""
    styliser = load_styliser(REPO_PRESETS / "toon" / "model", "cpu")
    assert styliser.multiple == 32 and styliser.context == 64
    frame = frame_of(tmp_path, 150, 230)
    whole = with_tiles(styliser, None).stylise(frame)
    tiled = with_tiles(styliser, 64).stylise(frame)
    assert np.abs(tiled / (1 + tiled) - whole / (1 + whole)).max() < 0.01
