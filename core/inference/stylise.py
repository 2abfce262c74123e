"""Stylise exported G-buffer frames with a trained model (Blender-free, torch-free).

Used by ``stylepass stylise`` (:mod:`stylepass.core.cli.stylise_command`) and by the worker
process the Blender add-on talks to (:mod:`stylepass.core.inference.worker`).

Runtimes. A :class:`Styliser` runs a model folder's generator on frames. Two runtimes implement
it: ONNX Runtime on the folder's ``model.onnx`` (:mod:`.onnx_styliser`, numpy only: the default,
and all the Blender extension ships) and torch on its ``model.safetensors``
(:mod:`.torch_styliser`, what training uses). They agree within 1e-3 in the model range, tiled or
not. :func:`load_styliser` picks one.

Colour. A frame's beauty is scene-linear HDR RGB (3, H, W), >= 0. It enters the model through
the model's tone map ``y = x / (1 + x)`` (model range [0, 1)), the model's output is clamped to
[0, 1] and mapped back with the inverse ``x = y / (1 - y)`` (see
:mod:`stylepass.core.io.colour`), so the result is scene-linear HDR again, in [0, 1e4], and
Blender's view transform applies to it as to any render. It is written as a single-part
half-float EXR with channels R, G, B of the input's size, plus an 8-bit sRGB PNG preview
(:func:`stylepass.core.io.preview_images.linear_to_srgb8`). Both are written atomically.

Memory. Large frames run in overlapping, blended tiles (:mod:`stylepass.core.inference.tiling`).
When the device runs out of memory, the frame is tried again with tiles of half the size, down to
the smallest tile the model can use; then :class:`StyliseError` (kind ``out_of_memory``) says so.

Errors are :class:`StyliseError` whose ``kind`` is one of the worker protocol's
``ERROR_KINDS``, so the CLI and the worker map them to exit codes and error replies.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR

from stylepass.blender_addon.contract.atomic_files import append_jsonl, partials_of, read_jsonl, write_atomic
from stylepass.blender_addon.contract.frame_selection import Shard
from stylepass.blender_addon.contract.worker_protocol import (
    BAD_INPUT_KINDS,
    ENGINES,
    ERROR_KINDS,
    PRECISIONS,
    PRESETS_ENV,
    has_model,
)

from ..io.atomic_image import save_png_atomic
from ..io.exr_file import write_exr
from ..io.gbuffer import (
    GBufferError,
    GBufferFrame,
    MissingPassError,
    exported_frames,
    missing_passes,
    read_gbuffer,
    read_sidecar,
    sidecar_path,
)
from ..io.model_files import MODEL_CONFIG, MODEL_WEIGHTS, ONNX_MODEL, file_digest
from ..io.preview_images import linear_to_srgb8
from .tiling import tile_spans

REPO_PRESETS = Path(__file__).resolve().parents[2] / "presets"
PRESET_MODEL_FOLDER = "model"  # presets/NAME/model/ holds model.onnx, model.safetensors + config.json
OUTPUT_MANIFEST = "manifest.jsonl"  # one line per finished frame in the output folder
OUTPUT_PREFIX = "stylised_"
CLAIMS_FOLDER = ".claims"  # OUT/.claims/<frame>.lock: which task is stylising which frame
TILE_OVERLAP = 32  # pixels shared by neighbouring tiles, blended with linear ramps
TILE_CONTEXT = 32  # pixels around a tile the model also sees, so its padding effects fall outside
MIN_TILE = 64
AUTO_TILE_PIXELS = 2048 * 2048  # frames larger than this run in tiles even when none is asked for
AUTO_TILE = 1024

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


class FrameOutOfMemory(Exception):
    """A runtime ran out of memory on a frame or tile (raised by ``Styliser._run``; retried smaller)."""


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
        if not directory.exists():  # a file is explained (or refused, if a pickle) when loaded
            raise StyliseError(f"model folder not found: {directory}; it holds {ONNX_MODEL} and/or {MODEL_WEIGHTS} "
                               f"+ {MODEL_CONFIG} (write one with `stylepass export-model RUN --out DIR --onnx`)",
                               "bad_model")
        return directory
    assert preset is not None
    root = presets_dir()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", preset) or not (root / preset).is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise StyliseError(f"no preset {preset!r} in {root}; presets there: {', '.join(known) or 'none'}",
                           "bad_model")
    directory = root / preset / PRESET_MODEL_FOLDER
    if not has_model(directory):
        raise StyliseError(
            f"preset {preset!r} has no trained model yet (expected {directory / ONNX_MODEL}, or "
            f"{MODEL_WEIGHTS} + {MODEL_CONFIG}): train one with `stylepass train-preset {preset}`, "
            "or pass a model folder instead",
            "bad_model",
        )
    return directory


def tile_context(multiple: int) -> int:
    """Pixels of context around each tile for a model of this padding multiple: TILE_CONTEXT, or
    twice the multiple if more (a depth-5 U-Net's tiles differ from the whole frame by up to 0.06
    with 32 pixels, 0.005 with 64)."""
    return max(TILE_CONTEXT, 2 * multiple)


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


@dataclass(frozen=True)
class FrameTimings:
    """Wall-clock seconds of the phases of :meth:`Styliser.stylise_file` for one frame."""

    read_s: float  # the export EXR and sidecar to arrays
    stylise_s: float  # arrays to model inputs on the device, the model, the result back as an array
    write_s: float  # the stylised EXR and the preview PNG, atomically

    @property
    def total_s(self) -> float:
        """All three phases."""
        return self.read_s + self.stylise_s + self.write_s

    def as_reply(self) -> dict[str, float]:
        """``{"read", "stylise", "write"}`` in seconds, rounded to the millisecond (worker replies)."""
        return {"read": round(self.read_s, 3), "stylise": round(self.stylise_s, 3), "write": round(self.write_s, 3)}


@dataclass
class Styliser(ABC):
    """A loaded model and how to run it; :mod:`.onnx_styliser` and :mod:`.torch_styliser` run it.

    Attributes:
        name: shown to people (the preset or model folder name).
        model_id: identifies the model (recorded per finished frame, so a resumed run redoes
            frames another model made): :func:`~stylepass.core.io.model_files.model_id`.
        family: "unet" or "rad"; passes: the G-buffer passes the model reads.
        multiple: the model's padding multiple (tiles start on its grid).
        device: where it runs ("cpu", "cuda:0"); runtime: what runs it, for people
            ("onnxruntime 1.32.0 (CPUExecutionProvider)", "torch 2.13.0").
        tile: tile size asked for (None: whole frame up to AUTO_TILE_PIXELS, then AUTO_TILE).
        overlap: pixels shared by neighbouring tiles.
        context: pixels around each tile the model also sees (a tile of N pixels runs as up
            to N + 2 * context); the loaders give :func:`tile_context`.
    """

    name: str
    model_id: str
    family: str
    passes: tuple[str, ...]
    multiple: int
    device: str
    runtime: str
    tile: int | None = None
    overlap: int = TILE_OVERLAP
    context: int = TILE_CONTEXT
    min_tile: int = field(init=False)

    def __post_init__(self) -> None:
        self.min_tile = max(MIN_TILE, self.multiple + self.overlap)
        if self.tile is not None and self.tile < self.min_tile:
            raise StyliseError(f"tile {self.tile} is too small for this model: use {self.min_tile} "
                               "or more (or no tile: the whole frame)", "bad_request")

    def describe(self) -> dict[str, Any]:
        """``{"name", "family", "passes", "runtime"}`` for people and the worker's load reply."""
        return {"name": self.name, "family": self.family, "passes": list(self.passes), "runtime": self.runtime}

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
        Raises StyliseError: ``missing_passes``, ``out_of_memory``, ``bad_model`` (NaN or Inf out).
        """
        missing = missing_passes(frame, self.passes)
        if missing:
            raise StyliseError(
                f"{frame.path} lacks the pass(es) model {self.name!r} needs: {', '.join(missing)}; run "
                "Stylepass > Set up passes in Blender (motion: Cycles with motion blur off) and export again",
                "missing_passes",
            )
        height, width = frame.size
        tile = self.first_tile(height, width)
        while True:
            total = tile_count(height, width, tile, self.overlap, self.multiple)

            def tile_done(done: int, total: int = total) -> None:
                if on_tile is not None:
                    on_tile(done, total)

            try:
                rgb = self._run(frame, tile, tile_done)
                break
            except FrameOutOfMemory:
                pass  # retried below, outside the handler, so the failed attempt's buffers are freed
            self.release_memory()
            smaller = smaller_tile(tile, height, width, self.min_tile)
            size = f"{tile}px tiles" if tile is not None and tile < max(height, width) else "the whole frame"
            if smaller is None:
                raise StyliseError(
                    f"out of memory on {self.device} for {frame.path} ({width}x{height}) even with "
                    f"{size}; close other programs using the memory, or run on the CPU (--device cpu)",
                    "out_of_memory")
            if on_note is not None:
                on_note(f"out of memory on {self.device} with {size}; trying {smaller}px tiles")
            tile = smaller
        if not np.isfinite(rgb).all():
            raise StyliseError(f"model {self.name!r} made NaN or Inf values on {frame.path}: its weights are broken "
                               "(a diverged training?); train or export it again", "bad_model")
        return rgb

    @abstractmethod
    def _run(self, frame: GBufferFrame, tile: int | None, tile_done: Callable[[int], None]) -> np.ndarray:
        """The runtime's part: the model on `frame` in tiles of `tile` (None: whole), scene-linear
        (3, H, W) float32 out; `tile_done(n)` after the n-th tile; FrameOutOfMemory when memory runs out."""

    @abstractmethod
    def release_memory(self) -> None:
        """Free what a failed attempt left on the device (the torch runtime empties CUDA's cache)."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the model and the device memory it holds; the styliser cannot run after this."""

    def stylise_file(self, source: Path, output: Path, preview: Path | None,
                     on_tile: TileCallback | None = None, on_note: NoteCallback | None = None, *,
                     frame: Callable[[], GBufferFrame] | None = None,
                     write_later: Callable[[Callable[[], None]], None] | None = None) -> FrameTimings:
        """Read an export EXR (+ sidecar), stylise it, write `output` (EXR) and `preview` (PNG).

        frame: gives the frame read already (e.g. by a reader thread; it raises what reading
        raises) instead of reading `source` here. write_later: takes the write instead of doing it
        here (it runs the callable it is given, e.g. on a writer thread); the write phase is then
        0 in the timings.

        Returns how long each phase took. Raises StyliseError: ``bad_input`` (the frame cannot
        be read), ``missing_passes``, ``out_of_memory``; OSError when an output cannot be written.
        """
        start = time.perf_counter()
        loaded = read_frame(Path(source)) if frame is None else frame()
        read = time.perf_counter()
        rgb = self.stylise(loaded, on_tile, on_note)  # ends with the copy back to the host: synchronised
        stylised = time.perf_counter()
        preview_path = None if preview is None else Path(preview)
        if write_later is not None:
            write_later(lambda: write_stylised(rgb, Path(output), preview_path))
            return FrameTimings(read - start, stylised - read, 0.0)
        write_stylised(rgb, Path(output), preview_path)
        return FrameTimings(read - start, stylised - read, time.perf_counter() - stylised)


def load_styliser(model_dir: str | Path, device: str = "auto", tile: int | None = None,
                  name: str | None = None, engine: str = "onnx", precision: str = "fp32") -> Styliser:
    """Load a model dir (see :func:`resolve_model_dir`) in a runtime (`engine`: "onnx" or "torch").

    precision: "fp32", or "int8" (the folder's ``model.int8.onnx``, made by ``stylepass quantize``;
    ONNX Runtime only).

    device: "auto" (CUDA when the runtime has it, else the CPU), "cpu" or "cuda[:N]".
    Raises StyliseError: ``bad_model`` (missing, not a Stylepass model, not safetensors, bad
    config, weights that do not match the config, an int8 model missing or out of date),
    ``no_cuda``, ``bad_request`` (unknown device, engine or precision, int8 in torch, tile too small).
    """
    if precision not in PRECISIONS:
        raise StyliseError(f"unknown precision {precision!r}; precisions: {', '.join(PRECISIONS)}", "bad_request")
    if engine == "onnx":
        from .onnx_styliser import load_onnx_styliser

        return load_onnx_styliser(Path(model_dir), device, tile, name, precision)
    if engine == "torch" and precision != "fp32":
        raise StyliseError(f"--precision {precision} runs in ONNX Runtime only: use --engine onnx", "bad_request")
    if engine == "torch":
        try:
            from .torch_styliser import load_torch_styliser
        except ImportError as error:  # the Blender extension's runtime, or a Python without torch
            raise StyliseError(f"the torch engine needs torch, which {sys.executable} cannot import ({error}): use the "
                               "onnx engine, or a Python with Stylepass's training engine", "bad_request") from None
        return load_torch_styliser(Path(model_dir), device, tile, name)
    raise StyliseError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}", "bad_request")


