"""Training configuration: a small TOML file; every key has a default you can read below.

Sections: ``[model]`` (see :mod:`stylepass.core.models.config`), ``[data]``, ``[train]``, ``[loss]``,
``[discriminator]``, ``[metrics]``. Unknown sections or keys are errors that name the allowed
ones. Each run writes the fully resolved config to ``RUN/config.toml``. Example::

    [model]
    family = "unet"
    base_width = 32

    [train]
    steps = 5000
    crop_size = 256

    [loss]
    l1 = 100.0
    adversarial = 1.0
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stylepass.core.models.config import (
    ConfigError,
    ModelConfig,
    RADConfig,
    dataclass_from_dict,
    model_config_from_dict,
    model_config_to_dict,
)

ADVERSARIAL_KINDS = ("lsgan", "hinge")
DATA_MODES = ("paired", "unpaired")


@dataclasses.dataclass(frozen=True)
class TrainSection:
    """Optimisation and bookkeeping."""

    steps: int = 20000  # total optimiser steps (--steps overrides)
    batch_size: int = 4
    crop_size: int = 256  # random square training crops (frames must be at least this big)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    lr_decay_start: int = 0  # from this step the learning rates fall linearly to 0 at `steps`; 0 = constant
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0  # model init and the crop sequence; a run is reproducible from it
    checkpoint_every: int = 500  # steps; a checkpoint is also written at the end and on Ctrl-C
    keep_checkpoints: int = 2
    log_every: int = 50
    val_every: int = 500  # steps; 0 = only at the start and the end
    val_max_size: int = 512  # validation frames are centre-cropped to at most this size; 0 = full
    num_workers: int = 2  # data loader processes (0 = load in the training process)

    def validate(self) -> None:
        """Raise ConfigError on out-of-range values."""
        for name in ("steps", "batch_size", "crop_size", "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("val_every", "val_max_size", "num_workers", "lr_decay_start"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"train.{name} must be a finite number > 0, got {value}")

    def lr_factor(self, step: int) -> float:
        """Learning-rate multiplier for optimiser step `step` (1-based): 1, then linear decay towards 0.

        A pure function of the step (pix2pix's schedule), so resumed runs need no scheduler state.
        """
        if not self.lr_decay_start or step <= self.lr_decay_start:
            return 1.0
        return max(0.0, (self.steps - step + 1) / (self.steps - self.lr_decay_start + 1))


@dataclasses.dataclass(frozen=True)
class DataSection:
    """What the generator learns from."""

    mode: str = "paired"  # "paired": targets from pairs.jsonl; "unpaired": EPE-style, see below
    target_images: str | None = None  # unpaired: folder of target-domain images (relative to DATASET)
    match_candidates: int = 4  # unpaired: a source crop is matched to one of its k nearest target crops

    def validate(self) -> None:
        """Raise ConfigError on an unknown mode or an unpaired run without target images."""
        if self.mode not in DATA_MODES:
            raise ConfigError(f"data.mode = {self.mode!r}; allowed: {', '.join(DATA_MODES)}")
        if self.mode == "unpaired" and not self.target_images:
            raise ConfigError("data.mode = 'unpaired' needs data.target_images = a folder of target-domain images")
        if self.match_candidates < 1:
            raise ConfigError(f"data.match_candidates must be >= 1, got {self.match_candidates}")


@dataclasses.dataclass(frozen=True)
class LossSection:
    """Generator loss weights (0 disables a term).

    Paired runs compare the output with the target; unpaired runs have no target, so there
    l1, gradient, surface and texture must be 0 and perceptual compares with the input (content loss).
    """

    l1: float = 100.0  # L1 to the target (pix2pix uses 100 with adversarial 1)
    gradient: float = 0.0  # L1 of the output's neighbour differences to the target's (sharp lines and edges)
    content: float = 0.0  # L1 to the input image (keeps the render's content; for unpaired runs)
    adversarial: float = 1.0  # 0 trains the generator alone, without a discriminator
    adversarial_kind: str = "lsgan"  # "lsgan" or "hinge"
    perceptual: float = 0.0  # VGG16 feature L1 to the target (paired) or input (unpaired)
    perceptual_weights: str | None = None  # local VGG16 safetensors (torchvision key names)
    total_variation: float = 0.0
    surface: float = 0.0  # cartoon: guided-filter surface L1 (White-box cartoonization)
    texture: float = 0.0  # cartoon: grey-scale texture L1
    structure: float = 0.0  # cartoon: L1 to the output's own superpixel means (flat regions)

    def validate(self) -> None:
        """Raise ConfigError on negative weights, an unknown adversarial kind or a missing path."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"loss.{field.name} must be a finite number >= 0, got {value}")
        if self.adversarial_kind not in ADVERSARIAL_KINDS:
            raise ConfigError(
                f"loss.adversarial_kind = {self.adversarial_kind!r}; allowed: {', '.join(ADVERSARIAL_KINDS)}"
            )
        if self.perceptual > 0 and not self.perceptual_weights:
            raise ConfigError(
                "loss.perceptual > 0 needs loss.perceptual_weights = a local VGG16 .safetensors file "
                "(weights are never downloaded); set loss.perceptual = 0.0 to train without it"
            )


@dataclasses.dataclass(frozen=True)
class DiscriminatorSection:
    """PatchGAN discriminator, conditioned on the input image (pix2pix style)."""

    base_width: int = 64
    n_layers: int = 3  # 3 gives 70x70 patches; needs crops of at least 2^(n_layers + 1) px

    def validate(self) -> None:
        """Raise ConfigError on out-of-range values."""
        if self.base_width < 1 or self.n_layers < 1:
            raise ConfigError("discriminator.base_width and discriminator.n_layers must be >= 1")


@dataclasses.dataclass(frozen=True)
class MetricsSection:
    """Validation metrics beyond PSNR and SSIM (always on)."""

    lpips_weights: str | None = None  # local LPIPS-VGG safetensors (VGG16 + lin layers); off if unset
    kid_weights: str | None = None  # local VGG16 safetensors for KID on VGG features; off if unset


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A whole training config."""

    model: ModelConfig = dataclasses.field(default_factory=RADConfig)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    loss: LossSection = dataclasses.field(default_factory=LossSection)
    discriminator: DiscriminatorSection = dataclasses.field(default_factory=DiscriminatorSection)
    metrics: MetricsSection = dataclasses.field(default_factory=MetricsSection)


_SECTIONS: dict[str, type] = {
    "data": DataSection,
    "train": TrainSection,
    "loss": LossSection,
    "discriminator": DiscriminatorSection,
    "metrics": MetricsSection,
}


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Parse and validate a config mapping (as read from TOML)."""
    allowed = ["model", *_SECTIONS]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown section(s) or key(s): {', '.join(unknown)}; allowed sections: {', '.join(allowed)}")
    for name, value in data.items():
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{name}] must be a table, got {value!r}")
    sections = {}
    for name, cls in _SECTIONS.items():
        section = dataclass_from_dict(cls, data.get(name, {}), name)
        if hasattr(section, "validate"):
            section.validate()
        sections[name] = section
    config = TrainConfig(model=model_config_from_dict(data.get("model", {})), **sections)
    if config.data.mode == "unpaired":
        paired_only = [n for n in ("l1", "gradient", "surface", "texture") if getattr(config.loss, n) > 0]
        if paired_only:
            raise ConfigError(
                f"data.mode = 'unpaired' has no targets to compare with: set loss.{', loss.'.join(paired_only)} "
                "to 0.0 (use loss.content and loss.adversarial)"
            )
        if config.loss.adversarial <= 0:
            raise ConfigError(
                "data.mode = 'unpaired' learns the style from the discriminator: loss.adversarial must be > 0"
            )
    return config


def load_config(path: Path) -> TrainConfig:
    """Read a TOML training config; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def config_to_dict(config: TrainConfig) -> dict[str, dict[str, Any]]:
    """Nested plain dict of a config (tuples as lists, unset optional values left out)."""
    out = {"model": model_config_to_dict(config.model)}
    for name in _SECTIONS:
        section = dataclasses.asdict(getattr(config, name))
        out[name] = {k: v for k, v in section.items() if v is not None}
    return out


def config_to_toml(config: TrainConfig) -> str:
    """Serialise a resolved config as TOML (every key, defaults included)."""
    header = "# Resolved stylepass training config: every key, defaults included.\n\n"
    return header + dumps_toml(config_to_dict(config))


def dumps_toml(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """Tables of scalars and lists (all a training config holds) as TOML text: each ``[section]``
    followed by its ``key = value`` lines and a blank line."""
    lines = []
    for section, values in tables.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
