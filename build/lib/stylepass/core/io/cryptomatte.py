"""Decode a Cryptomatte layer into per-pixel names (Blender-free).

Cryptomatte stores, per pixel and rank, a 32-bit name hash (as float bits) and a coverage.
The EXR header's manifest maps names to hashes, so no hashing is needed here: the rank-0
(highest coverage) hash of each pixel is looked up in the manifest.
Spec: Friedman & Jones, "Cryptomatte" (Psyop, 2015).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .exr_file import ExrChannels


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def manifest_for(header: dict[str, Any], layer: str) -> dict[str, int] | None:
    """``{name: hash}`` of the Cryptomatte layer ``layer`` (e.g. ``ViewLayer.CryptoMaterial``)."""
    for key, value in header.items():
        if key.startswith("cryptomatte/") and key.endswith("/name") and _text(value) == layer:
            raw = header.get(key[: -len("name")] + "manifest")
            if raw is None:
                return None
            return {name: int(hex_hash, 16) for name, hex_hash in json.loads(_text(raw)).items()}
    return None


def rank0_names(exr: ExrChannels, layer: str) -> tuple[np.ndarray, list[str]] | None:
    """Per-pixel index into a name list for the highest-coverage entry of ``layer``.

    Returns ``(index, names)`` where ``index`` is an (H, W) int32 array with -1 for pixels
    whose hash is not in the manifest (background), or None when the layer is absent.
    """
    rank0 = exr.channels.get(f"{layer}00.r")
    if rank0 is None:
        rank0 = exr.channels.get(f"{layer}00.R")
    manifest = manifest_for(exr.header, layer)
    if rank0 is None or manifest is None:
        return None
    hashes = np.ascontiguousarray(rank0, dtype=np.float32).view(np.uint32)
    names = sorted(manifest)
    lookup = {manifest[name]: i for i, name in enumerate(names)}
    index = np.full(hashes.shape, -1, dtype=np.int32)
    for value in np.unique(hashes):
        found = lookup.get(int(value))
        if found is not None:
            index[hashes == value] = found
    return index, names
