"""The photoreal run's preview sheet: per validation frame, input | output | the matched photo crop.

The third column is the photo crop the unpaired training would pair with that frame (the
nearest of :class:`..data.unpaired_dataset.TargetPatchIndex` by layout), so a person sees what
the discriminator compared the outputs with. Every tile is shown as ``stylepass stylise``'s PNG
previews show frames: the models' range (Reinhard-mapped linear) through the sRGB curve; the
photo crops went through the same exposure match and tone map as in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylepass.core.inference.predict import autocast_for
from stylepass.core.io.atomic_image import save_png_atomic
from stylepass.core.io.colour import encode_srgb, to_rgb8
from stylepass.core.io.preview_images import tile_grid

from ..data.paired_dataset import FrameReader, PairedDataset, default_frame_reader
from ..data.unpaired_dataset import TargetPatchIndex, patch_descriptor

PREVIEW_TILE = 256  # tiles are scaled down to at most this many pixels a side
COLUMNS = ["input", "output", "matched photo"]

PreviewRow = tuple[str, dict[str, torch.Tensor]]  # (label, full-frame item: image, gbuffers, material_id)


def display_tile(model_range: torch.Tensor, tile: int = PREVIEW_TILE) -> np.ndarray:
    """(3, H, W) in the models' range [0, 1) -> (H', W', 3) uint8 sRGB, at most `tile` a side."""
    rgb8 = to_rgb8(encode_srgb(model_range.detach().float().cpu().numpy()))
    image = Image.fromarray(rgb8)
    image.thumbnail((tile, tile), Image.Resampling.LANCZOS)
    return np.asarray(image)


def spread_indices(length: int, count: int) -> list[int]:
    """Up to `count` distinct indices into `length` items, evenly spread from the first to the last."""
    count = min(count, length)
    return sorted({round(i * (length - 1) / max(1, count - 1)) for i in range(count)})


def preview_rows(
    data_dir: Path, passes: Sequence[str], count: int, max_size: int, frame_reader: FrameReader = default_frame_reader
) -> list[PreviewRow]:
    """Up to `count` frames spread evenly over the dataset's 'val' split (its 'train' split when it
    has none), each centre-cropped to at most `max_size` pixels a side (0: whole frames)."""
    frames = PairedDataset(data_dir, "val", passes, None, frame_reader, with_targets=False)
    if len(frames) == 0:
        frames = PairedDataset(data_dir, "train", passes, None, frame_reader, with_targets=False)
    rows = []
    for index in spread_indices(len(frames), count):
        item = frames.load_pair(index)
        if max_size:
            height, width = item["image"].shape[-2:]
            top, left = max(0, (height - max_size) // 2), max(0, (width - max_size) // 2)
            item = {k: v[..., top : top + max_size, left : left + max_size] for k, v in item.items()}
        record = frames.records[index]
        rows.append((f"{record.scene} {record.input.stem}", item))
    return rows


@torch.no_grad()
def write_photoreal_preview(
    path: Path, generator: torch.nn.Module, rows: Sequence[PreviewRow], photos: TargetPatchIndex,
    device: torch.device,
) -> tuple[int, int]:
    """Write the sheet (PNG, atomically): per row input | output | matched photo; returns its (W, H).

    The photo crop is scaled to the input tile's height (it is square: ``photos.crop_size``).
    """
    generator.eval()
    tiles = []
    for _, item in rows:
        batch = {k: v[None].to(device) for k, v in item.items()}
        with autocast_for(device):
            output = generator(batch["image"], batch["gbuffers"], batch["material_id"]).float().clamp(0, 1)
        shown_input = display_tile(item["image"])
        nearest = photos.nearest(patch_descriptor(item["image"][None].float())[0], 1)
        photo = Image.fromarray(display_tile(photos.crop(int(nearest[0])), photos.crop_size))
        side = shown_input.shape[0]
        tiles.append([shown_input, display_tile(output[0]),
                      np.asarray(photo.resize((side, side), Image.Resampling.LANCZOS))])
    sheet = tile_grid(tiles, COLUMNS, [label for label, _ in rows])
    save_png_atomic(Path(path), sheet)
    return sheet.shape[1], sheet.shape[0]