def check_device_name(requested: str) -> None:
    """StyliseError (``bad_request``) unless `requested` is "auto", "cpu", "cuda" or "cuda:N"."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", requested):
        raise StyliseError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N", "bad_request")


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
    """Write scene-linear RGB (3, H, W) as a single-part half-float EXR (channels R, G, B).

    PIZ, lossless like ZIP: it wrote a 1080p frame in half the time of ZIP here, and smaller."""
    half = np.clip(rgb, 0.0, np.finfo(np.float16).max).astype(np.float16)
    write_atomic(path, lambda temp: write_exr(temp, {name: half[index] for index, name in enumerate("RGB")},
                                              compression=OpenEXR.PIZ_COMPRESSION))


def write_stylised(rgb: np.ndarray, output: Path, preview: Path | None) -> None:
    """The stylised EXR (scene-linear, half float) and, if asked, its sRGB PNG preview (fast zlib)."""
    write_exr_atomic(output, rgb)
    if preview is not None:
        save_png_atomic(preview, linear_to_srgb8(rgb), fast=True)


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


def is_finished(job: FrameJob, model_id: str, finished: dict[str, dict[str, Any]]) -> bool:
    """Whether `job` was stylised by this model from this very input, and both files are complete
    and of the input's size.

    finished: output EXR name -> its output manifest line. A line made by another model, or from
    an input whose bytes have changed since (a re-rendered export), does not count.
    """
    row = finished.get(job.output.name)
    if row is None or row.get("model") != model_id or not job.preview.is_file():
        return False
    try:
        width, height = read_sidecar(sidecar_path(job.source))["resolution"]
    except (GBufferError, KeyError, ValueError, TypeError):
        return False
    return exr_rgb_size(job.output) == (height, width) and row.get("input") == input_digest(job.source)


def input_digest(source: Path) -> str:
    """What identifies an input frame: the digest of its EXR and its sidecar."""
    return file_digest(source) + file_digest(sidecar_path(source))


@dataclass
class StyliseSummary:
    """Frames stylised, skipped (already finished), failed (unreadable or lacking passes) and taken
    (another task had them) by :func:`stylise_jobs`."""

    stylised: list[FrameJob] = field(default_factory=list)
    skipped: list[FrameJob] = field(default_factory=list)
    failed: list[tuple[FrameJob, StyliseError]] = field(default_factory=list)
    taken: list[FrameJob] = field(default_factory=list)  # being stylised by another task


FrameCallback = Callable[[int, int, FrameJob, str], None]  # (done, total, job, stylised|skipped|failed|taken)
FRAME_PROBLEMS = ("bad_input", "missing_passes")  # a frame's own problems: the others go on


def stylise_jobs(styliser: Styliser, jobs: list[FrameJob], out_dir: Path,
                 on_frame: FrameCallback | None = None, on_tile: TileCallback | None = None,
                 on_note: NoteCallback | None = None) -> StyliseSummary:
    """Stylise every job in order, resumably: frames finished by the same model from the same
    input are skipped. A frame that cannot be read or lacks passes is named in the summary's
    ``failed`` and the others go on; any other error stops the run.

    Farm tasks may share `out_dir`: each frame is claimed (:func:`frame_claim`) while it is
    stylised, a frame another task holds is left to it (``taken``), and the manifest is read again
    once a frame is claimed, so no frame is done twice.

    A finished frame gets a line in ``out_dir/manifest.jsonl`` (``source``, ``exr``, ``png``,
    ``model``, ``input``, ``seconds``) after both of its files are in place.

    Pipelined: while the model runs on a frame, a reader thread reads the next frame (when this
    frame was stylised, not skipped) and a writer thread writes the previous one; a frame keeps
    its claim until its files are written and recorded. `on_frame` is called in job order, from
    this thread, a frame's "stylised" once its files are in place (after the next frame's model
    run). When the run stops (an error, Ctrl-C, SIGTERM), the frames whose model has run are
    written and recorded first, keeping their claims until then; an interrupt that comes while
    the loop waits for a write is raised once the write is recorded.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / OUTPUT_MANIFEST
    if manifest.is_symlink():
        raise StyliseError(f"{manifest} is a symbolic link: Stylepass keeps its manifest inside the output folder "
                           "and never writes through a link; remove it (or choose another --out)", "bad_request")
    summary = StyliseSummary()
    with _FramePipeline(styliser, manifest, summary, on_frame, len(jobs)) as pipeline:
        for index, job in enumerate(jobs, start=1):
            upcoming = jobs[index] if index < len(jobs) else None
            claim = contextlib.ExitStack()
            try:
                claimed = claim.enter_context(frame_claim(out_dir, job))
                written = pipeline.stylise(job, upcoming, on_tile, on_note) if claimed else None
            except BaseException:
                claim.close()
                raise
            current = None if written is None else _Writing(index, job, claim, *written)
            try:
                pipeline.finish_writing()  # the previous frame, in order
            except BaseException:
                if current is not None:
                    pipeline.writing = current  # finished and recorded on the way out, like its predecessor
                else:
                    claim.close()
                raise
            if current is not None:
                pipeline.writing = current
                continue
            claim.close()
            status = "taken" if not claimed else pipeline.status
            if status == "taken":
                summary.taken.append(job)
            pipeline.report(index, job, status)
    return summary


