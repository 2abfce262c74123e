"""Turn G-buffers and targets into 8-bit RGB previews a person can look at (Blender-free).

All functions return (H, W, 3) uint8 arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .colour import encode_srgb, to_rgb8
from .exr_file import ExrChannels, ExrReadError, read_exr


def linear_to_srgb8(rgb: np.ndarray) -> np.ndarray:
    """Scene-linear (3, H, W) HDR -> display sRGB: Reinhard tone map x/(1+x), then the sRGB curve."""
    return to_rgb8(encode_srgb(rgb / (1.0 + rgb)))


def albedo_to_rgb8(albedo: np.ndarray) -> np.ndarray:
    """Albedo (3, H, W) in [0, 1], linear -> sRGB 8-bit (no tone map)."""
    return to_rgb8(encode_srgb(albedo))


def normal_to_rgb8(normal: np.ndarray) -> np.ndarray:
    """Unit normals (3, H, W) -> the usual (n + 1) / 2 colours; invalid (zero) pixels black."""
    rgb = np.where(np.any(normal != 0, axis=0), (normal + 1.0) / 2.0, 0.0)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def depth_to_rgb8(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Depth (H, W) -> grey, near bright and far dark, scaled to the valid range; background black."""
    grey = np.zeros(depth.shape, dtype=np.float32)
    if valid.any():
        near, far = float(depth[valid].min()), float(depth[valid].max())
        grey[valid] = 1.0 - (depth[valid] - near) / max(far - near, 1e-6) * 0.85
    return np.repeat((grey * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)


def ids_to_rgb8(ids: np.ndarray) -> np.ndarray:
    """Integer ids (H, W) -> distinct colours (golden-ratio hues); id 0 black."""
    hue = (ids.astype(np.float64) * 0.618033988749895) % 1.0
    k = (np.array([5.0, 3.0, 1.0])[:, None, None] + hue * 6.0) % 6.0
    rgb = 0.9 - 0.6 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    rgb = np.where(ids > 0, rgb, 0.0)
    return (rgb * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def exr_rgb(exr: ExrChannels) -> np.ndarray:
    """The first R, G, B channel triple of an EXR (``R`` or ``<layer>.R``) as (3, H, W) float32."""
    for name in sorted(exr.channels):
        if name == "R" or name.endswith(".R"):
            keys = [name[:-1] + channel for channel in "RGB"]
            if all(key in exr.channels for key in keys):
                return np.stack([exr.channels[key].astype(np.float32) for key in keys])
    raise ExrReadError(f"{exr.path} has no R, G, B channels")


def load_target_rgb8(path: Path) -> np.ndarray:
    """A target image as display RGB: PNG/JPEG as stored, EXR (linear) tone-mapped."""
    if path.suffix.lower() == ".exr":
        rgb = exr_rgb(read_exr(path))
        return linear_to_srgb8(np.maximum(np.nan_to_num(rgb), 0.0))
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def tile_grid(rows: list[list[np.ndarray]], column_titles: list[str], row_labels: list[str]) -> np.ndarray:
    """Lay (H, W, 3) uint8 tiles out in a labelled grid on a dark background; returns (H', W', 3) uint8.

    Column titles go in a header strip, row labels in the top-left corner of each row's first tile.
    """
    height = max(tile.shape[0] for row in rows for tile in row)
    width = max(tile.shape[1] for row in rows for tile in row)
    columns = max(len(row) for row in rows)
    header, gap = 18, 4
    sheet = Image.new("RGB", (columns * (width + gap) + gap, header + len(rows) * (height + gap) + gap), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(column_titles):
        draw.text((gap + column * (width + gap) + 2, 3), title, fill=(230, 230, 230))
    for r, (tiles, label) in enumerate(zip(rows, row_labels, strict=True)):
        for column, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (gap + column * (width + gap), header + r * (height + gap)))
        draw.text((gap + 2, header + r * (height + gap) + 2), label, fill=(255, 255, 0))
    return np.asarray(sheet)
