"""Unpaired (EPE-style) data: rendered G-buffer crops, each with a matched target-domain crop.

Source frames are the ``input`` entries of ``DATASET/pairs.jsonl`` (``target`` may be absent);
target-domain images are a folder of ``.png`` / ``.exr`` images (photos, paintings, ...) of any
size. Matched-patch sampling (Richter et al. 2021, section 5) makes the discriminator compare
crops with similar layouts: every target image is cut into candidate crops on a half-crop grid,
each summarised by a small layout descriptor (:func:`patch_descriptor`), and each source crop is
paired with one of its `candidates` nearest target crops. EPE matches VGG features; the coarse
luma layout used here needs no network weights and is cheap to index.

Items: ``image``, ``gbuffers``, ``material_id`` as in :mod:`.paired_dataset` (a crop) and
``target`` (3, crop, crop) in [0, 1): the matched target-domain crop (not a ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from stylepass.blender_addon.contract.dataset_layout import DatasetError

from .image_io import read_target_image
from .paired_dataset import FrameReader, PairedDataset, default_frame_reader
from .sampling import CropKey

IMAGE_SUFFIXES = (".png", ".exr")
_LAYOUT_SIZE = 4  # descriptor grid: 4x4 luma cells
_COLOUR_WEIGHT = 0.5  # weight of the mean colour next to the unit-norm layout
_CACHED_IMAGES = 8  # decoded target images kept per process


def patch_descriptor(crops: torch.Tensor) -> torch.Tensor:
    """Layout descriptors of crops (N, 3, h, w) in [0, 1]: (N, 16 + 3).

    16 values: the 4x4 average-pooled luma, mean-subtracted and scaled to unit norm (where the
    light and dark parts are); 3 values: the mean colour, weighted by 0.5.
    """
    luma = crops.mean(dim=1, keepdim=True)
    layout = F.adaptive_avg_pool2d(luma, _LAYOUT_SIZE).flatten(1)
    layout = layout - layout.mean(dim=1, keepdim=True)
    layout = layout / layout.norm(dim=1, keepdim=True).clamp(min=1e-6)
    return torch.cat([layout, _COLOUR_WEIGHT * crops.mean(dim=(2, 3))], dim=1)


def list_target_images(folder: Path) -> list[Path]:
    """Sorted target-domain images in `folder`; DatasetError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"target image folder not found: {folder}")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{folder} holds no target images ({', '.join(IMAGE_SUFFIXES)})")
    return images


class TargetPatchIndex:
    """Candidate crops of the target-domain images and their descriptors, for nearest lookups."""

    def __init__(self, images: Sequence[Path], crop_size: int) -> None:
        self.images = list(images)
        self.crop_size = crop_size
        positions: list[tuple[int, int, int]] = []
        descriptors: list[torch.Tensor] = []
        stride = max(1, crop_size // 2)
        for image_index, path in enumerate(self.images):
            image = read_target_image(path)
            height, width = image.shape[-2:]
            if height < crop_size or width < crop_size:
                raise DatasetError(f"{path} is {height}x{width}, smaller than the crop size {crop_size}")
            tops = sorted({*range(0, height - crop_size + 1, stride), height - crop_size})
            lefts = sorted({*range(0, width - crop_size + 1, stride), width - crop_size})
            crops = [image[:, top : top + crop_size, left : left + crop_size] for top in tops for left in lefts]
            descriptors.append(patch_descriptor(torch.stack(crops)))
            positions += [(image_index, top, left) for top in tops for left in lefts]
        self.positions = positions
        self.descriptors = torch.cat(descriptors)
        self._cache: dict[int, torch.Tensor] = {}  # a few decoded images (picklable for workers)

    def nearest(self, descriptor: torch.Tensor, count: int) -> torch.Tensor:
        """Indices (into `positions`) of the `count` candidates closest to `descriptor` (D,)."""
        distances = (self.descriptors - descriptor[None]).pow(2).sum(dim=1)
        return distances.topk(min(count, len(distances)), largest=False).indices

    def crop(self, position: int) -> torch.Tensor:
        """The candidate crop `position`, (3, crop, crop) in [0, 1)."""
        image_index, top, left = self.positions[position]
        if image_index not in self._cache:
            if len(self._cache) >= _CACHED_IMAGES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[image_index] = read_target_image(self.images[image_index])
        image = self._cache[image_index]
        return image[:, top : top + self.crop_size, left : left + self.crop_size].contiguous()


class UnpairedDataset(Dataset):
    """Source crops from a dataset's inputs, each with a matched target-domain crop."""

    def __init__(
        self,
        root: Path,
        target_images: Path,
        passes: Sequence[str],
        crop_size: int,
        candidates: int = 4,
        seed: int = 0,
        frame_reader: FrameReader = default_frame_reader,
    ) -> None:
        self.source = PairedDataset(root, "train", passes, crop_size, frame_reader, with_targets=False)
        self.index = TargetPatchIndex(list_target_images(target_images), crop_size)
        self.candidates = candidates
        self.seed = seed

    def __len__(self) -> int:
        return len(self.source)

    def check_passes(self) -> None:
        """See :meth:`PairedDataset.check_passes`."""
        self.source.check_passes()

    def __getitem__(self, key: CropKey) -> dict[str, torch.Tensor]:
        item = self.source[key]
        nearest = self.index.nearest(patch_descriptor(item["image"][None])[0], self.candidates)
        generator = torch.Generator().manual_seed(hash((self.seed, *key)) % 2**63)  # same key, same pick
        choice = int(torch.randint(len(nearest), (1,), generator=generator))
        item["target"] = self.index.crop(int(nearest[choice]))
        return item
