"""Fixtures: tiny model folders and Blender-style G-buffer exports written as real files.

Exports are written with the training tests' writer (``tests/training/conftest.py``): a Blender
5.x-style multilayer EXR plus sidecar per frame; folders get the exporter's manifest.jsonl.
Models are built from their configs at tiny widths and saved with ``save_model``, so every test
loads a real ``model.safetensors`` + ``config.json``. One CPU thread, as in the other suites.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from stylepass.blender_addon.contract.atomic_files import append_jsonl
from stylepass.blender_addon.contract.export_format import MANIFEST_NAME, frame_stem
from stylepass.core.models import RADConfig, UNetConfig, build_generator, save_model
from tests.training.conftest import make_frame, write_test_gbuffer

torch.set_num_threads(1)

PASSES = ("albedo", "normal", "depth")
TINY_RAD = RADConfig(widths=(8, 8), blocks=(1, 1), gbuffer_widths=(4, 4), gbuffer_passes=PASSES)
TINY_UNET = UNetConfig(base_width=4, depth=2, gbuffer_passes=("normal",))


def write_model(directory: Path, config, identity: bool = False, seed: int = 0) -> Path:
    """A model dir with random weights. A RAD generator starts as the identity (zero head);
    unless `identity`, its head is randomised so that the output differs from the input."""
    torch.manual_seed(seed)
    model = build_generator(config)
    if isinstance(config, RADConfig) and not identity:
        torch.nn.init.normal_(model.head.weight, 0.0, 0.05)
    return save_model(model, config, directory)


def smooth_frame(height: int, width: int, peak: float = 1.0) -> SimpleNamespace:
    """A G-buffer frame whose passes vary slowly (no edges): beauty from 0.05 to `peak`."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    beauty = np.stack([0.05 + (peak - 0.05) * u, 0.05 + (peak - 0.05) * v, 0.05 + (peak - 0.05) * (u + v) / 2])
    normal = np.stack([0.3 * (u - 0.5), 0.3 * (v - 0.5), np.ones_like(u)])
    normal /= np.linalg.norm(normal, axis=0, keepdims=True)
    return SimpleNamespace(beauty=beauty.astype(np.float32), albedo=np.clip(0.2 + 0.6 * beauty / peak, 0, 1),
                           glossy_albedo=np.clip(0.04 + 0.2 * beauty / peak, 0, 1).astype(np.float32),
                           normal=normal.astype(np.float32), depth=(2.0 + u + v).astype(np.float32),
                           valid=np.ones((height, width), bool),
                           material_id=np.ones((height, width), np.int32), motion=None, meta={})


def write_export(folder: Path, frames: list[SimpleNamespace], first: int = 1,
                 passes: tuple[str, ...] = ("albedo", "glossy_albedo")) -> list[Path]:
    """Write frames as ``frame_NNNNNN.exr`` + sidecar with manifest lines, as the exporter does."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, frame in enumerate(frames, start=first):
        exr = folder / f"{frame_stem(number)}.exr"
        write_test_gbuffer(exr, frame, passes)
        append_jsonl(folder / MANIFEST_NAME,
                     {"frame": number, "exr": exr.name, "sidecar": exr.with_suffix(".json").name})
        paths.append(exr)
    return paths


@pytest.fixture(scope="session")
def rad_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RAD model dir whose output differs from its input."""
    return write_model(tmp_path_factory.mktemp("models") / "rad", TINY_RAD)


@pytest.fixture(scope="session")
def identity_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RAD model dir as initialised: output = input (the HDR round trip is all it does)."""
    return write_model(tmp_path_factory.mktemp("models") / "identity", TINY_RAD, identity=True)


@pytest.fixture(scope="session")
def export_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export folder of three random smooth 40x48 frames (read-only for the tests)."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("export")
    write_export(folder, [make_frame(rng) for _ in range(3)])
    return folder
