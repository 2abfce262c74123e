"""The ONNX Runtime runtime of :class:`~stylepass.core.inference.stylise.Styliser` (numpy only).

A model folder's ``model.onnx`` holds the generator with its frame preparation (tone map, depth
and motion normalisation, valid mask, material classes, padding: see
:mod:`stylepass.core.inference.onnx_export`), so a frame's passes go in as they were read and the
stylised image in the model range [0, 1] comes out. Tiles are cut and blended by
:mod:`.tiling`; each tile gets the whole frame's depth and size (the graph's ``frame_depth_far``
and ``frame_extent`` inputs), so it is normalised as the frame is.

This is the default runtime and the only one the Blender extension ships: it needs numpy and
onnxruntime, not torch. A folder whose ``model.onnx`` is missing, or older than the
``model.safetensors`` and ``config.json`` beside it, gets a new one on
first use when torch is installed (atomically); without torch the error says how to write one.
"Older" means the weights or config beside it have changed since: the ONNX file records their digest.

Precision. ``precision="int8"`` runs the folder's ``model.int8.onnx`` instead (made by
``stylepass quantize``, :mod:`.onnx_quantize`). It cannot be remade without its calibration
frames, so a missing one, or one made from other weights, is refused (``bad_model``) with the
command that makes it. Frames it stylises are recorded under their own model id (the folder's
id + ``:int8:`` + the int8 file's digest), so switching precision, or quantizing again, redoes them.

Threads. Every session runs its operators on one intra-op pool, sized once here
(:func:`session_options`), and no inter-op pool.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stylepass.blender_addon.contract.worker_protocol import INT8_MODEL, PRECISIONS

from ..io.colour import inverse_tonemap
from ..io.gbuffer import GBufferFrame
from ..io.model_files import (
    MODEL_WEIGHTS,
    ONNX_MODEL,
    ModelFileError,
    OnnxModelError,
    OnnxModelInfo,
    check_safetensors_file,
    file_digest,
    model_id,
    onnx_model_info,
    source_digest,
)
from .stylise import FrameOutOfMemory, StyliseError, Styliser, check_device_name, tile_context
from .tiling import TileWindow, blend_tiles, tile_windows

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
INSTALL_HINT = "install it with  pip install onnxruntime  (or onnxruntime-gpu for CUDA)"


def import_onnxruntime() -> Any:
    """The onnxruntime module; StyliseError (``failed``) saying how to install it when missing."""
    try:
        import onnxruntime
    except (ImportError, OSError) as error:  # OSError: its native library does not load
        raise StyliseError(f"onnxruntime cannot be imported in {sys.executable} ({error}): {INSTALL_HINT}, "
                           "or use --engine torch", "failed") from None
    return onnxruntime


def pick_providers(requested: str, available: list[str]) -> tuple[list[Any], str]:
    """ONNX Runtime providers for a device name, and the device as a string ("cpu", "cuda:0").

    "auto": CUDA when this onnxruntime has its provider, else the CPU. Raises StyliseError:
    ``no_cuda`` when CUDA is asked for but missing, ``bad_request`` for an unknown name.
    """
    check_device_name(requested)
    if requested == "cpu" or (requested == "auto" and CUDA not in available):
        return [CPU], "cpu"
    if CUDA not in available:
        raise StyliseError(f"--device {requested} was asked for but this onnxruntime has no CUDA provider "
                           f"(providers: {', '.join(available)}); install onnxruntime-gpu, or use --device cpu",
                           "no_cuda")
    index = int(match.group(1)) if (match := re.fullmatch(r"cuda:(\d+)", requested)) else 0
    return [(CUDA, {"device_id": index}), CPU], f"cuda:{index}"


def write_onnx(model_dir: Path, why: str) -> None:
    """Write ``model_dir``'s ``model.onnx`` from its weights (atomically; needs torch and onnx).

    why: what is wrong with the present file, for the error ("has no", "has an out-of-date").
    Raises StyliseError (``bad_model``) when it cannot be written here (no torch, a read-only
    folder, weights that are not safetensors or do not match the config).
    """
    try:
        from ..models.serialization import load_model
        from .onnx_export import OnnxMismatchError, OnnxUnavailableError, export_onnx
    except ImportError:
        raise StyliseError(
            f"{model_dir} {why} {ONNX_MODEL} and this Python ({sys.executable}) has no torch to write one: run "
            f"`stylepass export-model {model_dir} --out {model_dir} --onnx` where Stylepass's training engine is "
            "installed, or use --engine torch there", "bad_model") from None
    try:
        generator, config = load_model(model_dir)
        export_onnx(generator, config, model_dir / ONNX_MODEL, source_digest(model_dir))
    except (OSError, OnnxUnavailableError, OnnxMismatchError, ValueError) as error:
        raise StyliseError(f"{model_dir} {why} {ONNX_MODEL} and writing one failed: {error}", "bad_model") from None


def cpu_threads() -> int:
    """Threads for ONNX Runtime's operators: the cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def session_options(onnxruntime: Any) -> Any:
    """The SessionOptions of every Stylepass session: errors-only log, operators run one after
    another (no inter-op pool) on one intra-op pool: ONNX Runtime's default size (one thread per
    physical core), or :func:`cpu_threads` when the process may use fewer CPUs than the machine has
    (a farm slot pinned with taskset or a container's cpuset), which that default ignores."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are not the user's to act on
    if cpu_threads() < (os.cpu_count() or 1):
        options.intra_op_num_threads = cpu_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return options


def open_session(onnxruntime: Any, onnx_path: Path, providers: list[Any]) -> tuple[Any, OnnxModelInfo]:
    """An InferenceSession on a Stylepass ONNX file and what its metadata says.

    Raises StyliseError (``bad_model``): unreadable, or not a Stylepass model (names what is missing).
    """
    options = session_options(onnxruntime)
    try:
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=providers)
    except Exception as error:  # noqa: BLE001 - onnxruntime's own exception types for unreadable files
        raise StyliseError(f"cannot load {onnx_path}: {error}", "bad_model") from None
    try:
        info = onnx_model_info(onnx_path, session.get_modelmeta().custom_metadata_map,
                               [i.name for i in session.get_inputs()])
    except OnnxModelError as error:
        raise StyliseError(str(error), "bad_model") from None
    return session, info


def quantize_hint(model_dir: Path) -> str:
    """The command that makes a folder's int8 model, for error messages."""
    return (f"make it with `stylepass quantize {model_dir} --data FOLDER` (FOLDER: a training dataset or an "
            "export folder of frames like the ones you stylise), or use --precision fp32")


