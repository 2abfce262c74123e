"""Generators, discriminator, model configs and deployable model files.

Families: ``"unet"`` (pix2pix U-Net styliser) and ``"rad"`` (RAD-conditioned enhancement
generator). Build from a config with :func:`build_generator`; ship with :func:`save_model` /
:func:`load_model` (safetensors + config.json only).
"""

from .config import (
    ConfigError,
    ModelConfig,
    RADConfig,
    UNetConfig,
    build_generator,
    model_config_from_dict,
    model_config_to_dict,
)
from .patchgan import PatchGANDiscriminator
from .rad import RADGenerator
from .serialization import ModelFileError, load_model, save_model
from .unet import UNetGenerator

__all__ = [
    "ConfigError",
    "ModelConfig",
    "ModelFileError",
    "PatchGANDiscriminator",
    "RADConfig",
    "RADGenerator",
    "UNetConfig",
    "UNetGenerator",
    "build_generator",
    "load_model",
    "model_config_from_dict",
    "model_config_to_dict",
    "save_model",
]