def _read_input(source: Path) -> tuple[str, GBufferFrame]:
    """(input digest, frame) of an export EXR, the digest taken first (as the manifest records it)."""
    digest = input_digest(source)
    return digest, read_frame(source)


@dataclass
class _Writing:
    """A stylised frame whose files a writer thread is writing; its claim is held until recorded."""

    index: int
    job: FrameJob
    claim: contextlib.ExitStack
    future: Future[float]  # the write's seconds
    digest: str
    timings: FrameTimings


class _FramePipeline:
    """The reader and writer threads of :func:`stylise_jobs` and the frames in flight."""

    def __init__(self, styliser: Styliser, manifest: Path, summary: StyliseSummary,
                 on_frame: FrameCallback | None, total: int) -> None:
        self.styliser, self.manifest, self.summary, self.on_frame, self.total = (
            styliser, manifest, summary, on_frame, total)
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="stylepass-read")
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="stylepass-write")
        self.ahead: tuple[Path, Future[tuple[str, GBufferFrame]]] | None = None  # the next frame, being read
        self.writing: _Writing | None = None
        self.status = ""  # of the last frame stylise() did not hand to the writer

    def __enter__(self) -> _FramePipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.finish_writing()  # also when stopping: the frame being written is finished and recorded
        finally:
            if self.ahead is not None:
                self.ahead[1].cancel()
            self.reader.shutdown(wait=True, cancel_futures=True)
            self.writer.shutdown(wait=True, cancel_futures=True)

    def read(self, source: Path) -> Future[tuple[str, GBufferFrame]]:
        """The read of `source`: the one started ahead, else a new one (an unused read ahead is dropped)."""
        if self.ahead is not None:
            (ahead_source, future), self.ahead = self.ahead, None
            if ahead_source == source:
                return future
            future.cancel()
        return self.reader.submit(_read_input, source)

    def read_ahead(self, job: FrameJob | None) -> None:
        """Start reading `job`'s frame (None: nothing), dropping an older read ahead."""
        if self.ahead is not None:
            self.ahead[1].cancel()
            self.ahead = None
        if job is not None:
            self.ahead = (job.source, self.reader.submit(_read_input, job.source))

    def stylise(self, job: FrameJob, upcoming: FrameJob | None, on_tile: TileCallback | None,
                on_note: NoteCallback | None) -> tuple[Future[float], str, FrameTimings] | None:
        """One claimed frame: None when skipped (finished already) or failed (``self.status`` says
        which), else its write (handed to the writer thread), input digest and timings."""
        finished = {row["exr"]: row for row in read_jsonl(self.manifest) if isinstance(row.get("exr"), str)}
        if is_finished(job, self.styliser.model_id, finished):
            self.summary.skipped.append(job)
            self.status = "skipped"
            return None
        for leftover in partials_of(job.output) + partials_of(job.preview):  # from a killed run
            leftover.unlink(missing_ok=True)
        loading = self.read(job.source)
        self.read_ahead(upcoming)
        writes: list[Future[float]] = []

        def write_later(write: Callable[[], None]) -> None:
            writes.append(self.writer.submit(_timed, write))

        try:
            timings = self.styliser.stylise_file(job.source, job.output, job.preview, on_tile, on_note,
                                                 frame=lambda: loading.result()[1], write_later=write_later)
            digest = loading.result()[0]
        except StyliseError as error:
            if error.kind not in FRAME_PROBLEMS:
                raise
            self._failed(job, error)
            return None
        except FileNotFoundError as error:  # the input went away since the run started
            self._failed(job, StyliseError(str(error), "bad_input"))
            return None
        if not writes:  # a stylise_file that wrote itself
            done: Future[float] = Future()
            done.set_result(0.0)
            writes.append(done)
        return writes[0], digest, timings

    def _failed(self, job: FrameJob, error: StyliseError) -> None:
        self.summary.failed.append((job, error))
        self.status = "failed"

    def finish_writing(self) -> None:
        """Wait for the frame being written, record it and let go of its claim; report it."""
        writing, self.writing = self.writing, None
        if writing is None:
            return
        try:
            interrupted = _wait_through_interrupts(writing.future)
            self._record(writing)
        finally:
            writing.claim.close()
        if interrupted is not None:
            raise interrupted  # now that the frame is recorded (or named as failed)

    def _record(self, writing: _Writing) -> None:
        """A finished write: its manifest line and its "stylised" report, or "failed" when the output
        folder went away under the writer."""
        job = writing.job
        try:
            write_s = writing.future.result()
        except FileNotFoundError as error:
            self.summary.failed.append((job, StyliseError(str(error), "bad_input")))
            self.report(writing.index, job, "failed")
            return
        seconds = writing.timings.total_s + write_s
        append_jsonl(self.manifest, {"source": str(job.source.resolve()), "exr": job.output.name,
                                     "png": job.preview.name, "model": self.styliser.model_id,
                                     "input": writing.digest, "seconds": round(seconds, 3)})
        self.summary.stylised.append(job)
        self.report(writing.index, job, "stylised")

    def report(self, index: int, job: FrameJob, status: str) -> None:
        if self.on_frame is not None:
            self.on_frame(index, self.total, job, status)


