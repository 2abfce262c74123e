"""Deployable model directories: ``model.safetensors`` (generator weights) + ``config.json``.

``config.json`` holds ``{"format": "stylepass-model", "version": 1, "model": {...model config...}}``.
Only safetensors files are read; anything else (pickles from torch.save, .pt/.ckpt/.bin files) is
refused before a single byte is deserialised.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from stylepass.blender_addon.contract.atomic_files import write_atomic, write_json_atomic

from ..io.model_files import MODEL_CONFIG, MODEL_WEIGHTS, ModelFileError, check_safetensors_file
from .config import ModelConfig, build_generator, model_config_from_dict, model_config_to_dict

FORMAT_NAME = "stylepass-model"
FORMAT_VERSION = 1


def save_tensors_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` (moved to the CPU, made contiguous) as a safetensors file at `path`, atomically."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_atomic(Path(path), lambda temp: save_file(contiguous, str(temp), metadata=metadata))


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file after :func:`check_safetensors_file`."""
    check_safetensors_file(Path(path))
    return load_file(str(path), device=str(device))


def save_model(model: nn.Module, config: ModelConfig, directory: Path) -> Path:
    """Write a deployable model dir (weights + config), each file atomically. Returns the dir."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(directory / MODEL_WEIGHTS, model.state_dict())
    write_json_atomic(
        directory / MODEL_CONFIG,
        {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": model_config_to_dict(config)},
    )
    return directory


def read_model_config(directory: Path) -> ModelConfig:
    """Parse ``config.json`` of a model dir (strict: unknown keys are errors)."""
    path = Path(directory) / MODEL_CONFIG
    if not path.is_file():
        raise ModelFileError(f"{path} not found: a model dir holds {MODEL_WEIGHTS} and {MODEL_CONFIG}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME or "model" not in data:
        raise ModelFileError(f"{path} is not a stylepass model config (format {FORMAT_NAME!r})")
    if data.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported version {data.get('version')!r}, expected {FORMAT_VERSION}")
    unknown = sorted(set(data) - {"format", "version", "model"})
    if unknown:
        raise ModelFileError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: format, version, model")
    return model_config_from_dict(data["model"])


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensor shapes a safetensors file declares, from its header alone (nothing is loaded)."""
    check_safetensors_file(path)
    with safe_open(str(path), framework="pt") as handle:
        return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}


def load_model(directory: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Load a model dir: returns the generator in eval mode on `device` (channels_last on CUDA)
    and its config."""
    directory = Path(directory)
    if directory.is_file():
        check_safetensors_file(directory)  # a pickle is refused here, with the reason
        raise ModelFileError(
            f"{directory} is a file; give the model dir that holds {MODEL_WEIGHTS} and {MODEL_CONFIG}"
        )
    config = read_model_config(directory)
    weights = directory / MODEL_WEIGHTS
    # The config is checked against the weights' header on a model without storage first: an
    # untrusted config cannot make Stylepass allocate what its weights do not hold.
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in build_generator(config).state_dict().items()}
    declared = weight_shapes(weights)
    if declared != expected:
        wrong = sorted(name for name in expected.keys() & declared.keys() if expected[name] != declared[name])
        raise ModelFileError(
            f"{weights} does not match {MODEL_CONFIG}: missing {sorted(expected.keys() - declared.keys())[:5]}, "
            f"unexpected {sorted(declared.keys() - expected.keys())[:5]}, other shapes "
            + ", ".join(f"{name} {declared[name]} (config: {expected[name]})" for name in wrong[:3])
        )
    state = load_tensors(weights)
    broken = sorted(name for name, tensor in state.items()
                    if tensor.is_floating_point() and not bool(tensor.isfinite().all()))
    if broken:
        raise ModelFileError(f"{weights} holds NaN or Inf weights ({', '.join(broken[:3])}): the training that made "
                             "it diverged; train it again (or resume from an earlier checkpoint)")
    model = build_generator(config)
    model.load_state_dict(state)
    model = model.to(device).eval()
    if torch.device(device).type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model, config
