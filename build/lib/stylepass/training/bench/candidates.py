"""What ``stylepass bench`` times: the shipped presets (as ``stylepass stylise`` loads them), each
model family at its default config (seeded random weights) and the baselines
(:mod:`.baselines`), with the inputs each is given."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stylepass.core.inference.stylise import PRESET_MODEL_FOLDER
from stylepass.core.models.config import ModelConfig, RADConfig, UNetConfig, build_generator
from stylepass.core.models.inputs import gbuffer_channels
from stylepass.core.models.serialization import MODEL_CONFIG, MODEL_WEIGHTS, load_model

from ..loop.config import TrainConfig, load_config
from .baselines import (
    EPE_LAYOUT,
    EPE_PUBLISHED_PARAMETERS,
    UNET_256_PARAMETERS,
    EPE_PUBLISHED_TFLOP_960x540,
    ReferencePatchGAN,
    ReferenceUNet,
    parameter_count,
)
from .flops import frame_tflop
from .timing import synthetic_batch

EPE_BASELINE = "baseline:epe_layout"
UNET_BASELINE = "baseline:reference_unet_256"
TRAIN_BASELINE = "baseline:reference_pix2pix"


@dataclasses.dataclass
class Candidate:
    """A model to time: a preset, a family default or a baseline."""

    name: str  # "preset:toon", "family:unet", "baseline:epe_layout", ...
    role: str  # "preset", "family" or "baseline"
    family: str  # "unet" or "rad"
    build: Callable[[], nn.Module]  # the generator on the CPU, eval mode
    gbuffer_count: int
    multiple: int  # inputs are padded to a multiple of this
    model_dir: Path | None = None
    train_config: TrainConfig | None = None
    seconds_per_pixel: float | None = None  # CPU estimate, from its latest measurement



def _load_generator(model_dir: Path) -> nn.Module:
    """The generator of the model folder `model_dir`, loaded afresh (a preset candidate's ``build``)."""
    return load_model(model_dir)[0]


def preset_candidates(root: Path) -> tuple[list[Candidate], list[str]]:
    """Every preset of `root` with a trained model, and the names of those without one."""
    found, missing = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        model_dir = folder / PRESET_MODEL_FOLDER
        if not (model_dir / MODEL_WEIGHTS).is_file() or not (model_dir / MODEL_CONFIG).is_file():
            missing.append(folder.name)
            continue
        model, config = load_model(model_dir)
        train_toml = folder / "train.toml"
        found.append(Candidate(
            f"preset:{folder.name}", "preset", config.family,
            functools.partial(_load_generator, model_dir),
            gbuffer_channels(config.gbuffer_passes) if config.gbuffer_passes else 1,
            int(getattr(model, "multiple", 1)), model_dir,
            load_config(train_toml) if train_toml.is_file() else None,
        ))
    return found, missing


def config_candidate(name: str, role: str, config: ModelConfig) -> Candidate:
    """A generator built from `config` with seeded random weights."""
    def build() -> nn.Module:
        torch.manual_seed(0)
        return build_generator(config).eval()

    with torch.device("meta"):
        multiple = int(getattr(build_generator(config), "multiple", 1))
    channels = gbuffer_channels(config.gbuffer_passes) if config.gbuffer_passes else 1
    return Candidate(name, role, config.family, build, channels, multiple)


def reference_unet_candidate() -> Candidate:
    """pix2pix unet_256 (image only; the G-buffer tensor it is given is ignored)."""
    def build() -> nn.Module:
        torch.manual_seed(0)
        return ReferenceUNet().eval()

    return Candidate(UNET_BASELINE, "baseline", "unet", build, 1, 256)


def all_candidates(root: Path) -> tuple[list[Candidate], list[str]]:
    """Presets, family defaults and baselines, in that order; and presets without a model."""
    presets, missing = preset_candidates(root)
    return presets + [
        config_candidate("family:unet", "family", UNetConfig()),
        config_candidate("family:rad", "family", RADConfig()),
        config_candidate(EPE_BASELINE, "baseline", EPE_LAYOUT),
        reference_unet_candidate(),
    ], missing


def baselines_summary() -> dict[str, Any]:
    """Parameter counts of the baselines against the published ones, their configs, and the EPE
    layout's TFLOP per 960x540 frame against the published figure."""
    with torch.device("meta"):
        epe_model = build_generator(EPE_LAYOUT).eval()
        epe = parameter_count(epe_model)
        unet = parameter_count(ReferenceUNet())
        patchgan = parameter_count(ReferencePatchGAN())
    return {
        EPE_BASELINE: {
            "what": "our RAD generator in the published layout of the official EPE generator (Richter et al. 2021)",
            "parameters": epe, "published_parameters": EPE_PUBLISHED_PARAMETERS,
            "tflop_960x540": frame_tflop(epe_model, gbuffer_channels(EPE_LAYOUT.gbuffer_passes), (540, 960)),
            "published_tflop_960x540": EPE_PUBLISHED_TFLOP_960x540,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(EPE_LAYOUT).items()},
        },
        UNET_BASELINE: {
            "what": "pix2pix unet_256 (8 downsamplings, 64 channels, batch norm, dropout), image input only",
            "parameters": unet, "published_parameters": UNET_256_PARAMETERS,
        },
        TRAIN_BASELINE: {
            "what": "unet_256 + pix2pix basic PatchGAN (batch norm), float32, NCHW, GAN + 100 L1, Adam",
            "parameters": unet + patchgan,
        },
    }


def device_inputs(candidate: Candidate, size: tuple[int, int], device: torch.device) -> dict[str, torch.Tensor]:
    """Random image (1, 3, H, W), G-buffers (1, C, H, W) and material ids (1, H, W) on `device`."""
    return synthetic_batch(UNetConfig(), 1, *size, device, gbuffer_count=candidate.gbuffer_count)
