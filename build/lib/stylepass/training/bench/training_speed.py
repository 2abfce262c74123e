"""Training speed of ``stylepass bench``: optimisation steps/s of each preset's training config
(the training loop's own step, bf16 and channels_last on CUDA) and of the float32 pix2pix
reference, at the run's crop and batch size."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import torch

from stylepass.core.models.config import UNetConfig, build_generator

from ..loop.config import TrainConfig
from .baselines import ReferencePatchGAN, ReferenceUNet
from .candidates import TRAIN_BASELINE, UNET_BASELINE, Candidate
from .settings import Log, Settings, out_of_memory, over_cpu_budget, padded_pixels, skipped
from .timing import peak_memory, synthetic_batch, training_step, training_step_ms


def measure_training(candidates: list[Candidate], settings: Settings, log: Log) -> list[dict[str, Any]]:
    """Steps/s of each preset's training config (mixed precision on CUDA) and of the float32
    pix2pix reference, at the run's crop and batch size."""
    device, crop, batch_size = settings.device, settings.train_crop, settings.train_batch
    rows = []
    jobs: list[tuple[str, str, Callable[[], Any], Candidate | None]] = []
    for candidate in candidates:
        if candidate.role == "preset" and candidate.train_config is not None:
            jobs.append((candidate.name, candidate.family, functools.partial(_preset_step, candidate, settings),
                         candidate))
    reference = next((c for c in candidates if c.name == UNET_BASELINE), None)
    jobs.append((TRAIN_BASELINE, "unet", lambda: _reference_step(settings), reference))
    for name, family, make, estimate_from in jobs:
        reference_run = name == TRAIN_BASELINE
        entry = {"model": name, "family": family, "crop": crop, "batch": batch_size,
                 "dtype": "float32" if reference_run or device.type == "cpu" else "bfloat16 autocast",
                 "channels_last": device.type == "cuda" and not reference_run}
        if device.type == "cpu" and not settings.quick:
            if estimate_from is None or estimate_from.seconds_per_pixel is None:
                rows.append(skipped(entry, "its inference was not measured, so its step cannot be estimated", log))
                continue
            # forward + backward ~ 3 forwards per crop, plus the discriminator
            estimate = 3.0 * batch_size * estimate_from.seconds_per_pixel * padded_pixels((crop, crop),
                                                                                           estimate_from.multiple)
            reason = over_cpu_budget(estimate, "step")
            if reason is not None:
                rows.append(skipped(entry, reason, log))
                continue
        try:
            with peak_memory(device) as memory:
                step, batch = make()
                ms = training_step_ms(step, batch, settings.train_repeats, 1, device)
        except torch.OutOfMemoryError:
            rows.append(skipped(entry, out_of_memory(device), log))
            continue
        rows.append({**entry, "ms_per_step": ms, "steps_per_s": 1000.0 / ms, "peak_memory_mib": memory["peak_mib"]})
        log(f"training {name} {crop}x{crop} batch {batch_size}: {1000.0 / ms:.2f} steps/s")
    return rows


def _preset_step(candidate: Candidate, settings: Settings) -> tuple[Any, dict[str, torch.Tensor]]:
    assert candidate.train_config is not None
    config = candidate.train_config
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, batch_size=settings.train_batch, crop_size=settings.train_crop))
    torch.manual_seed(0)
    step = training_step(config, build_generator(config.model), settings.device)
    batch = synthetic_batch(config.model, settings.train_batch, settings.train_crop, settings.train_crop,
                            settings.device)
    return step, _to_memory_format(batch, settings.device.type == "cuda")


def _reference_step(settings: Settings) -> tuple[Any, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    config = TrainConfig(model=UNetConfig())  # pix2pix losses: lsgan + 100 L1; Adam 2e-4, betas (0.5, 0.999)
    step = training_step(config, ReferenceUNet(), settings.device, ReferencePatchGAN(6),
                         mixed_precision=False, channels_last=False)
    batch = synthetic_batch(config.model, settings.train_batch, settings.train_crop, settings.train_crop,
                            settings.device, gbuffer_count=1)
    return step, batch


def _to_memory_format(batch: dict[str, torch.Tensor], channels_last: bool) -> dict[str, torch.Tensor]:
    """4-D tensors of `batch` in channels_last (as the training loop feeds them on CUDA)."""
    if not channels_last:
        return batch
    return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}