def open_int8_session(onnxruntime: Any, model_dir: Path, providers: list[Any]) -> tuple[Any, OnnxModelInfo, str]:
    """A session on ``model_dir``'s ``model.int8.onnx``, its info and its model id: the folder's
    model id and the int8 file's digest (outputs of an earlier quantization are not taken as this one's).

    Raises StyliseError (``bad_model``) when the file is missing, unreadable, not an int8 Stylepass
    model, or made from other weights or another model.onnx than the folder holds now.
    """
    path = model_dir / INT8_MODEL
    if not path.is_file():
        raise StyliseError(f"{model_dir} has no int8 model ({INT8_MODEL}): {quantize_hint(model_dir)}", "bad_model")
    if not ((model_dir / MODEL_WEIGHTS).is_file() or (model_dir / ONNX_MODEL).is_file()):
        raise StyliseError(f"{model_dir} holds {INT8_MODEL} without the {MODEL_WEIGHTS} or {ONNX_MODEL} it was made "
                           "from, so it cannot be checked against them; give the whole model folder", "bad_model")
    session, info = open_session(onnxruntime, path, providers)
    metadata = session.get_modelmeta().custom_metadata_map
    identity = model_id(model_dir)
    made_from = metadata.get("stylepass.model_id")
    if metadata.get("stylepass.precision") != "int8" or made_from is None:
        raise StyliseError(f"{path} is not an int8 model made by `stylepass quantize`: {quantize_hint(model_dir)}",
                           "bad_model")
    # made from these weights (when the folder has them) and from this model.onnx (when it has one): the
    # command line, which has both, and the extension, which ships the ONNX files alone, agree
    onnx_path, made_from_onnx = model_dir / ONNX_MODEL, metadata.get("stylepass.fp32_onnx_digest")
    if (model_dir / MODEL_WEIGHTS).is_file() and made_from != identity:
        raise StyliseError(f"{path} is out of date: it was made from other weights than {model_dir} holds now "
                           f"({made_from}, now {identity}); {quantize_hint(model_dir)}", "bad_model")
    if onnx_path.is_file() and made_from_onnx != file_digest(onnx_path):
        raise StyliseError(f"{path} is out of date: it was made from another {ONNX_MODEL} than {model_dir} holds now "
                           f"({made_from_onnx}, now {file_digest(onnx_path)}); {quantize_hint(model_dir)}",
                           "bad_model")
    return session, info, f"{identity}:int8:{file_digest(path)}"


