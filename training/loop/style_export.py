"""What train-style writes for people to look at and use: the preview sheet and the model dir.

Preview: per row (a keyframe, an unpainted frame) input | output (| painting), each tile shown as
the template the artist painted over, rewritten atomically while training. Model dir:
``model.safetensors`` + ``config.json`` (:mod:`stylepass.core.models.serialization`),
``style.json`` (what it was trained from and how) and ``preview.png``; replaced as a whole
(built beside it under a temporary name, then renamed: ``atomic_files.write_folder_atomic``), so a
reader never sees half a model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylepass.blender_addon.contract.atomic_files import write_folder_atomic, write_json_atomic
from stylepass.core.inference.onnx_export import export_onnx
from stylepass.core.inference.predict import autocast_for
from stylepass.core.io.atomic_image import save_png_atomic
from stylepass.core.io.colour import inverse_tonemap
from stylepass.core.io.model_files import ONNX_MODEL, source_digest
from stylepass.core.io.preview_images import linear_to_srgb8, tile_grid
from stylepass.core.models.config import UNetConfig
from stylepass.core.models.serialization import save_model

PREVIEW_FILE = "preview.png"
STYLE_CARD = "style.json"
PREVIEW_TILE = 256  # preview tiles are scaled down to at most this many pixels a side


def _display(model_range: torch.Tensor) -> np.ndarray:
    """(3, H, W) model range -> (H', W', 3) uint8 sRGB, scaled to at most PREVIEW_TILE a side.

    Shown as the template the artist painted over (``stylepass keyframe template``: Reinhard
    tone map, then sRGB), so a painting looks in the preview as it does in the paint program.
    """
    rgb8 = linear_to_srgb8(inverse_tonemap(model_range.float().cpu()).numpy())
    image = Image.fromarray(rgb8)
    image.thumbnail((PREVIEW_TILE, PREVIEW_TILE), Image.Resampling.LANCZOS)
    return np.asarray(image)


@torch.no_grad()
def write_preview(
    path: Path, generator: torch.nn.Module, rows: list[tuple[str, dict[str, torch.Tensor]]], device: torch.device
) -> None:
    """Rewrite the preview sheet atomically: per row, input | output (| painting when it has one)."""
    generator.eval()
    tiles = []
    for _, item in rows:
        batch = {k: v[None].to(device) for k, v in item.items()}
        with autocast_for(device):
            out = generator(batch["image"], batch["gbuffers"], batch["material_id"]).float().clamp(0, 1)
        tiles.append([_display(item["image"]), _display(out[0])]
                     + ([_display(item["target"])] if "target" in item else []))
    generator.train()
    sheet = tile_grid(tiles, ["input", "output", "painting"], [label for label, _ in rows])
    save_png_atomic(Path(path), sheet)


def export_style(
    generator: torch.nn.Module, config: UNetConfig, model_dir: Path, card: dict[str, Any], preview: Path
) -> Path:
    """Write the model dir (weights, `config`, model.onnx for ONNX Runtime, style.json, a copy of
    the `preview` sheet) and swap it into place; returns `model_dir`."""

    def write_files(staged: Path) -> None:
        save_model(generator.cpu(), config, staged)
        export_onnx(generator.cpu(), config, staged / ONNX_MODEL, source_digest(staged))
        write_json_atomic(staged / STYLE_CARD, card)
        if preview.is_file():
            shutil.copyfile(preview, staged / PREVIEW_FILE)

    write_folder_atomic(Path(model_dir), write_files)
    return Path(model_dir)
