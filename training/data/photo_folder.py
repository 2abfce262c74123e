"""A user's folder of photographs made ready as the target domain of unpaired (photoreal) training.

:func:`prepare_photos` reads every photo of a folder (and its subfolders) with Pillow and writes
each usable one as a linear EXR that :class:`.unpaired_dataset.TargetPatchIndex` reads:

* **Exposure matched.** Photos are display images: decoded to linear they never pass 1, while
  renders are scene-linear HDR. One factor for the whole set scales the photos' linear values so
  that their log-average luminance equals the renders' (:func:`log_average_luminance`); they are
  written as linear EXR, as the trainer reads target images.
* **Any size, never distorted.** A photo is scaled (Lanczos, aspect ratio kept) so that its
  shorter side is ``short_side`` pixels, the render frames' shorter side by default, so a
  training crop covers about as much of a photo's view as of a render's. Photos are only ever
  made smaller: a smaller photo is kept at its size, since an enlarged one would teach the
  discriminator that blur is real.
* **Converted:** JPEG EXIF orientation applied; an embedded colour profile (Adobe RGB, Display
  P3, CMYK) converted to sRGB; 16-bit, CMYK, palette and YCbCr images made 8-bit RGB; an alpha
  channel that is opaque everywhere dropped.
* **Skipped, each with its reason** (:attr:`PreparedPhotos.skipped`): greyscale images (also RGB
  files without colour: the model would learn to drain colour), cut-outs with transparent pixels
  (not a photographed scene), and photos whose shorter side is below the training crop.
* **Refused** (:class:`PhotoFolderError`, exit code 2): a missing folder, one without any image,
  files that cannot be decoded (all named at once, so the folder is fixed in one go), and a
  folder where no photo is usable.

Files whose names start with ``.`` (macOS ``._`` resource forks, thumbnails caches) and files of
other types (camera RAW, sidecars) are ignored. The prepared folder holds ``NNNNN.exr`` and
``photos.json`` (the settings, the exposure factor, each photo's source and sizes, and a fingerprint of the source
folder: names, sizes and modification times), written as a whole or not at all.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps

from stylepass.blender_addon.contract.atomic_files import write_folder_atomic, write_json_atomic
from stylepass.blender_addon.contract.dataset_layout import DatasetError
from stylepass.core.io.colour import decode_srgb

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
MANIFEST = "photos.json"
GREYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_GREY_CHROMA = 6  # 8-bit levels: a photo whose 99th-percentile max-min channel spread is at most this is grey
_SHOWN = 8  # files named in one message at most
_ORIENTATION = 0x0112  # the EXIF tag


class PhotoFolderError(DatasetError):
    """The photo folder cannot be used; the message names the files and what to do (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class PreparedPhoto:
    """One photo as prepared: its source (relative to the folder), EXR name and sizes (W, H)."""

    source: str
    prepared: str
    source_size: tuple[int, int]
    size: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class PreparedPhotos:
    """A prepared photo folder (see the module docstring)."""

    folder: Path  # the EXRs and photos.json
    photos: list[PreparedPhoto]
    skipped: list[tuple[str, str]]  # (source relative to the folder, why)
    reused: bool  # True: an earlier preparation of the same photos and settings was kept
    exposure: float  # the factor the photos' linear values were scaled by to match the renders


class _Skip(Exception):
    """A readable photo that is not used; the message says why."""


ProgressCallback = Callable[[int, int], None]  # (photos read so far, photos in all)


def list_photos(folder: Path) -> list[Path]:
    """Image files (by suffix, case-insensitive) under `folder`, sorted, hidden names left out.

    Raises PhotoFolderError when the folder is missing or holds none, naming the types it takes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PhotoFolderError(f"photo folder not found: {folder} (give --photos a folder of photographs)")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p.relative_to(folder)))
    photos = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    if not photos:
        others = sorted({p.suffix.lower() or "(no suffix)" for p in files})
        found = f"; it holds {len(files)} other file(s) ({', '.join(others[:6])})" if files else " (it is empty)"
        raise PhotoFolderError(
            f"{folder} holds no photographs{found}: put JPEG, PNG, TIFF, WebP or BMP photos in it "
            f"({', '.join(PHOTO_SUFFIXES)}; camera RAW files must be developed to one of these first)"
        )
    return photos


def folder_fingerprint(folder: Path, photos: Sequence[Path]) -> list[list[Any]]:
    """[relative path, bytes, modification time in ns] of each photo: what a resume compares."""
    return [[p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in photos]


def load_photo(path: Path, short_side: int, min_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One photo as display sRGB, (H, W, 3) uint8, its shorter side scaled down to `short_side`;
    also the file's own size (W, H).

    Raises _Skip (usable file, unused photo) or OSError/ValueError (cannot be decoded).
    """
    with Image.open(path) as opened:
        width, height = source_size = opened.size
        scale = min(1.0, short_side / min(width, height))
        if opened.format == "JPEG" and scale < 1.0:  # decode at a power-of-two reduction: much faster
            opened.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        opened.load()
        turned = opened.getexif().get(_ORIENTATION) in (5, 6, 7, 8)  # shown a quarter turn round
        image = ImageOps.exif_transpose(opened)
    image = _to_srgb(image)
    if image.mode in GREYSCALE_MODES:
        raise _Skip("greyscale")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if "A" in image.getbands() or "a" in image.getbands():
        alpha = np.asarray(image.getchannel(image.getbands()[-1]))
        if int(alpha.min()) < 255:
            raise _Skip("has transparent pixels (a cut-out, not a photographed scene): flatten it to use it")
    image = image.convert("RGB")
    # The target size comes from the file's own size (turned as the image was), not from the JPEG
    # draft's rounded one, so the aspect ratio is the photo's to within a pixel.
    width, height = source_size[::-1] if turned else source_size
    scale = min(1.0, short_side / min(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if min(image.size) < min_side:
        raise _Skip(f"{image.size[0]}x{image.size[1]}, smaller than the training crop ({min_side} px a side)")
    rgb = np.asarray(image)
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    if float(np.percentile(spread, 99)) <= _GREY_CHROMA:
        raise _Skip("greyscale (an RGB file without colour)")
    return rgb, source_size


def _to_srgb(image: Image.Image) -> Image.Image:
    """The image in sRGB when it carries another ICC profile (Adobe RGB, P3, CMYK); else as it is.

    A profile Pillow's LittleCMS cannot use is ignored (the pixels are then taken as sRGB).
    """
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image.convert("RGB") if image.mode in ("CMYK", "YCbCr", "LAB", "HSV") else image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(source) or "").lower():
            return image.convert("RGB") if image.mode == "CMYK" else image
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=mode)
        return converted if converted is not None else image
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image.convert("RGB") if image.mode == "CMYK" else image


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _settings(source: Path, short_side: int, min_side: int) -> dict[str, Any]:
    return {"source": str(Path(source).resolve()), "short_side": short_side, "min_side": min_side}


def read_manifest(prepared: Path) -> dict[str, Any] | None:
    """The photos.json of a prepared folder, or None when there is none (or it is unreadable)."""
    try:
        manifest = json.loads((Path(prepared) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def log_average_luminance(linear: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Reinhard's key of an image: exp(mean(log(1e-4 + Y))), Y the Rec. 709 luminance of linear
    RGB (3, H, W) >= 0, over the pixels of `mask` (H, W) bool when given (all of them otherwise)."""
    luminance = np.tensordot(np.asarray([0.2126, 0.7152, 0.0722], np.float32), linear, axes=1)
    values = luminance[mask] if mask is not None else luminance.ravel()
    if values.size == 0:
        return 0.0
    return float(np.exp(np.mean(np.log(1e-4 + np.maximum(values, 0.0)))))


def prepare_photos(
    source: Path,
    prepared: Path,
    short_side: int,
    min_side: int,
    render_key: float,
    *,
    must_reuse: bool = False,
    on_progress: ProgressCallback | None = None,
) -> PreparedPhotos:
    """Write the usable photos of `source` to the folder `prepared` (see the module docstring).

    short_side: photos are scaled down so their shorter side is this (pixels); min_side: photos
    whose shorter side ends up below this (the training crop) are skipped. render_key: the
    renders' log-average luminance (:func:`log_average_luminance`): the photos, decoded from sRGB
    to linear, are scaled by one factor so that theirs equals it, and written as linear EXR
    (``NNNNN.exr``). Without it the photos (linear values at most 1) would all be darker than the
    renders' highlights in the models' range, and the discriminator would only teach the
    generator to darken. A `prepared` folder made from the same photos (same names, sizes,
    modification times) and settings is kept as it is (``reused``). must_reuse (a resumed run):
    refuse instead of preparing anew when the photos or settings changed. Raises PhotoFolderError.
    """
    source, prepared = Path(source), Path(prepared)
    if min_side < 1 or short_side < min_side:
        raise PhotoFolderError(f"the photo size ({short_side} px) must be at least the training crop ({min_side} px)")
    if not (math.isfinite(render_key) and render_key > 0):
        raise PhotoFolderError(f"the renders are black (log-average luminance {render_key}): check the render dataset")
    photos = list_photos(source)
    record = {**_settings(source, short_side, min_side), "render_key": round(render_key, 6),
              "fingerprint": folder_fingerprint(source, photos)}
    earlier = read_manifest(prepared)
    if earlier is not None and all(earlier.get(key) == value for key, value in record.items()):
        return _from_manifest(prepared, earlier)
    if must_reuse:
        same_photos = earlier is not None and earlier.get("fingerprint") == record["fingerprint"]
        what = "the photo size or the renders' exposure" if same_photos else "the photos"
        raise PhotoFolderError(
            f"{what} changed since this run was started from {source} (compared with {prepared / MANIFEST}): "
            "resume with the same photos, renders and options, or start a new run with another --out"
        )

    def build(folder: Path) -> PreparedPhotos:
        entries: list[PreparedPhoto] = []
        keys: list[float] = []
        skipped: list[tuple[str, str]] = []
        damaged: list[str] = []
        for done, path in enumerate(photos, start=1):  # 1: decode, scale, check; keep 8-bit PNGs
            name = path.relative_to(source).as_posix()
            try:
                rgb, source_size = load_photo(path, short_side, min_side)
            except _Skip as reason:
                skipped.append((name, str(reason)))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
                damaged.append(f"{name} ({error})")
            else:
                stem = f"{len(entries):05d}"
                Image.fromarray(rgb).save(folder / f"{stem}.png", format="PNG", compress_level=1)
                keys.append(log_average_luminance(_linear(rgb)))
                entries.append(PreparedPhoto(name, f"{stem}.exr", source_size, (rgb.shape[1], rgb.shape[0])))
            if on_progress is not None:
                on_progress(done, len(photos))
        if damaged:
            raise PhotoFolderError(
                f"{len(damaged)} of the {len(photos)} images in {source} cannot be read: {_listed(damaged)}; "
                "remove them or save them again (then run the same command)"
            )
        if not entries:
            raise PhotoFolderError(
                f"none of the {len(photos)} images in {source} can be used: "
                f"{_listed([f'{name}: {why}' for name, why in skipped])}"
            )
        photo_key = float(np.exp(np.mean(np.log(np.maximum(keys, 1e-4)))))
        exposure = render_key / photo_key
        for entry in entries:  # 2: linear, exposure-matched EXRs
            png = folder / entry.prepared.replace(".exr", ".png")
            with Image.open(png) as image:
                rgb = np.asarray(image)
            write_linear_exr(folder / entry.prepared, _linear(rgb) * np.float32(exposure))
            png.unlink()
        write_json_atomic(folder / MANIFEST, {
            **record,
            "photo_key": round(photo_key, 6),
            "exposure": round(exposure, 6),
            "photos": [dataclasses.asdict(entry) for entry in entries],
            "skipped": [list(item) for item in skipped],
        })
        return PreparedPhotos(prepared, entries, skipped, reused=False, exposure=exposure)

    return write_folder_atomic(prepared, build)


def _linear(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (3, H, W) float32 linear in [0, 1]."""
    return np.ascontiguousarray(decode_srgb(rgb.astype(np.float32).transpose(2, 0, 1) / 255.0), dtype=np.float32)


def write_linear_exr(path: Path, linear: np.ndarray) -> None:
    """Write linear RGB (3, H, W) as a half-float, ZIP-compressed EXR (channels R, G, B)."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    pixels = np.ascontiguousarray(linear.transpose(1, 2, 0), dtype=np.float16)
    OpenEXR.File(header, {"RGB": pixels}).write(str(path))


def _from_manifest(prepared: Path, manifest: dict[str, Any]) -> PreparedPhotos:
    photos = [
        PreparedPhoto(p["source"], p["prepared"], _size(p["source_size"]), _size(p["size"])) for p in manifest["photos"]
    ]
    if not all((prepared / p.prepared).is_file() for p in photos):
        raise PhotoFolderError(f"{prepared} lacks some of its prepared photos: delete {prepared} and run again")
    skipped = [(item[0], item[1]) for item in manifest["skipped"]]
    return PreparedPhotos(prepared, photos, skipped, reused=True, exposure=float(manifest["exposure"]))


def _size(pair: Sequence[int]) -> tuple[int, int]:
    return int(pair[0]), int(pair[1])


def _listed(items: Sequence[str]) -> str:
    shown = "; ".join(items[:_SHOWN])
    return shown + (f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
