"""The files of a model folder, without torch: their names, the weights' digest, and the ONNX
file's Stylepass metadata.

A model folder holds ``model.safetensors`` (weights) + ``config.json`` (the model config), which
training and the torch runtime read, and ``model.onnx``, the same generator with its frame
preparation as one graph (:mod:`stylepass.core.inference.onnx_export`), which ONNX Runtime runs.
The ONNX file's metadata records the digest of the weights and config it was exported from, so a
runtime can tell an ONNX file older than the files beside it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylepass.blender_addon.contract.worker_protocol import MODEL_CONFIG, MODEL_WEIGHTS, ONNX_MODEL

# A safetensors header is at most 100 MB (the library's own limit).
_MAX_HEADER = 100_000_000
# Graph inputs every Stylepass ONNX model has (the others depend on the model's passes).
REQUIRED_ONNX_INPUTS = ("beauty",)


class ModelFileError(ValueError):
    """A model file or directory is missing, malformed, or not safetensors."""


def check_safetensors_file(path: Path) -> None:
    """Raise ModelFileError unless `path` starts like a safetensors file.

    A safetensors file is an 8-byte little-endian header length N, then N bytes of JSON starting
    with '{'. Pickles (torch.save) start with 0x80 or are zip archives ('PK').
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model weights not found: {path}")
    with path.open("rb") as handle:
        head = handle.read(9)
    size = path.stat().st_size
    header_len = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else -1
    if len(head) < 9 or head[8:9] != b"{" or not 0 < header_len <= min(_MAX_HEADER, size - 8):
        kind = "a pickle/zip (torch.save) file" if head[:1] == b"\x80" or head[:2] == b"PK" else "not safetensors"
        raise ModelFileError(
            f"refusing to load {path}: it is {kind}. Stylepass only loads safetensors weights "
            "(never pickles); convert it with safetensors.torch.save_file(state_dict, "
            f"'{MODEL_WEIGHTS}') in a trusted environment."
        )


def file_digest(path: Path) -> str:
    """Short sha256 (16 hex digits) of a file: tells models apart (resume, stale ONNX files)."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def source_digest(model_dir: Path) -> str:
    """Short sha256 (16 hex digits) of a model folder's weights and config together: the generator
    they make (config-only settings, such as a Kuwahara radius, change it too)."""
    digest = hashlib.sha256()
    for name in (MODEL_WEIGHTS, MODEL_CONFIG):
        with (Path(model_dir) / name).open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:16]


def model_id(model_dir: Path) -> str:
    """What identifies a model folder's model: :func:`source_digest` of its weights and config,
    else (a folder with model.onnx alone) the digest of its ONNX file."""
    if (Path(model_dir) / MODEL_WEIGHTS).is_file():
        return source_digest(model_dir)
    return file_digest(Path(model_dir) / ONNX_MODEL)


class OnnxModelError(ValueError):
    """An ONNX file that is not a Stylepass model; the message says what is missing."""


@dataclass(frozen=True)
class OnnxModelInfo:
    """What a runtime needs to know of a Stylepass ONNX model, from its metadata and inputs.

    family: "unet" or "rad"; passes: the G-buffer passes it reads (besides beauty);
    multiple: its padding multiple (tiles start on this grid); source_digest: the
    :func:`source_digest` of the weights and config it was exported from (None if not recorded).
    """

    family: str
    passes: tuple[str, ...]
    multiple: int
    source_digest: str | None


def onnx_model_info(path: Path, metadata: dict[str, str], input_names: list[str]) -> OnnxModelInfo:
    """Check a loaded ONNX model is a Stylepass model and read its :class:`OnnxModelInfo`.

    metadata: the model's metadata_props (``session.get_modelmeta().custom_metadata_map``);
    input_names: its graph inputs. Raises OnnxModelError naming what is missing.
    """
    missing_inputs = [name for name in REQUIRED_ONNX_INPUTS if name not in input_names]
    if missing_inputs:
        raise OnnxModelError(
            f"{path} is not a Stylepass model: it lacks the input(s) {', '.join(missing_inputs)} (its inputs: "
            f"{', '.join(input_names) or 'none'}); write one with `stylepass export-model RUN --out DIR --onnx`")
    try:
        config: dict[str, Any] = json.loads(metadata["stylepass.model_config"])
        passes = tuple(str(name) for name in config.get("gbuffer_passes", ()))
        family = str(metadata["stylepass.family"])
        multiple = int(metadata["stylepass.multiple"])
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise OnnxModelError(
            f"{path} lacks Stylepass's metadata ({error}): it was written by another tool or an older Stylepass; "
            "export it again with `stylepass export-model DIR --out DIR --onnx`") from None
    missing_passes = [name for name in passes if name not in input_names]
    if missing_passes or multiple < 1:
        raise OnnxModelError(f"{path} does not match its own metadata: inputs {', '.join(input_names)}, "
                             f"passes {', '.join(passes)}, multiple {multiple}")
    return OnnxModelInfo(family, passes, multiple, metadata.get("stylepass.source_digest"))
