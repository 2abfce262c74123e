"""Write images atomically (temporary file, then rename) with Pillow (Blender-free)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from stylepass.blender_addon.contract.atomic_files import write_atomic


def save_png_atomic(path: Path, rgb8: np.ndarray) -> Path:
    """Save an (H, W, 3) uint8 array as PNG at ``path`` atomically; returns ``path``."""
    write_atomic(path, lambda temp: Image.fromarray(rgb8).save(temp, format="PNG"))
    return path
