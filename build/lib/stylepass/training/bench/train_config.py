"""Throughput of one training config on a device: inference time per frame, training steps/s,
peak GPU memory (the whole suite, with baselines, is ``stylepass bench``: :mod:`.run`). Random
tensors of the config's shapes stand in for data, and the training step is the training loop's
own :class:`..loop.step.TrainingStep`, so the figures are those of ``stylepass train`` without data
loading::

    python -m stylepass.training.bench.train_config CONFIG [--device cuda] [--frame 1080x1920] [--steps 20]

prints one JSON object (see :class:`BenchmarkResult`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from stylepass.core.inference.predict import resolve_device
from stylepass.core.models.config import build_generator

from ..loop.config import TrainConfig, load_config
from .timing import median_ms, peak_memory, predict_call, synthetic_batch, training_step, training_step_ms


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


def run_benchmark(
    config: TrainConfig, device: torch.device, frame: tuple[int, int] = (1080, 1920), steps: int = 20, warmup: int = 3
) -> BenchmarkResult:
    """Measure inference on one `frame`-sized frame and `steps` training steps."""
    torch.manual_seed(config.train.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    generator = build_generator(config.model)
    t = config.train
    with peak_memory(device) as memory:
        step = training_step(config, generator, device)
        batch = synthetic_batch(config.model, t.batch_size, t.crop_size, t.crop_size, device)
        step_ms = training_step_ms(step, batch, steps, warmup, device)
        frame_batch = synthetic_batch(config.model, 1, *frame, device)
        inference_ms = median_ms(predict_call(generator, frame_batch), max(3, steps // 4), 1, device)
    return BenchmarkResult(
        device=str(device),
        family=config.model.family,
        generator_parameters=sum(p.numel() for p in generator.parameters()),
        frame=frame,
        inference_ms=inference_ms,
        batch_size=t.batch_size,
        crop_size=t.crop_size,
        train_steps_per_s=1000.0 / step_ms,
        peak_memory_mib=memory["peak_mib"],
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
    parser = argparse.ArgumentParser(
        prog="python -m stylepass.training.bench.train_config", description=__doc__.split("\n\n")[0]
    )
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
