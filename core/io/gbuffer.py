"""Read a Stylepass G-buffer export into typed arrays (Blender-free).

A frame is an EXR written by the add-on plus its sidecar JSON (see
``stylepass.blender_addon.contract.export_format``). :func:`read_gbuffer` returns a
:class:`GBufferFrame` whose arrays have fixed shapes, dtypes and ranges, whichever
Blender version (4.5 single-part or 5.x multi-part EXR) and engine wrote it:

============== ================ ===================================================
field          shape, dtype      values
============== ================ ===================================================
beauty         (3,H,W) float32  scene-linear HDR RGB, >= 0 (can be far above 1)
albedo         (3,H,W) float32  diffuse colour, [0, 1]
glossy_albedo  (3,H,W) float32  glossy (Eevee: specular) colour, [0, 1]: the colour
                                of metals, whose diffuse colour is black; None in
                                exports made before Stylepass exported it
normal         (3,H,W) float32  camera space (+X right, +Y up, +Z towards the
                                viewer), unit length where valid, 0 elsewhere
depth          (H,W) float32    distance from the camera in scene units where
                                valid, 0 elsewhere (never Blender's 1e10)
valid          (H,W) bool       geometry was hit and every pass is finite
material_id    (H,W) int32      ``Material.pass_index`` per pixel, 0 = none
                                (Eevee: also transparent surfaces it leaves
                                out of its Cryptomatte)
motion         (4,H,W) float32  Blender's Vector pass in pixels (previous x, y,
                                next x, y), or None when not exported
============== ================ ===================================================

Non-finite values in any pass are set to 0, marked invalid and reported with a
:class:`GBufferWarning` (in ``glossy_albedo``, which few models read, they are only set to 0, or 1
for +Inf); nothing non-finite or 1e10-sized reaches a network.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stylepass.blender_addon.contract.atomic_files import read_jsonl
from stylepass.blender_addon.contract.export_format import MANIFEST_NAME, SCHEMA_VERSION, pass_spec

from . import cryptomatte
from .exr_file import ExrChannels, read_exr

if TYPE_CHECKING:
    import torch

FAR_FRACTION = 0.999  # depth at or beyond this fraction of clip_end is background (Eevee 4.5)
BACKGROUND_DEPTH = 1e9  # Cycles and Eevee 5.x write 1e10 for background


class GBufferError(RuntimeError):
    """An export cannot be read; the message names the file and what to do."""


class MissingPassError(GBufferError):
    """The EXR lacks a pass the caller needs."""


class GBufferWarning(UserWarning):
    """Something was repaired while reading (non-finite values)."""


@dataclass
class GBufferFrame:
    """One exported frame as arrays (see the module docstring for shapes and ranges)."""

    path: Path
    meta: dict[str, Any]
    beauty: np.ndarray
    albedo: np.ndarray
    normal: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    material_id: np.ndarray
    motion: np.ndarray | None = None
    glossy_albedo: np.ndarray | None = None
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.depth.shape

    def to_tensors(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The arrays as tensors: float32 images (C,H,W), ``depth`` and ``valid`` (1,H,W),
        ``material_id`` int64 (H,W), ``motion`` and ``glossy_albedo`` only when present."""
        import torch

        tensors = {
            "beauty": torch.from_numpy(self.beauty),
            "albedo": torch.from_numpy(self.albedo),
            "normal": torch.from_numpy(self.normal),
            "depth": torch.from_numpy(self.depth)[None],
            "valid": torch.from_numpy(self.valid)[None],
            "material_id": torch.from_numpy(self.material_id.astype(np.int64)),
        }
        for name in ("motion", "glossy_albedo"):
            if (array := getattr(self, name)) is not None:
                tensors[name] = torch.from_numpy(array)
        return {name: tensor.to(device) for name, tensor in tensors.items()}


def sidecar_path(exr_path: Path) -> Path:
    """The sidecar JSON next to an export EXR."""
    return Path(exr_path).with_suffix(".json")


