"""Model configuration: dataclasses with readable defaults, strict parsing, and the builder.

A model config is a flat table (TOML ``[model]`` section or the ``config.json`` of a model dir):

    family = "rad"                                  # "unet" (pix2pix) or "rad"
    gbuffer_passes = ["albedo", "normal", "depth"]  # see stylepass.core.models.inputs.PASS_CHANNELS

plus the family's own keys (see :class:`UNetConfig` and :class:`RADConfig`). Unknown keys are
rejected with the list of allowed ones.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin, get_type_hints

from torch import nn

from .inputs import gbuffer_channels, pass_slices
from .norms import NORM_KINDS
from .rad import RADGenerator
from .unet import UNetGenerator


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message says which and what is allowed."""


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """pix2pix U-Net styliser. G-buffer passes, if any, become extra input channels."""

    family: str = "unet"
    gbuffer_passes: tuple[str, ...] = ()
    base_width: int = 64  # channels at full resolution; doubles per level up to 8x
    depth: int = 7  # downsamplings; inputs are padded to a multiple of 2^depth
    norm: str = "channel"  # "channel" (per-pixel, tile-safe) or "group"
    residual: bool = False  # predict a change to the input image (starts as the identity)
    demodulated: bool = False  # output = albedo x predicted shading + predicted base (needs albedo)
    edge_guides: bool = False  # depth and normal edges as two more inputs (needs depth and normal)
    kuwahara_radius: int = 0  # > 0: a fixed Kuwahara filter of this radius (px) ends the network (paint)

    def validate(self) -> None:
        """Raise ConfigError on values out of range or options whose passes are missing."""
        _check_passes(self.gbuffer_passes)
        _check_positive(base_width=self.base_width, depth=self.depth)
        if not 0 <= self.kuwahara_radius <= MAX_KUWAHARA_RADIUS:
            raise ConfigError(f"model.kuwahara_radius = {self.kuwahara_radius}; allowed: 0 (off) to "
                              f"{MAX_KUWAHARA_RADIUS} pixels (the stylise tiles' context)")
        if self.norm not in NORM_KINDS:
            raise ConfigError(f"model.norm = {self.norm!r}; allowed: {', '.join(NORM_KINDS)}")
        if self.residual and self.demodulated:
            raise ConfigError("model.residual and model.demodulated cannot both be true: choose one output")
        needs = {"demodulated": ("albedo",), "edge_guides": ("depth", "normal")}
        for option, passes in needs.items():
            missing = [name for name in passes if name not in self.gbuffer_passes]
            if getattr(self, option) and missing:
                raise ConfigError(f"model.{option} = true needs {', '.join(missing)} in model.gbuffer_passes")


@dataclasses.dataclass(frozen=True)
class RADConfig:
    """RAD-conditioned enhancement generator; one entry per scale in the three lists."""

    family: str = "rad"
    gbuffer_passes: tuple[str, ...] = ("albedo", "normal", "depth")
    widths: tuple[int, ...] = (16, 32, 64)  # image-branch channels per scale (full res first)
    blocks: tuple[int, ...] = (1, 2, 3)  # RAD residual blocks per scale
    gbuffer_widths: tuple[int, ...] = (16, 16, 32)  # G-buffer encoder channels per scale
    num_materials: int = 8  # material classes (streams); ids map to classes modulo this
    # The G-buffer side; the defaults are the cheap design, the comments give EPE's layout (see
    # stylepass.training.bench.baselines).
    gbuffer_encoder_layers: int = 1  # 3x3 convs per scale in the G-buffer encoder (EPE: 4)
    material_stream_layers: int = 1  # per material: a 1x1 conv, then 3x3 convs (EPE: 3 in all)
    modulation_per_layer: bool = False  # a (gamma, beta) head per RAD layer, not per scale (EPE: true)
    modulation_layers: int = 0  # residual 3x3 convs in each head before its projection (EPE: 3)
    modulation_kernel: int = 3  # kernel of the projection to (gamma, beta), odd (EPE: 1)

    def validate(self) -> None:
        """Raise ConfigError on values out of range or lists of different lengths."""
        _check_passes(self.gbuffer_passes)
        if not self.widths or not (len(self.widths) == len(self.blocks) == len(self.gbuffer_widths)):
            raise ConfigError(
                "model.widths, model.blocks and model.gbuffer_widths need one entry per scale "
                f"(same length); got {len(self.widths)}, {len(self.blocks)}, {len(self.gbuffer_widths)}"
            )
        _check_positive(num_materials=self.num_materials, gbuffer_encoder_layers=self.gbuffer_encoder_layers,
                        material_stream_layers=self.material_stream_layers)
        if self.modulation_layers < 0:
            raise ConfigError(f"model.modulation_layers must be >= 0, got {self.modulation_layers}")
        if self.modulation_kernel < 1 or self.modulation_kernel % 2 == 0:
            raise ConfigError(f"model.modulation_kernel must be odd and >= 1, got {self.modulation_kernel}")
        for name in ("widths", "blocks", "gbuffer_widths"):
            if any(v < (0 if name == "blocks" else 1) for v in getattr(self, name)):
                raise ConfigError(f"model.{name} = {list(getattr(self, name))}: values out of range")


