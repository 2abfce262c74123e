"""Fixtures: a tiny synthetic paired dataset written as real files.

Inputs are G-buffer exports in Blender's layout (multilayer EXR + sidecar JSON) read by the real
``stylepass.core.io.gbuffer.read_gbuffer``; targets are real PNG (sRGB 8-bit) and EXR (linear)
files read by the dataset's own target reader. The target is a fixed colour restyle of the
beauty, so a generator can learn it in a few dozen steps.

The tests use one CPU thread: tiny networks gain nothing from more, and a single thread does not
stall when other processes (Blender renders, other suites) share the cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import OpenEXR
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)

TRAIN_FRAMES = 4
VAL_FRAMES = 2
FRAME_HEIGHT, FRAME_WIDTH = 40, 48


def restyle(beauty: np.ndarray) -> np.ndarray:
    """The synthetic 'style': swap and warm the channels of a linear image (3, H, W)."""
    return np.stack([0.9 * beauty[1] + 0.1, 0.6 * beauty[2], 0.3 * beauty[0] + 0.05])


def make_frame(rng: np.random.Generator, height: int = FRAME_HEIGHT, width: int = FRAME_WIDTH) -> SimpleNamespace:
    """A random but smooth G-buffer frame with the attributes of GBufferFrame."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phases = rng.uniform(0, 6.28, size=(3, 2))
    freqs = rng.uniform(0.05, 0.3, size=(3, 2))
    beauty = np.stack([
        0.6 + 0.5 * np.sin(freqs[c, 0] * yy + phases[c, 0]) * np.cos(freqs[c, 1] * xx + phases[c, 1])
        for c in range(3)
    ]).astype(np.float32)
    beauty = np.clip(beauty, 0.0, None)
    valid = np.ones((height, width), dtype=bool)
    valid[:3, :5] = False
    normal = np.stack([np.sin(0.1 * xx), np.cos(0.1 * xx), np.zeros_like(xx)]).astype(np.float32)
    depth = (1.0 + 0.05 * yy).astype(np.float32)
    material = (1 + (xx // 12).astype(np.int32) % 3).astype(np.int32)
    for arr in (normal, depth):
        arr[..., ~valid] = 0.0
    material[~valid] = 0
    return SimpleNamespace(
        beauty=beauty,
        albedo=np.clip(beauty * 0.8, 0, 1).astype(np.float32),
        glossy_albedo=np.clip(0.04 + beauty * 0.1, 0, 1).astype(np.float32),
        normal=normal,
        depth=depth,
        valid=valid,
        material_id=material,
        motion=None,
        meta={},
    )


def write_test_gbuffer(path: Path, frame: SimpleNamespace, passes: tuple[str, ...] = ("albedo",)) -> None:
    """Write a frame as a Blender 5.x-style G-buffer export: EXR plus sidecar JSON.

    The camera is the identity (world space = camera space); invalid pixels get Blender's
    1e10 background depth. `passes` picks the optional layers besides beauty, normal, depth and
    material index: "albedo" (left out to test a missing pass) and "glossy_albedo".
    """
    height, width = frame.depth.shape
    layer = "ViewLayer"
    channels = {f"{layer}.Combined.{c}": frame.beauty[i] for i, c in enumerate("RGB")}
    channels[f"{layer}.Combined.A"] = np.ones((height, width), np.float32)
    if "albedo" in passes:
        channels.update({f"{layer}.Diffuse Color.{c}": frame.albedo[i] for i, c in enumerate("RGB")})
    if "glossy_albedo" in passes:
        channels.update({f"{layer}.Glossy Color.{c}": frame.glossy_albedo[i] for i, c in enumerate("RGB")})
    channels.update({f"{layer}.Normal.{c}": frame.normal[i] for i, c in enumerate("XYZ")})
    channels[f"{layer}.Depth.Z"] = np.where(frame.valid, frame.depth, 1e10)
    channels[f"{layer}.Material Index.X"] = frame.material_id.astype(np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in channels.items()}).write(str(path))
    sidecar = {
        "schema_version": 1,
        "exr": path.name,
        "view_layer": layer,
        "resolution": [width, height],
        "camera": {"world_to_camera": np.eye(4).tolist(), "clip_end": 1000.0},
        "materials": [],
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar))


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] (3, H, W) to 8-bit sRGB (H, W, 3)."""
    x = np.clip(linear, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(srgb * 255.0).astype(np.uint8).transpose(1, 2, 0)


def build_dataset(root: Path, seed: int = 0, height: int = FRAME_HEIGHT, width: int = FRAME_WIDTH) -> Path:
    """Write the synthetic paired dataset to `root` (train targets PNG, val targets EXR)."""
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True)
    (root / "targets").mkdir()
    lines = []
    for index in range(TRAIN_FRAMES + VAL_FRAMES):
        split = "train" if index < TRAIN_FRAMES else "val"
        frame = make_frame(rng, height, width)
        write_test_gbuffer(root / "frames" / f"{index:04d}.exr", frame, ("albedo", "glossy_albedo"))
        target = restyle(frame.beauty)
        if split == "train":
            target_name = f"targets/{index:04d}.png"
            Image.fromarray(linear_to_srgb8(target)).save(root / target_name)
        else:
            target_name = f"targets/{index:04d}.exr"
            header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
            OpenEXR.File(header, {"RGB": np.ascontiguousarray(target.transpose(1, 2, 0), dtype=np.float32)}).write(
                str(root / target_name)
            )
        lines.append(json.dumps({"input": f"frames/{index:04d}.exr", "target": target_name, "split": split,
                                 "scene": f"s{index % 2}"}))
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def paired_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny paired dataset folder shared by the tests (read-only)."""
    return build_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="session")
def gbuffer_reader():
    """The production G-buffer reader (a FrameReader)."""
    from stylepass.core.io.gbuffer import read_gbuffer

    return read_gbuffer


@pytest.fixture(scope="session")
def gbuffer_writer():
    """write_test_gbuffer(path, frame, passes=("albedo",)): a Blender-style export of a frame."""
    return write_test_gbuffer


@pytest.fixture()
def frame_factory():
    """make_frame(rng, height, width) -> a synthetic GBufferFrame-like object."""
    return make_frame


@pytest.fixture(scope="session")
def style():
    """The synthetic style: linear beauty (3, H, W) -> linear target (3, H, W)."""
    return restyle


@pytest.fixture(scope="session")
def lpips_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local safetensors file with random VGG16 features (to relu5_3) and LPIPS lin layers."""
    import torch
    from safetensors.torch import save_file

    from stylepass.training.losses.perceptual import RELU_TAPS, build_vgg16_features

    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in build_vgg16_features(RELU_TAPS[-1]).state_dict().items()}
    state.update({f"lin{k}.weight": torch.rand(1, w, 1, 1) for k, w in enumerate((64, 128, 256, 512, 512))})
    path = tmp_path_factory.mktemp("weights") / "lpips_vgg16.safetensors"
    save_file(state, str(path))
    return path


CLI_SCRIPT = """
import argparse
import sys

from stylepass.core.cli.train_command import register

parser = argparse.ArgumentParser(prog="stylepass")
register(parser.add_subparsers(required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


@pytest.fixture(scope="session")
def cli_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A script running the training subcommands the way the stylepass CLI wires them."""
    path = tmp_path_factory.mktemp("cli") / "stylepass_training.py"
    path.write_text(CLI_SCRIPT)
    return path