def read_sidecar(path: Path) -> dict[str, Any]:
    """Load and check a sidecar."""
    try:
        meta = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise GBufferError(f"sidecar not found: {path}; the frame was not finished, export it again") from exc
    except (OSError, ValueError) as exc:
        raise GBufferError(f"sidecar {path} is not readable JSON: {exc}; export the frame again") from exc
    if not isinstance(meta, dict):
        raise GBufferError(f"sidecar {path} holds a JSON {type(meta).__name__}, not the object an export writes; "
                           "export the frame again")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise GBufferError(f"sidecar {path} has schema version {version!r}; this Stylepass reads "
                           f"version {SCHEMA_VERSION}: export again with this version")
    return meta


def _pass(exr: ExrChannels, prefix: str, name: str) -> np.ndarray | None:
    spec = pass_spec(name)
    for layer in spec.channel_layers:
        found = exr.layer(f"{prefix}{layer}", spec.channels)
        if found is not None:
            return found
    return None


def _require(exr: ExrChannels, prefix: str, name: str) -> np.ndarray:
    found = _pass(exr, prefix, name)
    if found is None:
        spec = pass_spec(name)
        layers = " or ".join(f"'{prefix}{layer}'" for layer in spec.channel_layers)
        raise MissingPassError(f"{exr.path} has no {name} pass (looked for {layers}); "
                               "run Stylepass > Set up passes in Blender and export again")
    return found


def _material_ids(exr: ExrChannels, prefix: str, meta: dict[str, Any],
                  valid: np.ndarray, repaired: dict[str, int]) -> np.ndarray:
    index = _pass(exr, prefix, "material_index")
    if index is not None:
        _sanitise("material_index", index, valid, repaired)
        return np.rint(index[0]).astype(np.int32)
    decoded = cryptomatte.rank0_names(exr, f"{prefix}CryptoMaterial")
    if decoded is None:
        raise MissingPassError(f"{exr.path} has neither a Material Index nor a Cryptomatte material "
                               "pass; run Stylepass > Set up passes in Blender and export again")
    pixel_names, names = decoded
    by_name = {row["name"]: int(row["id"]) for row in meta.get("materials", [])}
    table = np.array([by_name.get(name, 0) for name in names] + [0], dtype=np.int32)
    return table[pixel_names]  # index -1 (background) picks the trailing 0


def _sanitise(name: str, array: np.ndarray, valid: np.ndarray, repaired: dict[str, int]) -> None:
    finite = np.isfinite(array) if array.ndim == 2 else np.isfinite(array).all(axis=0)
    bad = ~finite
    count = int(bad.sum())
    if count:
        repaired[name] = count
        valid &= finite
        array[..., bad] = 0.0


def _camera_space_normals(normal_world: np.ndarray, meta: dict[str, Any], valid: np.ndarray) -> np.ndarray:
    """World-space normals (3, H, W) to unit camera-space normals, 0 where invalid or degenerate."""
    rotation = np.asarray(meta["camera"]["world_to_camera"], dtype=np.float32)[:3, :3]
    normal = (rotation @ normal_world.reshape(3, -1)).reshape(normal_world.shape)
    length = np.sqrt(np.einsum("chw,chw->hw", normal, normal))
    usable = valid & (length > 1e-6)
    normal /= np.where(usable, length, np.float32(1.0))
    normal *= usable
    return normal