def pass_feed(frame: Any, names: list[str]) -> dict[str, np.ndarray]:
    """The graph inputs `names` (beauty, passes, valid, material_id) of one frame, from the
    ``GBufferFrame`` attributes of those names: each (1, C, H, W) float32, C-contiguous."""
    feed = {}
    for name in names:
        array = np.asarray(getattr(frame, name), dtype=np.float32)
        feed[name] = np.ascontiguousarray(array.reshape(1, -1, *array.shape[-2:]))
    return feed


@dataclass
class OnnxStyliser(Styliser):
    """An ONNX Runtime session on a Stylepass ONNX model; `session` is an InferenceSession."""

    session: Any = None
    frame_inputs: tuple[str, ...] = ()

    def _run(self, frame: GBufferFrame, tile: int | None, tile_done: Callable[[int], None]) -> np.ndarray:
        assert self.session is not None
        height, width = frame.size
        feed = self.frame_feed(frame)
        windows = tile_windows(height, width, tile, self.overlap, self.multiple, self.context)
        done = 0

        def run(window: TileWindow) -> np.ndarray:
            nonlocal done
            crops = {name: array if array.ndim == 1 else np.ascontiguousarray(array[(..., *window.outer)])
                     for name, array in feed.items()}
            try:
                (rgb,) = self.session.run(["rgb"], crops)
            except Exception as error:  # onnxruntime raises its own RuntimeException types
                if "allocat" in str(error).lower():
                    raise FrameOutOfMemory from None
                raise
            done += 1
            tile_done(done)
            return rgb[0]

        if len(windows) == 1:
            model_range = run(windows[0])
        else:
            model_range = blend_tiles(run, height, width, windows)
        return inverse_tonemap(np.clip(model_range, 0.0, 1.0)).astype(np.float32, copy=False)

    def release_memory(self) -> None:
        pass  # ONNX Runtime's arena keeps its memory for the next run; close() frees it

    def close(self) -> None:
        self.session = None

    def frame_feed(self, frame: GBufferFrame) -> dict[str, np.ndarray]:
        """The graph's inputs for a whole frame: each pass as (1, C, H, W) float32, plus the frame's
        largest valid depth and size, (1,) float32, for the defaulted inputs the graph has."""
        valid = np.asarray(frame.valid, dtype=bool)
        height, width = valid.shape
        feed = pass_feed(frame, [graph_input.name for graph_input in self.session.get_inputs()])
        if "frame_depth_far" in self.frame_inputs:
            depth = np.where(valid, np.asarray(frame.depth, dtype=np.float32).reshape(height, width), 0.0)
            feed["frame_depth_far"] = np.array([max(float(depth.max()), 0.0)], dtype=np.float32)
        if "frame_extent" in self.frame_inputs:
            feed["frame_extent"] = np.array([max(height, width)], dtype=np.float32)
        return feed


