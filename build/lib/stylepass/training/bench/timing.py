"""Timing helpers shared by the benchmarks (:mod:`.train_config`, :mod:`.run`).

On CUDA a call is timed with CUDA events recorded around it, with no host synchronisation inside
the timed loop (one synchronisation at the end reads all events); on the CPU with
``time.perf_counter``. Peak memory is CUDA's ``max_memory_allocated`` (None on the CPU).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from stylepass.core.inference.predict import predict
from stylepass.core.models.config import ModelConfig
from stylepass.core.models.inputs import gbuffer_channels
from stylepass.core.models.patchgan import PatchGANDiscriminator

from ..loop.config import TrainConfig
from ..loop.step import Batch, GeneratorLosses, TrainingStep


def call_times_ms(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Milliseconds of each of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) for start, end in events]
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - began))
    return times


def median_ms(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> float:
    """Median milliseconds per call of `fn` (see :func:`call_times_ms`)."""
    return statistics.median(call_times_ms(fn, repeats, warmup, device))


def predict_call(model: torch.nn.Module, inputs: Batch, *tiling: int) -> Callable[[], torch.Tensor]:
    """A call of ``predict`` on a :func:`synthetic_batch` (``image``, ``gbuffers``, ``material_id``) to time;
    `tiling` is predict's optional ``tile, overlap, context``."""
    return lambda: predict(model, inputs["image"], inputs["gbuffers"], inputs["material_id"], *tiling)


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float | None]]:
    """Context whose yielded dict gets ``peak_mib``: the CUDA peak allocated inside it, None on the CPU."""
    result: dict[str, float | None] = {"peak_mib": None}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    yield result
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        result["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20


def synthetic_batch(
    model: ModelConfig, batch: int, height: int, width: int, device: torch.device, gbuffer_count: int | None = None
) -> Batch:
    """Random inputs and targets shaped like a training batch, on `device`.

    ``image`` and ``target`` (B, 3, H, W) in [0, 1); ``gbuffers`` (B, C, H, W) with C from the
    config's passes (or `gbuffer_count`); ``material_id`` (B, H, W) int64 in [0, 16).
    """
    channels = gbuffer_channels(model.gbuffer_passes) if gbuffer_count is None else gbuffer_count
    return {
        "image": torch.rand(batch, 3, height, width, device=device),
        "gbuffers": torch.rand(batch, channels, height, width, device=device),
        "material_id": torch.randint(0, 16, (batch, height, width), device=device),
        "target": torch.rand(batch, 3, height, width, device=device),
    }


def training_step(
    config: TrainConfig,
    generator: torch.nn.Module,
    device: torch.device,
    discriminator: torch.nn.Module | None = None,
    mixed_precision: bool = True,
    channels_last: bool = True,
) -> TrainingStep:
    """The training loop's own step for `generator` (on `device`, train mode) and its optimisers.

    discriminator: None builds the config's PatchGAN (when loss.adversarial > 0). No finiteness
    check runs (it would synchronise with the GPU). mixed_precision: bf16 autocast on CUDA;
    channels_last: the modules' memory format on CUDA (as the training loop does).
    """
    paired = config.data.mode == "paired"
    if discriminator is None and config.loss.adversarial > 0:
        d = config.discriminator
        discriminator = PatchGANDiscriminator(6 if paired else 3, d.base_width, d.n_layers)
    generator.to(device).train()
    if discriminator is not None:
        discriminator.to(device).train()
    if device.type == "cuda" and channels_last:
        for module in filter(None, (generator, discriminator)):
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    t = config.train
    optimizers = {"generator": torch.optim.Adam(generator.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))}
    if discriminator is not None:
        optimizers["discriminator"] = torch.optim.Adam(discriminator.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))

    def ignore(losses: dict[str, torch.Tensor], step: int) -> None:
        del losses, step

    return TrainingStep(generator, discriminator, optimizers, GeneratorLosses(config.loss, device), paired, device,
                        ignore, mixed_precision=mixed_precision)


def training_step_ms(step: TrainingStep, batch: Batch, repeats: int, warmup: int, device: torch.device) -> float:
    """Median milliseconds of one optimisation step on `batch`."""
    return median_ms(lambda: step(batch, 0), repeats, warmup, device)
