"""int8 ONNX models: a model folder's ``model.onnx`` quantized with ONNX Runtime's static QDQ
quantization, calibrated on frames like the ones it will stylise (numpy, onnx and onnxruntime;
no torch).

``stylepass quantize MODEL_DIR --data FOLDER`` (:func:`quantize_model`) writes
``model.int8.onnx`` beside ``model.onnx``; ``stylepass stylise --precision int8`` runs it
(:func:`~stylepass.core.inference.onnx_styliser.load_onnx_styliser`).

What is quantized. Only the convolutions, weights int8 per output channel, activations uint8
per tensor (ONNX Runtime's fast x86 pairing, VNNI where the CPU has it), with ranges taken from
the calibration frames (min/max). Everything else stays float32: the frame preparation, the
norms, the output's colour maths, and the whole fixed Kuwahara stage of painterly models (its
weights are a filter, not learned, and its variance maths needs float32).

Calibration frames. FOLDER is a training dataset (``pairs.jsonl``: its ``train`` frames
calibrate, its ``val`` frames check) or an export folder (its first frames calibrate, the last
ones check). Frames larger than :data:`CALIBRATION_SIDE` are cut into crops of that side for
calibration (the calibrator keeps every activation of every crop in memory): about
:data:`CALIBRATION_CROPS` crops in all, spread over the frames and over each frame's area (corners
and edges too: a bright sky or rim at the border needs its range as much as the centre does).

Staleness. The int8 file records the :func:`~stylepass.core.io.model_files.model_id` of the
folder it was made from (``stylepass.model_id``: the weights' digest) and the digest of the
``model.onnx`` it quantized (``stylepass.fp32_onnx_digest``, the model id of a folder that ships
``model.onnx`` alone, as the Blender extension does): when the weights or ``model.onnx`` change,
the int8 file is refused until it is made again, since only its calibration data can remake it.

Quality. After quantizing, the int8 and float32 graphs run on the check frames and the PSNR of
the int8 output against the float32 one (model range, [0, 1]) is recorded in the metadata
(``stylepass.int8_check``) and returned; with a dataset, the PSNR of each against the targets
too, in the metric space of ``stylepass evaluate`` (model range, PNG targets decoded from sRGB).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylepass.blender_addon.contract.atomic_files import read_jsonl, write_atomic
from stylepass.blender_addon.contract.worker_protocol import INT8_MODEL, ONNX_MODEL

from ..io.colour import decode_srgb, tonemap
from ..io.exr_file import read_exr
from ..io.gbuffer import GBufferError, exported_frames, missing_passes, read_gbuffer
from ..io.model_files import file_digest, model_id
from ..io.preview_images import exr_rgb
from .stylise import StyliseError

CALIBRATION_FRAMES = 16  # frames the ranges are taken from
CHECK_FRAMES = 4  # held-out frames the int8 output is compared on
CALIBRATION_SIDE = 256  # larger frames are cut into crops of this side for calibration
CALIBRATION_CROPS = 32  # crops of large frames in all, spread over the frames and their area
GOLDEN_FRACTION = 0.6180339887  # the golden-ratio sequence: evenly spread picks, in any number
QUANTIZED_OPS = ("Conv",)
FP32_SCOPES = ("/kuwahara/",)  # nodes whose names hold one of these stay float32
PAIRS = "pairs.jsonl"  # a training dataset's list of pairs (blender_addon.contract.dataset_layout)

Log = Callable[[str], None]


@dataclass(frozen=True)
class CalibrationFrame:
    """A frame of the calibration folder: its export EXR and, in a dataset, its target image."""

    source: Path
    target: Path | None = None


@dataclass
class QuantizeReport:
    """What :func:`quantize_model` made: the file, the frames used, the check figures (dB)."""

    path: Path
    calibration_frames: int
    check_frames: int
    psnr_vs_fp32: list[float] = field(default_factory=list)  # per check frame, model range
    fp32_psnr_vs_target: list[float] = field(default_factory=list)  # per check frame, model range (datasets)
    int8_psnr_vs_target: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The figures as they go into the metadata and the command's output."""
        def mean(values: list[float]) -> float | None:
            return round(float(np.mean(values)), 2) if values else None

        return {"calibration_frames": self.calibration_frames, "check_frames": self.check_frames,
                "psnr_int8_vs_fp32_db": mean(self.psnr_vs_fp32),
                "min_psnr_int8_vs_fp32_db": round(min(self.psnr_vs_fp32), 2) if self.psnr_vs_fp32 else None,
                "fp32_psnr_vs_target_db": mean(self.fp32_psnr_vs_target),
                "int8_psnr_vs_target_db": mean(self.int8_psnr_vs_target)}