def load_onnx_styliser(model_dir: Path, device: str, tile: int | None, name: str | None,
                       precision: str = "fp32") -> OnnxStyliser:
    """An ONNX Runtime session on ``model_dir``'s ``model.onnx``, written first (atomically, with
    torch) when it is missing or older than the folder's weights and config; with `precision`
    "int8", on its ``model.int8.onnx`` (never written here: see the module docstring).

    Raises StyliseError: ``bad_model`` (no model, not a Stylepass model, unreadable file, an ONNX
    file needed but not writable here, an int8 file missing or out of date), ``no_cuda``,
    ``bad_request`` (unknown device or precision, tile too small), ``failed`` (no onnxruntime).
    """
    if precision not in PRECISIONS:
        raise StyliseError(f"unknown precision {precision!r}; precisions: {', '.join(PRECISIONS)}", "bad_request")
    onnxruntime = import_onnxruntime()
    providers, device_name = pick_providers(device, onnxruntime.get_available_providers())
    if model_dir.is_file():
        try:
            check_safetensors_file(model_dir)  # a pickle is refused with the reason
        except ModelFileError as error:
            raise StyliseError(str(error), "bad_model") from None
        raise StyliseError(f"{model_dir} is a file: give the model folder that holds it", "bad_model")
    if precision == "int8":
        session, info, identity = open_int8_session(onnxruntime, model_dir, providers)
        return _styliser(onnxruntime, session, info, identity, model_dir, device, device_name, tile, name, " int8")
    onnx_path, weights = model_dir / ONNX_MODEL, model_dir / MODEL_WEIGHTS
    if not onnx_path.is_file():
        if not weights.is_file():
            raise StyliseError(f"{model_dir} holds neither {ONNX_MODEL} nor {MODEL_WEIGHTS}: give a model folder "
                               "(write one with `stylepass export-model RUN --out DIR --onnx`)", "bad_model")
        write_onnx(model_dir, "has no")
    session, info = open_session(onnxruntime, onnx_path, providers)
    identity = model_id(model_dir)  # with weights: the digest of the weights and config the ONNX file needs
    if weights.is_file() and info.source_digest != identity:
        write_onnx(model_dir, "has an out-of-date")
        session, info = open_session(onnxruntime, onnx_path, providers)
    return _styliser(onnxruntime, session, info, identity, model_dir, device, device_name, tile, name)


def _styliser(onnxruntime: Any, session: Any, info: OnnxModelInfo, identity: str, model_dir: Path, device: str,
              device_name: str, tile: int | None, name: str | None, label: str = "") -> OnnxStyliser:
    """The styliser on an open session (`device`: as asked; `device_name`: as picked; `label`: after
    the runtime's name, e.g. " int8")."""
    running = session.get_providers()[0]
    if device_name.startswith("cuda") and running != CUDA:  # CUDA or cuDNN missing: it fell back quietly
        if device != "auto":
            raise StyliseError(f"--device {device} was asked for but ONNX Runtime could not start its CUDA provider "
                               "(is the CUDA/cuDNN runtime that onnxruntime-gpu needs installed?); use --device cpu",
                               "no_cuda")
        device_name = "cpu"
    overridable = tuple(i.name for i in session.get_overridable_initializers())
    return OnnxStyliser(
        name=name or model_dir.name, model_id=identity, family=info.family, passes=info.passes,
        multiple=info.multiple, device=device_name, runtime=f"onnxruntime {onnxruntime.__version__} ({running}){label}",
        tile=tile,
        context=tile_context(info.multiple), session=session, frame_inputs=overridable)
