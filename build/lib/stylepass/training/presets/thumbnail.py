"""A preset's ``thumbnail.png``: input | output | target of one validation pair, side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from stylepass.core.io.atomic_image import save_png_atomic
from stylepass.core.io.colour import encode_srgb, to_rgb8
from stylepass.core.io.exr_file import read_exr
from stylepass.core.io.gbuffer import read_gbuffer
from stylepass.core.io.preview_images import exr_rgb

GAP = 4  # white pixels between the panels
MIN_HEIGHT = 256  # small frames are enlarged by a whole factor (nearest neighbour) towards this height


def standard_view(linear: np.ndarray) -> np.ndarray:
    """Scene-linear (3, H, W) RGB as Blender's Standard view shows it: clipped to [0, 1] and sRGB-encoded,
    as (H, W, 3) uint8. (The stylise PNG previews tone-map instead, which greys out whites.)"""
    return to_rgb8(encode_srgb(np.nan_to_num(linear)))


def write_thumbnail(frame: Path, output: Path, target: Path, out: Path) -> None:
    """Write ``out`` (PNG, atomically): the beauty of the G-buffer export ``frame``, the stylised EXR
    ``output`` and the ``target`` (EXR in the Standard view, PNG/JPEG as stored) in a row."""
    if target.suffix.lower() == ".exr":
        target_rgb = standard_view(exr_rgb(read_exr(target)))
    else:
        with Image.open(target) as image:
            target_rgb = np.asarray(image.convert("RGB"))
    panels = [standard_view(read_gbuffer(frame).beauty), standard_view(exr_rgb(read_exr(output))), target_rgb]
    height = max(p.shape[0] for p in panels)
    gap = np.full((height, GAP, 3), 255, np.uint8)
    row = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    scale = max(1, MIN_HEIGHT // height)
    picture = Image.fromarray(row).resize((row.shape[1] * scale, row.shape[0] * scale), Image.Resampling.NEAREST)
    save_png_atomic(out, np.asarray(picture))
