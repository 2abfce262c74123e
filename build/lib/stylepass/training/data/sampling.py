"""Deterministic random crops: the batch of step s is a pure function of (seed, s, rank).

So a resumed run sees exactly the batches an uninterrupted run would have seen, whatever the
number of data-loader workers, and each DDP rank draws different crops.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

# A crop key: (pair index, vertical position in [0, 1), horizontal position in [0, 1)).
CropKey = tuple[int, float, float]


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """A CPU generator seeded from (seed, step, rank) only."""
    mixed = (seed * 0x9E3779B1 + step * 1_000_003 + rank * 7919) % (2**63)
    return torch.Generator().manual_seed(mixed)


def crop_keys_for_step(seed: int, step: int, rank: int, batch_size: int, num_items: int) -> list[CropKey]:
    """The `batch_size` crop keys of optimiser step `step` on DDP rank `rank`."""
    generator = step_generator(seed, step, rank)
    indices = torch.randint(num_items, (batch_size,), generator=generator)
    positions = torch.rand(batch_size, 2, generator=generator)
    return [(int(i), float(p[0]), float(p[1])) for i, p in zip(indices, positions, strict=True)]


class StepBatchSampler(Sampler[list[CropKey]]):
    """Yields the crop keys of steps start_step + 1 .. end_step (a DataLoader batch_sampler)."""

    def __init__(
        self, seed: int, start_step: int, end_step: int, batch_size: int, num_items: int, rank: int = 0
    ) -> None:
        self.seed, self.start_step, self.end_step = seed, start_step, end_step
        self.batch_size, self.num_items, self.rank = batch_size, num_items, rank

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[CropKey]]:
        for step in range(self.start_step + 1, self.end_step + 1):
            yield crop_keys_for_step(self.seed, step, self.rank, self.batch_size, self.num_items)


def crop_offset(position: float, length: int, crop: int) -> int:
    """Top/left offset of a `crop`-long window in `length` for a position in [0, 1)."""
    return min(int(position * (length - crop + 1)), length - crop)