def calibration_frames(folder: Path) -> tuple[list[CalibrationFrame], list[CalibrationFrame]]:
    """(calibration frames, check frames) of a dataset (``pairs.jsonl``) or export folder.

    A dataset: its ``train`` pairs calibrate, its ``val`` pairs check (with their targets). An
    export folder: up to :data:`CALIBRATION_FRAMES` frames spread over it calibrate, and up to
    :data:`CHECK_FRAMES` others check (a folder of one frame uses it for both). Raises StyliseError
    (``bad_input``) for anything else, or a folder without frames.
    """
    folder = Path(folder)
    if (folder / PAIRS).is_file():
        rows = [row for row in read_jsonl(folder / PAIRS) if isinstance(row.get("input"), str)]

        def frames(split: str) -> list[CalibrationFrame]:
            return [CalibrationFrame(folder / row["input"],
                                     folder / row["target"] if isinstance(row.get("target"), str) else None)
                    for row in rows if row.get("split") == split]

        train, val = frames("train"), frames("val")
        if not train:
            raise StyliseError(f"{folder / PAIRS} lists no train pairs to calibrate on", "bad_input")
        return spread(train, CALIBRATION_FRAMES), spread(val or train, CHECK_FRAMES)
    if not folder.is_dir():
        raise StyliseError(f"calibration folder not found: {folder}; give a dataset (pairs.jsonl) or an export "
                           "folder of frames like the ones you will stylise", "bad_input")
    try:
        sources = exported_frames(folder)
    except GBufferError as error:
        raise StyliseError(f"{folder} is neither a dataset (no {PAIRS}) nor an export folder: {error}",
                           "bad_input") from None
    if not sources:
        raise StyliseError(f"{folder} holds no exported frames to calibrate on", "bad_input")
    check = spread(sources[1::2], CHECK_FRAMES) if len(sources) > 1 else sources
    calibrate = spread([s for s in sources if s not in check] or sources, CALIBRATION_FRAMES)
    return [CalibrationFrame(s) for s in calibrate], [CalibrationFrame(s) for s in check]


def spread(items: list[Any], count: int) -> list[Any]:
    """At most `count` of `items`, evenly spaced, first one included."""
    if len(items) <= count:
        return list(items)
    return [items[round(index * (len(items) - 1) / (count - 1))] if count > 1 else items[0]
            for index in range(count)]


