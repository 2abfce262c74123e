"""Reading target images into the model range (see stylepass.core.models.inputs).

* ``.exr``: scene-linear RGB (channels R, G, B, or <layer>.R/.G/.B of the first part that has
  them), NaN/inf set to 0, then tone mapped.
* ``.png``: 8-bit (or 16-bit) sRGB, alpha dropped, decoded to linear, then tone mapped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stylepass.core.io.colour import decode_srgb
from stylepass.core.models.inputs import tonemap


class ImageReadError(ValueError):
    """An image file is missing, of an unsupported type, or lacks RGB channels."""


def read_linear_exr(path: Path) -> np.ndarray:
    """Scene-linear RGB of an EXR as np.float32 (3, H, W), non-finite values set to 0."""
    import OpenEXR

    from stylepass.core.io.exr_file import exr_threads

    with exr_threads(), OpenEXR.File(str(path), separate_channels=True) as exr:
        for part in exr.parts:
            channels = part.channels
            for prefix in ["", *sorted({name.rsplit(".", 1)[0] + "." for name in channels if "." in name})]:
                names = [prefix + c for c in "RGB"]
                if all(name in channels for name in names):
                    rgb = np.stack([np.asarray(channels[n].pixels, dtype=np.float32) for n in names])
                    return np.nan_to_num(rgb, nan=0.0, posinf=0.0, neginf=0.0)
    raise ImageReadError(f"{path}: no R, G, B channels (looked for R/G/B and <layer>.R/G/B)")


def read_srgb_png(path: Path) -> np.ndarray:
    """sRGB values in [0, 1] of a PNG as np.float32 (3, H, W) (grey expanded, alpha dropped)."""
    from PIL import Image

    with Image.open(path) as img:
        if img.mode in ("I;16", "I;16B", "I"):
            data = np.asarray(img, dtype=np.float32) / 65535.0
            return np.repeat(data[None], 3, axis=0)
        data = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(data.transpose(2, 0, 1))


def read_target_image(path: Path) -> torch.Tensor:
    """A target image in the model range: float32 (3, H, W) in [0, 1)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"target image not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".exr", ".png"):
        raise ImageReadError(f"{path}: unsupported target type {suffix!r}; use .exr (linear) or .png (sRGB)")
    try:
        if suffix == ".exr":
            return tonemap(torch.from_numpy(read_linear_exr(path)))
        return tonemap(decode_srgb(torch.from_numpy(read_srgb_png(path))))
    except ImageReadError:
        raise
    except (OSError, ValueError, RuntimeError, SyntaxError) as error:  # PIL and OpenEXR on damaged files
        raise ImageReadError(f"target image {path} is damaged and cannot be read ({error}); "
                             "render or paint it again") from None
