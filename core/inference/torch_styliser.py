"""The torch runtime of :class:`~stylepass.core.inference.stylise.Styliser`: a model folder's
``model.safetensors`` + ``config.json`` run by torch (CUDA with bf16 autocast, or the CPU).

ONNX Runtime (:mod:`.onnx_styliser`) is the default; this runtime is what training and its
evaluation use, and ``--engine torch`` asks for it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io.gbuffer import GBufferFrame
from ..io.model_files import model_id
from ..models.config import ConfigError, ModelConfig
from ..models.serialization import ModelFileError, load_model
from .predict import resolve_device, stylise_frame
from .stylise import FrameOutOfMemory, StyliseError, Styliser, check_device_name, tile_context


def pick_device(requested: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu`` or ``cuda[:N]`` as a torch.device.

    Raises StyliseError: kind ``no_cuda`` when CUDA is asked for but unavailable, ``bad_request``
    for an unknown device name.
    """
    check_device_name(requested)
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return resolve_device(requested)
    except RuntimeError as error:
        raise StyliseError(str(error), "no_cuda" if requested.startswith("cuda") else "bad_request") from None


class _CountingModel(nn.Module):
    """A generator that calls ``on_call()`` after each forward pass (one per tile)."""

    def __init__(self, model: nn.Module, on_call: Callable[[], None]) -> None:
        super().__init__()
        self.inner = model
        self.multiple = int(getattr(model, "multiple", 1))
        self.on_call = on_call

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.inner(*inputs)
        self.on_call()
        return out


@dataclass
class TorchStyliser(Styliser):
    """A generator in torch. model: in eval mode on `torch_device` (any nn.Module with the
    generators' signature ``model(image, gbuffers, material_id)``; tests pass one that runs out
    of memory); config: its model config."""

    model: nn.Module | None = None
    config: ModelConfig | None = None
    torch_device: torch.device = torch.device("cpu")

    def _run(self, frame: GBufferFrame, tile: int | None, tile_done: Callable[[int], None]) -> np.ndarray:
        assert self.model is not None and self.config is not None
        done = 0

        def tile_finished() -> None:
            nonlocal done
            done += 1
            tile_done(done)

        try:
            return stylise_frame(_CountingModel(self.model, tile_finished), self.config, frame, tile, self.overlap,
                                 self.context)
        except torch.OutOfMemoryError:  # torch.cuda.OutOfMemoryError
            raise FrameOutOfMemory from None

    def release_memory(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()

    def close(self) -> None:
        self.model = None
        gc.collect()
        self.release_memory()


def load_torch_styliser(model_dir: Path, device: str, tile: int | None, name: str | None) -> TorchStyliser:
    """Load ``model_dir``'s safetensors weights onto a device (see :func:`pick_device`).

    Raises StyliseError: ``bad_model`` (missing, not safetensors, bad config, weights that do not
    match the config), ``no_cuda``, ``bad_request`` (unknown device, tile too small).
    """
    torch_device = pick_device(device)
    try:
        model, config = load_model(model_dir, torch_device)
    except (ModelFileError, ConfigError) as error:
        raise StyliseError(f"cannot load the model in {model_dir}: {error}", "bad_model") from None
    multiple = int(getattr(model, "multiple", 1))
    return TorchStyliser(
        name=name or model_dir.name, model_id=model_id(model_dir), family=config.family,
        passes=tuple(config.gbuffer_passes), multiple=multiple, device=str(torch_device),
        runtime=f"torch {torch.__version__}", tile=tile, context=tile_context(multiple), model=model, config=config,
        torch_device=torch_device)
