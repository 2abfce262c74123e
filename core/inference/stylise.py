"""Stylise exported G-buffer frames with a trained model (Blender-free).

Used by ``stylepass stylise`` (:mod:`stylepass.core.cli.stylise_command`) and by the worker
process the Blender add-on talks to (:mod:`stylepass.core.inference.worker`).

Colour. A frame's beauty is scene-linear HDR RGB (3, H, W), >= 0. It enters the model through
the model's tone map ``y = x / (1 + x)`` (model range [0, 1)), the model's output is clamped to
[0, 1] and mapped back with the inverse ``x = y / (1 - y)`` (see
:mod:`stylepass.core.models.inputs`), so the result is scene-linear HDR again, in [0, 1e4], and
Blender's view transform applies to it as to any render. It is written as a single-part
half-float EXR with channels R, G, B of the input's size, plus an 8-bit sRGB PNG preview
(:func:`stylepass.core.io.preview_images.linear_to_srgb8`). Both are written atomically.

Memory. Large frames run in overlapping, blended tiles (:mod:`stylepass.core.inference.tiling`).
When the GPU runs out of memory, the frame is tried again with tiles of half the size, down to
the smallest tile the model can use; then :class:`StyliseError` (kind ``out_of_memory``) says so.

Errors are :class:`StyliseError` whose ``kind`` is one of the worker protocol's
``ERROR_KINDS``, so the CLI and the worker map them to exit codes and error replies.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR
import torch
from torch import nn

from stylepass.blender_addon.contract.atomic_files import append_jsonl, partials_of, read_jsonl, write_atomic
from stylepass.blender_addon.contract.worker_protocol import BAD_INPUT_KINDS, ERROR_KINDS

from ..io.atomic_image import save_png_atomic
from ..io.exr_file import write_exr
from ..io.gbuffer import (
    GBufferError,
    GBufferFrame,
    MissingPassError,
    exported_frames,
    read_gbuffer,
    read_sidecar,
    sidecar_path,
)
from ..io.preview_images import linear_to_srgb8
from ..models.config import ConfigError, ModelConfig
from ..models.inputs import missing_passes
from ..models.serialization import MODEL_CONFIG, MODEL_WEIGHTS, ModelFileError, load_model
from .predict import resolve_device, stylise_frame
from .tiling import tile_spans

PRESETS_ENV = "STYLEPASS_PRESETS"  # overrides the presets folder
REPO_PRESETS = Path(__file__).resolve().parents[2] / "presets"
PRESET_MODEL_FOLDER = "model"  # presets/NAME/model/ holds model.safetensors + config.json
OUTPUT_MANIFEST = "manifest.jsonl"  # one line per finished frame in the output folder
OUTPUT_PREFIX = "stylised_"
TILE_OVERLAP = 32  # pixels shared by neighbouring tiles, blended with linear ramps
TILE_CONTEXT = 32  # pixels around a tile the model also sees, so its padding effects fall outside
MIN_TILE = 64
AUTO_TILE_PIXELS = 2048 * 2048  # frames larger than this run in tiles even when none is asked for
AUTO_TILE = 1024
OUT_OF_MEMORY_ERRORS: tuple[type[BaseException], ...] = (torch.OutOfMemoryError,)  # torch.cuda.OutOfMemoryError

TileCallback = Callable[[int, int], None]  # (tiles done, tiles in the frame)
NoteCallback = Callable[[str], None]  # a message worth showing (e.g. the fallback to smaller tiles)


class StyliseError(RuntimeError):
    """Stylisation cannot go on; the message says what to do, ``kind`` is a protocol error kind."""

    def __init__(self, message: str, kind: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}; allowed: {', '.join(ERROR_KINDS)}")
        super().__init__(message)
        self.kind = kind

    @property
    def is_bad_input(self) -> bool:
        """True when the request or the user's files are wrong (fix them; retrying will not help)."""
        return self.kind in BAD_INPUT_KINDS