def crop_corners(height: int, width: int, side: int, frame_index: int, frames: int) -> list[tuple[int, int]]:
    """(top, left) of the side x side calibration crops of frame `frame_index` of `frames`.

    The frame's grid of crops (last row and column flush with the border) is taken in an order that
    spreads over the frame: the four corners and the centre, then the golden-ratio sequence over the
    rest. The frames share out the first ``CALIBRATION_CROPS`` crops of that order (at least one each)."""
    def starts(extent: int) -> list[int]:
        return [0] if extent <= side else sorted({*range(0, extent - side, side), extent - side})

    rows, columns = starts(height), starts(width)
    grid = [(top, left) for top in rows for left in columns]
    first = [(rows[0], columns[0]), (rows[0], columns[-1]), (rows[-1], columns[0]), (rows[-1], columns[-1]),
             (rows[len(rows) // 2], columns[len(columns) // 2])]
    golden = (grid[int(len(grid) * ((index * GOLDEN_FRACTION) % 1.0))] for index in range(4 * len(grid)))
    order = list(dict.fromkeys([*first, *golden, *grid]))
    per_frame = min(len(order), max(1, math.ceil(CALIBRATION_CROPS / max(1, frames))))
    return [order[(frame_index * per_frame + crop) % len(order)] for crop in range(per_frame)]


def crop(feed: dict[str, np.ndarray], top: int, left: int, side: int) -> dict[str, np.ndarray]:
    """The (1, C, H, W) inputs of `feed` cut to the side x side window at (top, left) (the (1,)
    whole-frame inputs kept, so the crop is normalised as the frame is)."""
    return {name: np.ascontiguousarray(array[..., top:top + side, left:left + side]) if array.ndim == 4 else array
            for name, array in feed.items()}


def fp32_node_names(model: Any) -> list[str]:
    """Names of the nodes of an ONNX model that must stay float32 (see :data:`FP32_SCOPES`)."""
    return [node.name for node in model.graph.node if any(scope in node.name for scope in FP32_SCOPES)]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of `a` against `b` (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def quantize_model(model_dir: Path, data: Path, log: Log = print) -> QuantizeReport:
    """Write ``model_dir/model.int8.onnx`` from its ``model.onnx`` (written first when missing or
    out of date, as ``stylepass stylise`` does), calibrated on the frames of `data`; returns the
    report (see the module docstring).

    Raises StyliseError: ``bad_model`` (not a model folder, no up-to-date model.onnx can be had),
    ``bad_input`` (the calibration folder, or a frame of it, cannot be read), ``failed`` (onnx or
    onnxruntime's quantization tools missing). OSError when the file cannot be written.
    """
    from .onnx_styliser import OnnxStyliser, load_onnx_styliser

    try:
        import onnx

        quantization = importlib.import_module("onnxruntime.quantization")  # untyped: imported as Any
    except ImportError as error:
        raise StyliseError(f"quantizing needs the onnx and onnxruntime packages ({error}): pip install onnx "
                           "onnxruntime", "failed") from None
    model_dir = Path(model_dir)
    calibrate, check = calibration_frames(data)
    fp32 = load_onnx_styliser(model_dir, "cpu", None, None)  # writes model.onnx if missing or stale
    identity, onnx_digest = model_id(model_dir), file_digest(model_dir / ONNX_MODEL)

    def feeds(frames: list[CalibrationFrame]) -> Iterator[dict[str, np.ndarray]]:
        for frame in frames:
            yield fp32.frame_feed(read_checked(frame.source, fp32.passes))

    def crops() -> Iterator[dict[str, np.ndarray]]:
        for index, feed in enumerate(feeds(calibrate)):
            height, width = feed["beauty"].shape[-2:]
            for top, left in crop_corners(height, width, CALIBRATION_SIDE, index, len(calibrate)):
                yield crop(feed, top, left, CALIBRATION_SIDE)

    class Reader:  # an onnxruntime CalibrationDataReader (it checks for get_next only)
        def __init__(self) -> None:
            self.crops = crops()

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.crops, None)

    source = onnx.load(str(model_dir / ONNX_MODEL))
    metadata = {prop.key: prop.value for prop in source.metadata_props}
    log(f"calibrating {model_dir / ONNX_MODEL} on {len(calibrate)} frame(s) of {data}")
    report = QuantizeReport(model_dir / INT8_MODEL, len(calibrate), len(check))

    def write(temp: Path) -> None:
        with quiet_quantizer():
                quantization.quantize_static(
                str(model_dir / ONNX_MODEL), str(temp), Reader(), quant_format=quantization.QuantFormat.QDQ,
                activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=fp32_node_names(source),
                calibrate_method=quantization.CalibrationMethod.MinMax)
        int8 = load_onnx_session(temp)
        check_int8(fp32, int8, check, report)
        model = onnx.load(str(temp))
        onnx.helper.set_model_props(model, {
            **metadata, "stylepass.precision": "int8", "stylepass.model_id": identity,
            "stylepass.fp32_onnx_digest": onnx_digest,
            "stylepass.quantized_ops": ",".join(QUANTIZED_OPS), "stylepass.fp32_scopes": ",".join(FP32_SCOPES),
            "stylepass.int8_check": json.dumps(report.summary(), sort_keys=True),
            "stylepass.calibration": json.dumps({"folder": Path(data).resolve().name, "frames": len(calibrate)}),
        })
        onnx.save(model, str(temp))

    write_atomic(model_dir / INT8_MODEL, write)
    assert isinstance(fp32, OnnxStyliser)
    fp32.close()
    return report


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """Silence the quantizer's advice (its root-logger warnings, ONNX Runtime's graph warnings)."""
    import onnxruntime

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    onnxruntime.set_default_logger_severity(3)
    try:
        yield
    finally:
        root.setLevel(level)
        onnxruntime.set_default_logger_severity(2)


def load_onnx_session(path: Path) -> Any:
    """A CPU InferenceSession on `path` (errors only in its log)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_checked(source: Path, passes: tuple[str, ...]) -> Any:
    """read_gbuffer with its errors as StyliseError: ``bad_input``, or ``missing_passes`` when the
    frame lacks a pass of `passes` (the model's), e.g. an export made before the glossy colour."""
    try:
        frame = read_gbuffer(source)
    except GBufferError as error:
        raise StyliseError(f"calibration frame {source}: {error}", "bad_input") from None
    if missing := missing_passes(frame, passes):
        raise StyliseError(f"calibration frame {source} lacks the pass(es) the model needs: {', '.join(missing)}; "
                           "calibrate on frames exported with them (Stylepass > Set up passes in Blender, "
                           "then export again)", "missing_passes")
    return frame


def target_model_range(path: Path) -> np.ndarray:
    """A target image in the model range (3, H, W), as ``stylepass evaluate`` reads it: a PNG decoded
    from sRGB to linear, an EXR as linear, then tone-mapped x / (1 + x)."""
    if path.suffix.lower() == ".exr":
        linear = np.maximum(np.nan_to_num(exr_rgb(read_exr(path))), 0.0)
    else:
        with Image.open(path) as image:
            encoded = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
        linear = decode_srgb(encoded)
    return np.asarray(tonemap(linear), dtype=np.float32)


def check_int8(fp32: Any, int8_session: Any, frames: list[CalibrationFrame], report: QuantizeReport) -> None:
    """Run the float32 styliser's session and the int8 session on `frames`; fill `report`'s PSNRs
    (in the model range, the metric space of ``stylepass evaluate`` and the presets' cards)."""
    for frame in frames:
        feed = fp32.frame_feed(read_checked(frame.source, fp32.passes))
        (reference,) = fp32.session.run(["rgb"], feed)
        (quantized,) = int8_session.run(["rgb"], feed)
        report.psnr_vs_fp32.append(psnr(quantized, reference))
        if frame.target is not None and frame.target.is_file():
            target = target_model_range(frame.target)
            if target.shape == reference.shape[1:]:
                report.fp32_psnr_vs_target.append(psnr(reference[0], target))
                report.int8_psnr_vs_target.append(psnr(quantized[0], target))