ModelConfig = UNetConfig | RADConfig
MODEL_FAMILIES: dict[str, type[UNetConfig | RADConfig]] = {"unet": UNetConfig, "rad": RADConfig}


def dataclass_from_dict(cls: type, data: Mapping[str, Any], section: str) -> Any:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrongly typed values.

    `section` names the table in messages ("model", "train", ...). Lists become tuples.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in [{section}]: {', '.join(unknown)}; allowed: {', '.join(fields)}"
        )
    hints = get_type_hints(cls)
    values = {key: _coerce(value, hints[key], f"{section}.{key}") for key, value in data.items()}
    return cls(**values)


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """Parse and validate a model config table; `family` picks the dataclass (default "rad")."""
    family = data.get("family", "rad")
    if family not in MODEL_FAMILIES:
        raise ConfigError(f"model.family = {family!r}; allowed: {', '.join(MODEL_FAMILIES)}")
    config = dataclass_from_dict(MODEL_FAMILIES[family], data, "model")
    config.validate()
    return config


# U-Net options added after model files were first shipped: written only when on, so that a model
# that does not use them stays readable by the Stylepass versions before them (which refuse unknown keys).
WRITTEN_ONLY_WHEN_ON = ("demodulated", "edge_guides", "kuwahara_radius")
MAX_KUWAHARA_RADIUS = 16  # within the 32 px of context stylise gives each tile


def model_config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """JSON/TOML-ready dict of a model config (tuples become lists; see WRITTEN_ONLY_WHEN_ON)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
            if not (k in WRITTEN_ONLY_WHEN_ON and v in (False, 0))}


def build_generator(config: ModelConfig) -> nn.Module:
    """Instantiate the generator a validated model config describes (random initial weights)."""
    if isinstance(config, UNetConfig):
        channels = gbuffer_channels(config.gbuffer_passes) if config.gbuffer_passes else 0
        return UNetGenerator(config.base_width, config.depth, channels, config.norm, config.residual,
                             config.demodulated, config.edge_guides, pass_slices(config.gbuffer_passes),
                             config.kuwahara_radius)
    return RADGenerator(
        gbuffer_channels(config.gbuffer_passes),
        config.widths,
        config.blocks,
        config.gbuffer_widths,
        config.num_materials,
        config.gbuffer_encoder_layers,
        config.material_stream_layers,
        config.modulation_per_layer,
        config.modulation_layers,
        config.modulation_kernel,
    )


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item_hint = get_args(hint)[0]
        return tuple(_coerce(item, item_hint, where) for item in value)
    if origin in (Union, types.UnionType):  # Optional[X] / X | None
        if value is None:
            return None
        return _coerce(value, next(a for a in get_args(hint) if a is not type(None)), where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def _check_passes(passes: tuple[str, ...]) -> None:
    try:
        gbuffer_channels(passes)
    except ValueError as error:
        raise ConfigError(f"model.gbuffer_passes: {error}") from None


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ConfigError(f"model.{name} must be >= 1, got {value}")
