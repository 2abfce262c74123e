"""How much one ``stylepass bench`` run measures (from ``--device``, ``--quick`` and
``--compile``), and how a measurement it leaves out is recorded (skipped, over the CPU budget,
out of memory)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

FULL_SIZES = ((512, 512), (1080, 1920), (2160, 3840))  # (H, W)
QUICK_SIZES = ((32, 32), (32, 64))
CPU_BUDGET_S = 10.0  # CPU: skip a frame or step estimated to take longer than this
Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much to measure, from ``--device``, ``--quick`` and ``--compile``."""

    device: torch.device
    quick: bool
    compile: bool
    sizes: tuple[tuple[int, int], ...]
    baseline_sizes: tuple[tuple[int, int], ...]
    warmup: int
    repeats: int
    baseline_repeats: int  # the baselines are slow: fewer repeats
    train_crop: int
    train_batch: int
    train_repeats: int
    worker_sizes: tuple[tuple[int, int], ...]
    worker_repeats: int

    @classmethod
    def for_run(cls, device: torch.device, quick: bool = False, compile: bool = False) -> Settings:
        """The settings of a full or ``--quick`` run on `device`."""
        if quick:
            return cls(device, True, compile, QUICK_SIZES, QUICK_SIZES[:1], 1, 2, 1, 32, 1, 1, QUICK_SIZES[:1], 2)
        if device.type == "cuda":
            return cls(device, False, compile, FULL_SIZES, FULL_SIZES, 5, 20, 5, 256, 16, 10, FULL_SIZES[1:2], 5)
        return cls(device, False, compile, FULL_SIZES, FULL_SIZES, 1, 3, 2, 256, 16, 2, FULL_SIZES[:2], 2)

    def describe(self) -> dict[str, Any]:
        """The settings as they go into the JSON."""
        cuda = self.device.type == "cuda"
        return {
            "dtype": "bfloat16 autocast" if cuda else "float32",
            "channels_last": cuda,
            "cudnn_benchmark": cuda,
            "compile": self.compile,
            "tf32_convolutions": bool(torch.backends.cudnn.allow_tf32) if cuda else None,
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32) if cuda else None,
            "quick": self.quick,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "baseline_repeats": self.baseline_repeats,
            "sizes": [size_label(size) for size in self.sizes],
            "baseline_sizes": [size_label(size) for size in self.baseline_sizes],
            "train_crop": self.train_crop,
            "train_batch": self.train_batch,
            "train_repeats": self.train_repeats,
            "worker_sizes": [size_label(size) for size in self.worker_sizes],
            "cpu_budget_s": None if cuda or self.quick else CPU_BUDGET_S,
        }


def size_label(size: tuple[int, int]) -> str:
    """(H, W) -> "WxH" (the way frame sizes are usually written)."""
    return f"{size[1]}x{size[0]}"


def padded_pixels(size: tuple[int, int], multiple: int) -> int:
    """Pixels the model computes on for a (H, W) frame padded to `multiple`."""
    return math.ceil(size[0] / multiple) * multiple * math.ceil(size[1] / multiple) * multiple



def skipped(entry: dict[str, Any], reason: str, log: Log) -> dict[str, Any]:
    """`entry` marked as skipped for `reason` (logged)."""
    log(f"{entry.get('model', '')} {entry.get('size', '')}: skipped ({reason})")
    return {**entry, "skipped": reason}


def over_cpu_budget(estimate_s: float, per: str) -> str | None:
    """Why a CPU measurement estimated at `estimate_s` seconds per `per` ("frame", "step") is
    skipped, or None when it fits the budget."""
    if estimate_s <= CPU_BUDGET_S:
        return None
    return (f"estimated {estimate_s:.0f} s per {per} on this CPU, above the {CPU_BUDGET_S:.0f} s budget; "
            "measure it on a GPU")


def out_of_memory(device: torch.device) -> str:
    """Free the cache after an out-of-memory error; the reason to record."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return f"out of memory on {device}"
