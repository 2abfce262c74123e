"""The figures a preset's card adds to the training run's own: the untouched input's scores on the
validation split, and the model's speed on this device."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from stylepass.core.inference.predict import predict, resolve_device
from stylepass.core.models.inputs import gbuffer_channels
from stylepass.core.models.serialization import load_model
from stylepass.training.data.paired_dataset import PairedDataset
from stylepass.training.evaluate.metrics import psnr, ssim
from stylepass.training.loop.trainer import validation_items

SPEED_SIZE = 512  # the speed is measured on SPEED_SIZE x SPEED_SIZE frames
SPEED_RUNS = 5  # timed runs after one warm-up; the median is reported


def input_baseline(dataset: Path, max_size: int) -> dict[str, float]:
    """Mean PSNR (dB, capped at 100) and SSIM of the untouched input against the target over the
    dataset's ``val`` split, cropped as validation crops it (``train.val_max_size``: ``max_size``, 0 = full
    frames). Returns ``{"pairs", "psnr", "ssim"}``."""
    val = PairedDataset(dataset, "val", ())
    sums = {"psnr": 0.0, "ssim": 0.0}
    for batch in validation_items(val, max_size):
        image, target = batch["image"].float(), batch["target"].float()
        sums["psnr"] += float(psnr(image, target).clamp(max=100.0).sum())
        sums["ssim"] += float(ssim(image, target).sum())
    return {"pairs": len(val), **{name: total / max(1, len(val)) for name, total in sums.items()}}


def inference_speed(model_dir: Path, device_name: str) -> dict[str, Any]:
    """Milliseconds per SPEED_SIZE² frame of the model in ``model_dir`` on ``device_name`` ("cpu", "cuda"):
    the median of SPEED_RUNS whole-frame runs on random inputs after one warm-up. Returns ``{"ms",
    "device", "threads"}`` (the torch device and its CPU thread count)."""
    device = resolve_device(device_name)
    model, config = load_model(model_dir, device)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, SPEED_SIZE, SPEED_SIZE, generator=generator).to(device)
    gbuffers = torch.rand(1, gbuffer_channels(config.gbuffer_passes), SPEED_SIZE, SPEED_SIZE,
                          generator=generator).to(device)
    ids = torch.zeros(1, SPEED_SIZE, SPEED_SIZE, dtype=torch.long, device=device)
    times = []
    with torch.no_grad():
        for run in range(SPEED_RUNS + 1):
            start = time.perf_counter()
            predict(model, image, gbuffers, ids)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if run:
                times.append((time.perf_counter() - start) * 1000.0)
    return {"ms": sorted(times)[len(times) // 2], "device": str(device), "threads": torch.get_num_threads()}