# ---------------------------------------------------------------------------------------
# models


def presets_dir() -> Path:
    """The presets folder: ``$STYLEPASS_PRESETS`` if set, else ``<repo>/presets``."""
    return Path(os.environ.get(PRESETS_ENV) or REPO_PRESETS)


def resolve_model_dir(model: str | Path | None = None, preset: str | None = None) -> Path:
    """The model dir to load: `model` itself, or ``<presets>/<preset>/model``.

    Raises StyliseError (kind ``bad_model``) when neither or both are given, the preset does not
    exist, or the preset has no trained model yet.
    """
    if (model is None) == (preset is None):
        raise StyliseError("give either a model folder or a preset name (one of them)", "bad_model")
    if model is not None:
        directory = Path(model)
        if not directory.exists():  # a file is explained (or refused, if a pickle) by load_model
            raise StyliseError(f"model folder not found: {directory}; it holds {MODEL_WEIGHTS} and "
                               f"{MODEL_CONFIG} (write one with `stylepass export-model RUN --out DIR`)",
                               "bad_model")
        return directory
    assert preset is not None
    root = presets_dir()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", preset) or not (root / preset).is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise StyliseError(f"no preset {preset!r} in {root}; presets there: {', '.join(known) or 'none'}",
                           "bad_model")
    directory = root / preset / PRESET_MODEL_FOLDER
    if not (directory / MODEL_WEIGHTS).is_file() or not (directory / MODEL_CONFIG).is_file():
        raise StyliseError(
            f"preset {preset!r} has no trained model yet (expected {directory / MODEL_WEIGHTS} and "
            f"{MODEL_CONFIG}): train one with `stylepass train` and write it there with "
            f"`stylepass export-model RUN --out {directory}`, or pass a model folder instead",
            "bad_model",
        )
    return directory


