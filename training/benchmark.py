"""Throughput of a training config on a device: inference time per frame, training steps/s,
peak GPU memory. Random tensors of the config's shapes stand in for data, and the training step
is the training loop's own :class:`.step.TrainingStep`, so the figures are those of
``stylepass train`` without data loading::

    python -m stylepass.training.benchmark CONFIG [--device cuda] [--frame 1080x1920] [--steps 20]

prints one JSON object (see :class:`BenchmarkResult`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from stylepass.core.models.config import build_generator
from stylepass.core.models.inference import predict, resolve_device
from stylepass.core.models.inputs import gbuffer_channels
from stylepass.core.models.patchgan import PatchGANDiscriminator

from .config import TrainConfig, load_config
from .step import Batch, GeneratorLosses, TrainingStep


@dataclasses.dataclass(frozen=True)
class BenchmarkResult:
    """Measured figures (times are medians over the timed repeats)."""

    device: str
    family: str
    generator_parameters: int
    frame: tuple[int, int]  # (H, W) of the inference frame
    inference_ms: float  # one frame, batch 1, eval mode (bf16 + channels_last on CUDA)
    batch_size: int
    crop_size: int
    train_steps_per_s: float  # generator + discriminator steps of train.batch_size crops
    peak_memory_mib: float | None  # CUDA only


def synthetic_batch(config: TrainConfig, batch: int, height: int, width: int, device: torch.device) -> Batch:
    """Random inputs and targets shaped like a training batch, on `device`."""
    channels = gbuffer_channels(config.model.gbuffer_passes)
    return {
        "image": torch.rand(batch, 3, height, width, device=device),
        "gbuffers": torch.rand(batch, channels, height, width, device=device),
        "material_id": torch.randint(0, 16, (batch, height, width), device=device),
        "target": torch.rand(batch, 3, height, width, device=device),
    }


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> float:
    """Median wall time of `fn` over `repeats` calls after `warmup` untimed ones (CUDA-synchronised)."""
    times = []
    for index in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_benchmark(
    config: TrainConfig, device: torch.device, frame: tuple[int, int] = (1080, 1920), steps: int = 20, warmup: int = 3
) -> BenchmarkResult:
    """Measure inference on one `frame`-sized frame and `steps` training steps."""
    torch.manual_seed(config.train.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    generator = build_generator(config.model).to(device)
    paired = config.data.mode == "paired"
    discriminator = None
    if config.loss.adversarial > 0:
        d = config.discriminator
        discriminator = PatchGANDiscriminator(6 if paired else 3, d.base_width, d.n_layers).to(device)
    if device.type == "cuda":
        for module in filter(None, (generator, discriminator)):
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    t = config.train
    optimizers = {"generator": torch.optim.Adam(generator.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))}
    if discriminator is not None:
        optimizers["discriminator"] = torch.optim.Adam(discriminator.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))

    def ignore(losses: dict[str, torch.Tensor], step: int) -> None:
        del losses, step

    step = TrainingStep(generator, discriminator, optimizers, GeneratorLosses(config.loss, device), paired, device, ignore)
    batch = synthetic_batch(config, t.batch_size, t.crop_size, t.crop_size, device)
    generator.train()
    step_seconds = median_seconds(lambda: step(batch, 0), steps, warmup, device)
    frame_batch = synthetic_batch(config, 1, *frame, device)
    inference_seconds = median_seconds(
        lambda: predict(generator, frame_batch["image"], frame_batch["gbuffers"], frame_batch["material_id"]),
        max(3, steps // 4),
        1,
        device,
    )
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return BenchmarkResult(
        device=str(device),
        family=config.model.family,
        generator_parameters=sum(p.numel() for p in generator.parameters()),
        frame=frame,
        inference_ms=1000.0 * inference_seconds,
        batch_size=t.batch_size,
        crop_size=t.crop_size,
        train_steps_per_s=1.0 / step_seconds,
        peak_memory_mib=peak,
    )


def parse_frame(text: str) -> tuple[int, int]:
    """"1080x1920" (H x W) to (1080, 1920)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame size {text!r}: expected HxW, e.g. 1080x1920") from None
    return height, width


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print the figures as JSON; 1 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m stylepass.training.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="training config (TOML)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frame", type=parse_frame, default=(1080, 1920), help="inference frame HxW")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    args = parser.parse_args(argv)
    try:
        result = run_benchmark(load_config(args.config), resolve_device(args.device), args.frame, args.steps)
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(dataclasses.asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
