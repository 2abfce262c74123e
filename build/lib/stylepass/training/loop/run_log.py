"""Run logging: ``RUN/metrics.jsonl`` always; TensorBoard scalars and image grids when installed."""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class RunLogger:
    """Append-only metrics log of one process (use only on rank 0)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self._writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print(
                "note: tensorboard is not installed, so TensorBoard logs are off "
                "(pip install tensorboard); metrics still go to " + str(self.path),
                file=sys.stderr,
            )
        else:
            self._writer = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR))

    @property
    def tensorboard(self) -> bool:
        """True when TensorBoard logs are being written."""
        return self._writer is not None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log named scalars at `step` (one JSON line; one TensorBoard scalar each)."""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **values}, sort_keys=True) + "\n")
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, value, step)

    def images(self, step: int, tag: str, panels: list[torch.Tensor]) -> None:
        """Log panels side by side to TensorBoard: each (3, H, W) in [0, 1], same H (e.g. in|out|target)."""
        if self._writer is not None and panels:
            self._writer.add_image(tag, torch.cat(panels, dim=-1).clamp(0, 1), step)

    def close(self) -> None:
        """Flush and close TensorBoard files."""
        if self._writer is not None:
            self._writer.close()


class StepTimer:
    """Training throughput between log lines, with validation and checkpoint time left out.

    Call :meth:`step` after each optimisation step, wrap other work in :meth:`paused`, and
    :meth:`read` at each log line: ``perf/steps_per_s`` since the previous read, and on CUDA
    ``perf/peak_memory_mib`` (the largest allocation since the run started, weights and
    optimiser states included). The loop reads each step's losses on the host, so wall-clock
    time covers the GPU's work too.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._start = time.perf_counter()
        self._paused = 0.0
        self._steps = 0

    def step(self) -> None:
        """One optimisation step done."""
        self._steps += 1

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time spent inside the block out of the throughput (validation, checkpoints)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - start

    def read(self) -> dict[str, float]:
        """The figures since the previous read (none when no step was done), then start afresh."""
        now = time.perf_counter()
        seconds = now - self._start - self._paused
        figures: dict[str, float] = {}
        if self._steps and seconds > 0:
            figures["perf/steps_per_s"] = self._steps / seconds
            if self.device.type == "cuda":
                figures["perf/peak_memory_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        self._start, self._paused, self._steps = now, 0.0, 0
        return figures


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``RUN/metrics.jsonl`` in order."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def throughput_summary(records: list[dict[str, Any]]) -> dict[str, float]:
    """Training speed of a run from its metrics records (:func:`read_metrics`).

    ``steps_per_s``: the median of ``perf/steps_per_s`` over the log lines after the first (the
    first interval holds the warm-up: cuDNN's autotuning, allocator growth); ``peak_memory_mib``:
    the largest ``perf/peak_memory_mib`` (CUDA runs). Empty when the run logged no throughput.
    """
    rates = [r["perf/steps_per_s"] for r in records if "perf/steps_per_s" in r]
    summary: dict[str, float] = {}
    if rates:
        summary["steps_per_s"] = statistics.median(rates[1:] or rates)
        summary["log_intervals"] = len(rates[1:] or rates)
    peaks = [r["perf/peak_memory_mib"] for r in records if "perf/peak_memory_mib" in r]
    if peaks:
        summary["peak_memory_mib"] = max(peaks)
    return summary