def pick_device(requested: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu`` or ``cuda[:N]`` as a torch.device.

    Raises StyliseError: kind ``no_cuda`` when CUDA is asked for but unavailable, ``bad_request``
    for an unknown device name.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return resolve_device(requested)
    except RuntimeError as error:
        raise StyliseError(str(error), "no_cuda" if requested.startswith("cuda") else "bad_request") from None


def weights_digest(path: Path) -> str:
    """Short sha256 of a weights file: tells outputs of different models apart on resume."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def smallest_tile(model: nn.Module, overlap: int = TILE_OVERLAP) -> int:
    """The smallest tile a model can run in: tiles start on its 2^depth grid and must overlap."""
    return max(MIN_TILE, int(getattr(model, "multiple", 1)) + overlap)


def smaller_tile(tile: int | None, height: int, width: int, floor: int) -> int | None:
    """The tile size to try after running out of memory, or None when the floor is reached.

    The whole frame (tile None, or a tile at least the frame's longer side) counts as a tile of
    its longer side; the next size is the largest power of two below the current one (1080 ->
    1024 -> 512 ...), so tiles stay on every model's 2^depth grid.
    """
    current = min(tile if tile is not None else max(height, width), max(height, width))
    smaller = 1 << ((current - 1).bit_length() - 1) if current > 1 else 0
    return smaller if smaller >= floor else None


def tile_count(height: int, width: int, tile: int | None, overlap: int, align: int) -> int:
    """Number of model calls for a (height, width) frame with this tiling (1 when untiled)."""
    if tile is None:
        return 1
    return len(tile_spans(height, tile, overlap, align)) * len(tile_spans(width, tile, overlap, align))


class _CountingModel(nn.Module):
    """A generator that calls ``on_call()`` after each forward pass (one per tile)."""

    def __init__(self, model: nn.Module, on_call: Callable[[], None]) -> None:
        super().__init__()
        self.inner = model
        self.multiple = int(getattr(model, "multiple", 1))
        self.on_call = on_call

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.inner(*inputs)
        self.on_call()
        return out


@dataclass(frozen=True)
class FrameTimings:
    """Wall-clock seconds of the phases of :meth:`Styliser.stylise_file` for one frame."""

    read_s: float  # the export EXR and sidecar to arrays
    stylise_s: float  # arrays to model tensors on the device, the model, the result back as an array
    write_s: float  # the stylised EXR and the preview PNG, atomically

    @property
    def total_s(self) -> float:
        """All three phases."""
        return self.read_s + self.stylise_s + self.write_s

    def as_reply(self) -> dict[str, float]:
        """``{"read", "stylise", "write"}`` in seconds, rounded to the millisecond (worker replies)."""
        return {"read": round(self.read_s, 3), "stylise": round(self.stylise_s, 3), "write": round(self.write_s, 3)}


@dataclass
class Styliser:
    """A loaded model and how to run it.

    Attributes:
        model: the generator, in eval mode on `device` (any nn.Module with the generators'
            signature ``model(image, gbuffers, material_id)``; tests pass one that runs out of memory).
        config: its model config (family, G-buffer passes).
        device: where it runs.
        name: shown to people (the preset or model folder name).
        model_id: identifies the weights (recorded per finished frame, so a resumed run redoes
            frames another model made).
        tile: tile size asked for (None: whole frame up to AUTO_TILE_PIXELS, then AUTO_TILE).
        overlap: pixels shared by neighbouring tiles.
        context: pixels around each tile the model also sees (a tile of N pixels runs as up
            to N + 2 * context).
    """

    model: nn.Module
    config: ModelConfig
    device: torch.device
    name: str
    model_id: str
    tile: int | None = None
    overlap: int = TILE_OVERLAP
    context: int = TILE_CONTEXT
    min_tile: int = field(init=False)

    def __post_init__(self) -> None:
        self.min_tile = smallest_tile(self.model, self.overlap)
        if self.tile is not None and self.tile < self.min_tile:
            raise StyliseError(f"tile {self.tile} is too small for this model: use {self.min_tile} "
                               "or more (or no tile: the whole frame)", "bad_request")

    def describe(self) -> dict[str, Any]:
        """``{"name", "family", "passes"}`` for people and the worker's load reply."""
        return {"name": self.name, "family": self.config.family, "passes": list(self.config.gbuffer_passes)}

    def first_tile(self, height: int, width: int) -> int | None:
        """The tile size to start with for a (height, width) frame."""
        if self.tile is not None:
            return self.tile
        return AUTO_TILE if height * width > AUTO_TILE_PIXELS else None

    def stylise(self, frame: GBufferFrame, on_tile: TileCallback | None = None,
                on_note: NoteCallback | None = None) -> np.ndarray:
        """Stylise one frame; returns scene-linear RGB, float32 (3, H, W), in [0, 1e4].

        Tiles shrink on out-of-memory (see :func:`smaller_tile`); `on_tile(done, total)` after
        each tile, `on_note(message)` when falling back to smaller tiles.
        Raises StyliseError: ``missing_passes``, ``out_of_memory``.
        """
        missing = missing_passes(frame, self.config.gbuffer_passes)
        if missing:
            raise StyliseError(
                f"{frame.path} lacks the pass(es) model {self.name!r} needs: {', '.join(missing)}; run "
                "Stylepass > Set up passes in Blender (motion: Cycles with motion blur off) and export again",
                "missing_passes",
            )
        height, width = frame.size
        tile = self.first_tile(height, width)
        while True:
            try:
                return self._run(frame, tile, on_tile)
            except OUT_OF_MEMORY_ERRORS:
                pass  # retried below, outside the handler, so the failed attempt's tensors are freed
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            smaller = smaller_tile(tile, height, width, self.min_tile)
            size = f"{tile}px tiles" if tile is not None and tile < max(height, width) else "the whole frame"
            if smaller is None:
                raise StyliseError(
                    f"out of memory on {self.device} for {frame.path} ({width}x{height}) even with "
                    f"{size}; close other programs using the GPU, or run on the CPU (--device cpu)",
                    "out_of_memory")
            if on_note is not None:
                on_note(f"out of memory on {self.device} with {size}; trying {smaller}px tiles")
            tile = smaller

    def _run(self, frame: GBufferFrame, tile: int | None, on_tile: TileCallback | None) -> np.ndarray:
        height, width = frame.size
        total = tile_count(height, width, tile, self.overlap, int(getattr(self.model, "multiple", 1)))
        done = 0

        def tile_finished() -> None:
            nonlocal done
            done += 1
            if on_tile is not None:
                on_tile(done, total)

        return stylise_frame(_CountingModel(self.model, tile_finished), self.config, frame, tile, self.overlap,
                             self.context)

    def stylise_file(self, source: Path, output: Path, preview: Path | None,
                     on_tile: TileCallback | None = None, on_note: NoteCallback | None = None) -> FrameTimings:
        """Read an export EXR (+ sidecar), stylise it, write `output` (EXR) and `preview` (PNG).

        Returns how long each phase took. Raises StyliseError: ``bad_input`` (the frame cannot
        be read), ``missing_passes``, ``out_of_memory``; OSError when an output cannot be written.
        """
        start = time.perf_counter()
        frame = read_frame(source)
        read = time.perf_counter()
        rgb = self.stylise(frame, on_tile, on_note)  # ends with the copy back to the host: synchronised
        stylised = time.perf_counter()
        write_stylised(rgb, Path(output), None if preview is None else Path(preview))
        return FrameTimings(read - start, stylised - read, time.perf_counter() - stylised)


def load_styliser(model_dir: str | Path, device: str = "auto", tile: int | None = None,
                  name: str | None = None) -> Styliser:
    """Load a model dir (see :func:`resolve_model_dir`) onto a device (see :func:`pick_device`).

    Raises StyliseError: ``bad_model`` (missing, not safetensors, bad config, weights that do not
    match the config), ``no_cuda``, ``bad_request`` (unknown device, tile too small).
    """
    model_dir = Path(model_dir)
    torch_device = pick_device(device)
    try:
        model, config = load_model(model_dir, torch_device)
    except (ModelFileError, ConfigError) as error:
        raise StyliseError(f"cannot load the model in {model_dir}: {error}", "bad_model") from None
    return Styliser(model, config, torch_device, name or model_dir.name,
                    weights_digest(model_dir / MODEL_WEIGHTS), tile)


# ---------------------------------------------------------------------------------------
# frames and files


def read_frame(source: Path) -> GBufferFrame:
    """read_gbuffer with its errors as StyliseError (``missing_passes`` or ``bad_input``)."""
    try:
        return read_gbuffer(source)
    except MissingPassError as error:
        raise StyliseError(str(error), "missing_passes") from None
    except GBufferError as error:
        raise StyliseError(str(error), "bad_input") from None


def write_exr_atomic(path: Path, rgb: np.ndarray) -> None:
    """Write scene-linear RGB (3, H, W) as a single-part half-float EXR (channels R, G, B, ZIP)."""
    half = np.clip(rgb, 0.0, np.finfo(np.float16).max).astype(np.float16)
    write_atomic(path, lambda temp: write_exr(temp, {name: half[index] for index, name in enumerate("RGB")}))


def write_stylised(rgb: np.ndarray, output: Path, preview: Path | None) -> None:
    """The stylised EXR (scene-linear, half float) and, if asked, its sRGB PNG preview."""
    write_exr_atomic(output, rgb)
    if preview is not None:
        save_png_atomic(preview, linear_to_srgb8(rgb))


def exr_rgb_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an EXR with R, G, B channels (header only), or None if it is not one."""
    try:
        header = OpenEXR.File(str(path), header_only=True).parts[0].header
    except (RuntimeError, ValueError, OSError, IndexError):
        return None
    if not {"R", "G", "B"} <= {channel.name for channel in header.get("channels", [])}:
        return None
    low, high = header["dataWindow"]
    return int(high[1] - low[1] + 1), int(high[0] - low[0] + 1)


@dataclass(frozen=True)
class FrameJob:
    """One frame to stylise: the export EXR and where its results go."""

    source: Path
    output: Path  # OUT/stylised_<frame>.exr
    preview: Path  # OUT/stylised_<frame>.png


def output_stem(source: Path) -> str:
    """``stylised_<frame>`` for an export's ``frame_<frame>.exr``; ``stylised_<stem>`` otherwise."""
    stem = Path(source).stem
    return OUTPUT_PREFIX + stem.removeprefix("frame_")


def frame_jobs(source: str | Path, out_dir: str | Path) -> list[FrameJob]:
    """The frames of `source` (an export EXR, or an export folder: every frame of its manifest).

    Raises StyliseError (``bad_input``) when `source` is neither.
    """
    source, out_dir = Path(source), Path(out_dir)
    if source.is_dir():
        try:
            sources = exported_frames(source)
        except GBufferError as error:
            raise StyliseError(str(error), "bad_input") from None
    elif source.is_file():
        if not sidecar_path(source).is_file():
            raise StyliseError(f"{source} has no sidecar {sidecar_path(source).name} beside it: give an "
                               "EXR written by Stylepass's export, or its folder", "bad_input")
        sources = [source]
    else:
        raise StyliseError(f"input not found: {source}; give an export EXR or an export folder", "bad_input")
    return [FrameJob(path, out_dir / f"{output_stem(path)}.exr", out_dir / f"{output_stem(path)}.png")
            for path in sources]


def is_finished(job: FrameJob, model_id: str, finished: dict[str, str | None]) -> bool:
    """Whether `job` was stylised by this model and both files are complete and of the input's size.

    finished: output EXR name -> model id (None on a line without one), from the output manifest.
    """
    if finished.get(job.output.name) != model_id or not job.preview.is_file():
        return False
    try:
        width, height = read_sidecar(sidecar_path(job.source))["resolution"]
    except (GBufferError, KeyError, ValueError, TypeError):
        return False
    return exr_rgb_size(job.output) == (height, width)


@dataclass
class StyliseSummary:
    """Frames stylised and skipped (already finished) by :func:`stylise_jobs`."""

    stylised: list[FrameJob] = field(default_factory=list)
    skipped: list[FrameJob] = field(default_factory=list)


FrameCallback = Callable[[int, int, FrameJob, str], None]  # (done, total, job, "stylised"|"skipped")


def stylise_jobs(styliser: Styliser, jobs: list[FrameJob], out_dir: Path,
                 on_frame: FrameCallback | None = None, on_tile: TileCallback | None = None,
                 on_note: NoteCallback | None = None) -> StyliseSummary:
    """Stylise every job in order, resumably: frames finished by the same model are skipped.

    A finished frame gets a line in ``out_dir/manifest.jsonl`` (``source``, ``exr``, ``png``,
    ``model``, ``seconds``) after both of its files are in place.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / OUTPUT_MANIFEST
    finished = {row["exr"]: row.get("model") for row in read_jsonl(manifest) if "exr" in row}
    summary = StyliseSummary()
    for index, job in enumerate(jobs, start=1):
        if is_finished(job, styliser.model_id, finished):
            summary.skipped.append(job)
            status = "skipped"
        else:
            for leftover in partials_of(job.output) + partials_of(job.preview):  # from a killed run
                leftover.unlink(missing_ok=True)
            timings = styliser.stylise_file(job.source, job.output, job.preview, on_tile, on_note)
            append_jsonl(manifest, {"source": str(job.source.resolve()), "exr": job.output.name,
                                    "png": job.preview.name, "model": styliser.model_id,
                                    "seconds": round(timings.total_s, 3)})
            summary.stylised.append(job)
            status = "stylised"
        if on_frame is not None:
            on_frame(index, len(jobs), job, status)
    return summary
