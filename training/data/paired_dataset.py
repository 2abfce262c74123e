"""Paired dataset: G-buffer EXR inputs and target images listed in ``pairs.jsonl``.

Layout of a dataset folder (read with
:func:`stylepass.blender_addon.contract.dataset_layout.read_pairs`)::

    DATASET/pairs.jsonl   one JSON object a line:
        {"input": "frames/0001.exr", "target": "targets/0001.png", "split": "train", "scene": "kitchen"}

``input`` is a G-buffer EXR read by ``stylepass.core.io.gbuffer.read_gbuffer`` (sidecar JSON beside
it); ``target`` is ``.exr`` (linear) or ``.png`` (sRGB 8-bit), same size as the input; ``split`` is
"train" or "val". Paths are relative to DATASET. For unpaired training (:mod:`.unpaired_dataset`)
``target`` may be left out: only the inputs are used.

Items are dicts of tensors (no batch dim): ``image`` (3, H, W) tone-mapped beauty in [0, 1),
``gbuffers`` (C, H, W) (see stylepass.core.models.inputs.stack_gbuffers), ``material_id`` (H, W)
long, ``target`` (3, H, W) in [0, 1). Indexing with a crop key (index, y, x) from
:mod:`.sampling` returns a random ``crop_size`` crop; an int index returns the full frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from stylepass.blender_addon.contract.dataset_layout import PAIRS_NAME, DatasetError, read_pairs
from stylepass.core.io.gbuffer import missing_passes
from stylepass.core.models.inputs import frame_to_tensors

from .image_io import read_target_image
from .sampling import CropKey, crop_offset

FrameReader = Callable[[Path], Any]
TargetReader = Callable[[Path], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class PairRecord:
    """One line of pairs.jsonl with paths made absolute."""

    input: Path
    target: Path | None  # None only when read without targets
    split: str
    scene: str
    peer: Path | None = None  # the recipe's [peer] render (evaluation sets of enhance recipes)
    seconds: dict[str, float | None] | None = None  # render wall times: input, peer, target


def pair_records(root: Path, require_target: bool = True) -> list[PairRecord]:
    """The checked rows of DATASET/pairs.jsonl (:func:`read_pairs`) with absolute paths."""
    root = Path(root)
    return [PairRecord(root / row["input"], root / row["target"] if require_target else None, row["split"],
                       str(row["scene"]), root / row["peer"] if row.get("peer") else None, row.get("seconds"))
            for row in read_pairs(root, require_target)]


def default_frame_reader(path: Path) -> Any:
    """Read a G-buffer export with stylepass.core.io.gbuffer.read_gbuffer (DatasetError if unusable)."""
    from stylepass.core.io.gbuffer import GBufferError, read_gbuffer

    try:
        return read_gbuffer(path)
    except GBufferError as error:  # missing pass, damaged file, missing sidecar ...
        raise DatasetError(str(error)) from None


class PairedDataset(Dataset):
    """One split of a paired dataset; see the module docstring for items and layout."""

    def __init__(
        self,
        root: Path,
        split: str,
        passes: Sequence[str],
        crop_size: int | None = None,
        frame_reader: FrameReader = default_frame_reader,
        target_reader: TargetReader = read_target_image,
        with_targets: bool = True,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.passes = tuple(passes)
        self.crop_size = crop_size
        self.frame_reader = frame_reader
        self.target_reader = target_reader
        self.with_targets = with_targets
        self.records = [r for r in pair_records(self.root, with_targets) if r.split == split]
        absent = [str(p) for r in self.records for p in (r.input, r.target) if p is not None and not p.is_file()]
        if absent:
            shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
            raise DatasetError(f"{self.root}: {len(absent)} file(s) listed in {PAIRS_NAME} are missing: {shown}")

    def __len__(self) -> int:
        return len(self.records)

    def check_passes(self) -> None:
        """Read the first frame and raise DatasetError naming any pass the model needs but lacks."""
        if self.records:
            self._read_frame(self.records[0])

    def load_pair(self, index: int) -> dict[str, torch.Tensor]:
        """The full-frame item of pair `index` (without "target" when read without targets)."""
        record = self.records[index]
        item = frame_to_tensors(self._read_frame(record), self.passes)
        if record.target is None:
            return item
        target = self.target_reader(record.target)
        if tuple(target.shape) != tuple(item["image"].shape):
            raise DatasetError(
                f"{record.target}: target is {tuple(target.shape[-2:])} but input {record.input} "
                f"is {tuple(item['image'].shape[-2:])} (H, W); they must match"
            )
        item["target"] = target
        return item

    def __getitem__(self, key: int | CropKey) -> dict[str, torch.Tensor]:
        if isinstance(key, int):
            return self.load_pair(key)
        index, y, x = key
        item = self.load_pair(index)
        if self.crop_size is None:
            return item
        height, width = item["image"].shape[-2:]
        size = self.crop_size
        if height < size or width < size:
            raise DatasetError(
                f"{self.records[index].input} is {height}x{width}, smaller than the crop size {size}; "
                "lower train.crop_size or drop the frame"
            )
        top, left = crop_offset(y, height, size), crop_offset(x, width, size)
        return {k: v[..., top : top + size, left : left + size].contiguous() for k, v in item.items()}

    def _read_frame(self, record: PairRecord) -> Any:
        frame = self.frame_reader(record.input)
        lacking = missing_passes(frame, self.passes)
        if lacking:
            raise DatasetError(
                f"{record.input} lacks the pass(es) the model needs: {', '.join(lacking)} "
                f"(model passes: {', '.join(self.passes) or 'none'}); re-export the dataset with them "
                "or change model.gbuffer_passes"
            )
        return frame
