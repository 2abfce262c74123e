"""Run logging: ``RUN/metrics.jsonl`` always; TensorBoard scalars and image grids when installed."""

from __future__ import annotations

import json
import sys
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


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``RUN/metrics.jsonl`` in order."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