def _wait_through_interrupts(future: Future[float]) -> KeyboardInterrupt | None:
    """Wait for `future` through one Ctrl-C or SIGTERM (both raise KeyboardInterrupt here), so that a
    frame whose files are being written is finished and recorded before the run stops; returns that
    interrupt, to raise once the frame is recorded, or None. A second interrupt stops the wait at once
    (a write stuck on a hung share must not make the run unstoppable): the frame is then redone."""
    interrupted: KeyboardInterrupt | None = None
    while True:
        try:
            wait([future])
            return interrupted
        except KeyboardInterrupt as stop:
            if interrupted is not None:
                raise
            interrupted = stop


def _timed(fn: Callable[[], None]) -> float:
    """Run `fn`; its wall seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def frame_claim(out_dir: Path, job: FrameJob) -> Iterator[bool]:
    """Hold ``OUT/.claims/<frame>.lock`` for the block; yields False when another task holds it.

    An OS lock (``fcntl.lockf``: also across machines on an NFS share with working locks), so a
    task that is killed lets go of its frames at once. Without fcntl (Windows) every frame counts
    as claimed: run one task per output folder there.
    """
    try:
        import fcntl
    except ImportError:
        yield True
        return
    folder = out_dir / CLAIMS_FOLDER
    folder.mkdir(exist_ok=True)
    with (folder / f"{job.output.stem}.lock").open("a") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another task
            yield False
            return
        try:
            yield True
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def select_jobs(jobs: list[FrameJob], frames: tuple[int, int] | None = None,
                shard: Shard | None = None) -> list[FrameJob]:
    """The jobs of the frames in `frames` (inclusive A, B; by the number in ``frame_<N>.exr``),
    then every ``shard.count``-th of them from the ``shard.index``-th (as export's --shard)."""
    if frames is not None:
        jobs = [job for job in jobs if frames[0] <= frame_number(job.source) <= frames[1]]
    return jobs if shard is None else jobs[shard.index - 1::shard.count]


def frame_number(source: Path) -> int:
    """The frame number of an export EXR (``frame_000012.exr`` -> 12); -1 for other names."""
    digits = Path(source).stem.removeprefix("frame_")
    return int(digits) if digits.lstrip("-").isdigit() else -1
