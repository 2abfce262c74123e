"""Arithmetic cost of a generator per frame, counted without running it.

``torch.utils.flop_counter.FlopCounterMode`` counts the floating-point operations of the
convolutions and matrix products of one forward pass (2 per multiply-add), run on the meta
device: shapes only, no memory and no arithmetic, so a 44 M-parameter model at 3840x2160 takes a
fraction of a second even on a small CPU. Element-wise work (norms, activations, resampling) is
not counted; it costs memory traffic rather than arithmetic, which the measured time shows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

META = torch.device("meta")


def meta_model(build: Callable[[], nn.Module]) -> nn.Module:
    """A fresh model from `build` with its weights moved to the meta device (eval mode)."""
    return build().to(META).eval()


def frame_tflop(model: nn.Module, gbuffer_count: int, size: tuple[int, int]) -> float:
    """TFLOP of one forward pass of `model` (on the meta device) on a (H, W) frame.

    The inputs are a batch of one: image (1, 3, H, W), G-buffers (1, gbuffer_count, H, W) and
    material ids (1, H, W); padding to the model's multiple happens inside the model and counts.
    """
    height, width = size
    image = torch.empty(1, 3, height, width, device=META)
    gbuffers = torch.empty(1, gbuffer_count, height, width, device=META)
    material_id = torch.zeros(1, height, width, dtype=torch.long, device=META)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(image, gbuffers, material_id)
    return counter.get_total_flops() / 1e12
