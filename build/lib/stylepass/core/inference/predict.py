"""Running a generator on frames: device handling, channels_last (bf16 on CUDA), optional tiling."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn

from ..io.colour import inverse_tonemap
from ..models.config import ModelConfig
from ..models.inputs import frame_to_tensors
from .tiling import tiled_apply


def resolve_device(requested: str) -> torch.device:
    """"cpu" or "cuda[:N]" to a torch.device; a clear error when CUDA is asked for but missing."""
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"--device {requested} was asked for but CUDA is not available "
            f"(torch {torch.__version__}, no usable GPU); use --device cpu"
        )
    if requested != "cpu" and not requested.startswith("cuda"):
        raise RuntimeError(f"unknown device {requested!r}; use cpu or cuda")
    return torch.device(requested)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; a no-op context on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict(
    model: nn.Module,
    image: torch.Tensor,
    gbuffers: torch.Tensor,
    material_id: torch.Tensor,
    tile: int | None = None,
    overlap: int = 32,
    context: int = 0,
) -> torch.Tensor:
    """Run `model` (in eval mode) on a batch and return (B, 3, H, W) float32 clamped to [0, 1].

    image (B, 3, H, W) model range, gbuffers (B, C, H, W), material_id (B, H, W), all on the
    model's device. tile: process in overlapping tiles of this size (None: whole frame);
    context: pixels around each tile the model also sees (see :func:`.tiling.tiled_apply`).
    """
    model.eval()
    device = image.device
    # channels_last on every device: cuDNN and oneDNN convolutions prefer it, and the per-pixel
    # channel norm then reduces over contiguous memory (results agree to float rounding)
    image = image.contiguous(memory_format=torch.channels_last)
    gbuffers = gbuffers.contiguous(memory_format=torch.channels_last)
    with autocast_for(device):
        if tile is None:
            out = model(image, gbuffers, material_id).float()
        else:
            align = int(getattr(model, "multiple", 1))
            out = tiled_apply(model, (image, gbuffers, material_id), tile, overlap, align, context)
    return out.clamp(0.0, 1.0)


def stylise_frame(
    model: nn.Module,
    config: ModelConfig,
    frame: Any,
    tile: int | None = None,
    overlap: int = 32,
    context: int = 0,
) -> np.ndarray:
    """Stylise one G-buffer frame; returns scene-linear RGB, np.float32 (3, H, W), >= 0.

    frame: a ``stylepass.core.io.gbuffer.GBufferFrame`` (or any object with its attributes).
    tile, overlap, context: see :func:`predict`.
    """
    device = next(model.parameters()).device
    tensors = frame_to_tensors(frame, config.gbuffer_passes)
    batch = {k: v[None].to(device) for k, v in tensors.items()}
    out = predict(model, batch["image"], batch["gbuffers"], batch["material_id"], tile, overlap, context)
    return inverse_tonemap(out[0]).cpu().numpy().astype(np.float32)