def read_gbuffer(exr_path: str | Path) -> GBufferFrame:
    """Read one exported frame (EXR plus the sidecar beside it).

    Raises:
        GBufferError: the EXR or sidecar is missing, damaged or of another schema.
        MissingPassError: a required pass is not in the EXR.
    Warns:
        GBufferWarning: when non-finite values were found and masked.
    """
    exr_path = Path(exr_path)
    if not exr_path.is_file():  # before the sidecar, so the error names the file asked for
        raise GBufferError(f"EXR file not found: {exr_path}; check the path or export the frame again")
    meta = read_sidecar(sidecar_path(exr_path))
    try:
        exr = read_exr(exr_path)
    except RuntimeError as exc:
        raise GBufferError(f"{exc}; export the frame again") from exc
    prefix = f"{meta.get('view_layer', 'ViewLayer')}."
    beauty = _require(exr, prefix, "beauty")[:3]
    albedo = _require(exr, prefix, "albedo")
    normal_world = _require(exr, prefix, "normal")
    depth = _require(exr, prefix, "depth")[0]
    motion = _pass(exr, prefix, "motion")
    glossy_albedo = _pass(exr, prefix, "glossy_albedo")
    height, width = depth.shape
    if [width, height] != list(meta.get("resolution", [width, height])):
        raise GBufferError(f"{exr_path} is {width}x{height} but its sidecar says "
                           f"{meta['resolution'][0]}x{meta['resolution'][1]}; export the frame again")
    valid = np.ones((height, width), dtype=bool)
    repaired: dict[str, int] = {}
    material_id = _material_ids(exr, prefix, meta, valid, repaired)
    for name, array in (("beauty", beauty), ("albedo", albedo), ("normal", normal_world), ("depth", depth),
                        *((("motion", motion),) if motion is not None else ())):
        _sanitise(name, array, valid, repaired)
    if glossy_albedo is not None:  # most models do not read it: its holes are zeroed, not masked for all
        np.nan_to_num(glossy_albedo, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    if repaired:
        detail = ", ".join(f"{name}: {count} px" for name, count in repaired.items())
        warnings.warn(GBufferWarning(f"{exr_path}: non-finite values set to 0 and masked ({detail})"),
                      stacklevel=2)

    clip_end = float(meta["camera"]["clip_end"])
    valid &= (depth > 0) & (depth < min(BACKGROUND_DEPTH, clip_end * FAR_FRACTION))
    depth *= valid  # the arrays are this function's own copies (ExrChannels.layer stacks), so in place
    material_id *= valid
    return GBufferFrame(
        path=exr_path,
        meta=meta,
        beauty=np.maximum(beauty, 0.0, out=beauty),
        albedo=np.clip(albedo, 0.0, 1.0, out=albedo),
        normal=_camera_space_normals(normal_world, meta, valid),
        depth=depth,
        valid=valid,
        material_id=material_id,
        motion=motion,
        glossy_albedo=None if glossy_albedo is None else np.clip(glossy_albedo, 0.0, 1.0, out=glossy_albedo),
        repaired=repaired,
    )


def exported_frames(folder: str | Path) -> list[Path]:
    """EXR paths of the finished frames of an export folder, by frame number (from the manifest)."""
    folder = Path(folder)
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise GBufferError(f"{folder} is not a Stylepass export folder (no {MANIFEST_NAME})")
    rows = {}
    for row in read_jsonl(manifest):
        name, frame = row.get("exr"), row.get("frame")
        if not isinstance(name, str) or isinstance(frame, bool) or not isinstance(frame, int):
            raise GBufferError(f"{manifest} has a line without a frame number and EXR name: {row}; export again")
        if Path(name).name != name or not name.endswith(".exr"):
            raise GBufferError(f"{manifest} names {name!r}: an export's frames are EXR files in its own folder, "
                               "never a path elsewhere")
        rows[frame] = folder / name
    return [rows[frame] for frame in sorted(rows)]


def iter_export(folder: str | Path) -> Iterator[GBufferFrame]:
    """Read every finished frame of an export folder in frame order."""
    for path in exported_frames(folder):
        yield read_gbuffer(path)


def missing_passes(frame: Any, passes: Sequence[str]) -> list[str]:
    """Names among `passes` (and "material_id", "beauty", "valid") that `frame` lacks (attribute
    missing or None); `frame` is a :class:`GBufferFrame` or any object with its attributes."""
    wanted = [*passes, "material_id", "beauty", "valid"]
    return [name for name in wanted if getattr(frame, name, None) is None]
