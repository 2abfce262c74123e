"""End-to-end timing of ``stylepass bench``: one exported frame (written as Blender writes it)
through the worker (``read_gbuffer`` -> model -> atomic EXR write), and where the time goes."""

from __future__ import annotations

import functools
import json
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylepass.blender_addon.contract.export_format import pass_spec
from stylepass.core.inference.torch_styliser import TorchStyliser
from stylepass.core.io.exr_file import write_exr

from .candidates import Candidate, device_inputs
from .settings import Log, Settings, out_of_memory, size_label, skipped
from .timing import median_ms, predict_call

HALF_FLOAT_PASSES = ("beauty", "albedo", "glossy_albedo")  # Blender writes colour passes as half float


def write_synthetic_export(path: Path, height: int, width: int, seed: int = 0) -> Path:
    """Write a smooth random frame as a Blender 5.x-style G-buffer export (EXR + sidecar JSON).

    Passes: beauty (HDR, up to ~2), albedo, glossy colour, normal (camera facing), depth, material
    index (12 materials in vertical bands) and motion; the camera is the identity. Like Blender's
    export: one ZIP-compressed part, colour passes half float, data passes full float.
    Returns `path`.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    phase = rng.uniform(0.0, 6.28, 3).astype(np.float32)
    beauty = np.stack([1.0 + np.sin(6.0 * u + 4.0 * v + phase[c]) for c in range(3)]).astype(np.float32)
    normal = np.stack([0.3 * (u - 0.5), 0.3 * (v - 0.5), np.ones_like(u)])
    normal /= np.linalg.norm(normal, axis=0, keepdims=True)
    layers = {
        "beauty": np.concatenate([beauty, np.ones((1, height, width), np.float32)]),
        "albedo": np.clip(0.2 + 0.3 * beauty, 0.0, 1.0),
        "glossy_albedo": np.clip(0.05 + 0.1 * beauty, 0.0, 1.0),
        "normal": normal,
        "depth": (2.0 + u + v)[None],
        "material_index": (1 + (xx * 12 // width))[None],
        "motion": np.zeros((4, height, width), np.float32),
    }
    channels = {}
    for name, data in layers.items():
        spec = pass_spec(name)
        dtype = np.float16 if name in HALF_FLOAT_PASSES else np.float32
        for index, channel in enumerate(spec.channels):
            channels[f"ViewLayer.{spec.channel_layers[0]}.{channel}"] = data[index].astype(dtype)
    write_exr(path, channels)
    sidecar = {"schema_version": 1, "exr": path.name, "view_layer": "ViewLayer", "resolution": [width, height],
               "camera": {"world_to_camera": np.eye(4).tolist(), "clip_end": 1000.0}, "materials": []}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def measure_worker(candidates: list[Candidate], inference: list[dict[str, Any]], settings: Settings, log: Log,
                   engine: str = "onnx") -> list[dict[str, Any]]:
    """Each preset's worker on one exported frame per size, in `engine` ("onnx": ONNX Runtime, what
    ``stylepass stylise`` and the add-on run; "torch"): load, then stylise requests timed
    wall-clock; ``model_ms`` is the runtime's own model call on inputs already prepared.

    Where the time goes: ``phase_read_ms``, ``phase_stylise_ms`` and ``phase_write_ms`` are the
    worker's own timings of its requests (medians; :class:`~stylepass.core.inference.stylise.FrameTimings`),
    and ``transfer_and_prepare_ms`` is the stylise phase beyond the model (frame preparation, copies,
    the inverse tone map); ``read_gbuffer_ms`` and ``write_exr_ms`` time the reader and writer alone.
    """
    measured = {(row["model"], row["size"]) for row in inference if "ms_per_frame" in row}
    rows = []
    with tempfile.TemporaryDirectory(prefix="stylepass-bench-") as temp:
        folder = Path(temp)
        for size in settings.worker_sizes:
            frame_path = write_synthetic_export(folder / f"frame_{size_label(size)}.exr", *size)
            for candidate in (c for c in candidates if c.role == "preset"):
                entry = {"model": candidate.name, "size": size_label(size), "engine": engine, "preview_png": False}
                if (candidate.name, size_label(size)) not in measured:
                    rows.append(skipped(entry, "its inference at this size was not measured", log))
                    continue
                rows.append(time_worker(candidate, size, frame_path, entry, settings, log))
    return rows


def time_worker(candidate: Candidate, size: tuple[int, int], frame_path: Path, entry: dict[str, Any],
                settings: Settings, log: Log) -> dict[str, Any]:
    """One preset's worker (in ``entry["engine"]``) on the exported frame at `frame_path` (of `size`):
    `entry` with the timings of :func:`measure_worker`, or `entry` skipped when the device runs out
    of memory. Its outputs are written beside `frame_path`."""
    from stylepass.core.inference.onnx_styliser import OnnxStyliser
    from stylepass.core.inference.stylise import write_exr_atomic
    from stylepass.core.inference.worker import Worker
    from stylepass.core.io.gbuffer import read_gbuffer

    device = settings.device
    folder = frame_path.parent
    replies: list[dict[str, Any]] = []
    worker = Worker(replies.append)
    worker.handle(json.dumps({"id": 1, "cmd": "load", "model": str(candidate.model_dir), "device": str(device),
                              "engine": entry["engine"]}))
    styliser = worker.styliser
    if replies[-1].get("kind") == "no_cuda":  # e.g. an onnxruntime without its CUDA provider
        return skipped(entry, str(replies[-1]["error"]), log)
    if not replies[-1].get("ok") or styliser is None:
        raise RuntimeError(f"the worker could not load {candidate.name}: {replies[-1]}")
    if isinstance(styliser, TorchStyliser) and styliser.model is not None:
        model_call = predict_call(styliser.model, device_inputs(candidate, size, device))
    elif isinstance(styliser, OnnxStyliser):
        feed = styliser.frame_feed(read_gbuffer(frame_path))
        model_call = functools.partial(styliser.session.run, ["rgb"], feed)
    else:
        raise RuntimeError(f"no model call to time for {type(styliser).__name__}")
    output = folder / f"stylised_{candidate.name.split(':')[1]}.exr"
    request = json.dumps({"id": 2, "cmd": "stylise", "input": str(frame_path), "output": str(output)})

    phases: list[dict[str, float]] = []

    def stylise() -> None:
        replies.clear()
        worker.handle(request)
        if not replies[-1].get("ok"):
            raise RuntimeError(f"the worker failed on {frame_path}: {replies[-1]}")
        phases.append(replies[-1]["timings"])

    try:
        total = median_wall_ms(stylise, settings.worker_repeats)
        timed = phases[-settings.worker_repeats:]  # the warm-up call's timings left out
        in_request = {f"phase_{name}_ms": 1000.0 * statistics.median(p[name] for p in timed)
                      for name in ("read", "stylise", "write")}
        read = median_wall_ms(lambda: read_gbuffer(frame_path), settings.worker_repeats)
        rgb = read_gbuffer(frame_path).beauty  # compresses like a smooth stylised frame
        write = median_wall_ms(lambda: write_exr_atomic(folder / "write_only.exr", rgb), settings.worker_repeats)
        model_ms = median_ms(model_call, settings.repeats, 1, device)
    except torch.OutOfMemoryError:
        return skipped(entry, out_of_memory(device), log)
    finally:
        worker.handle(json.dumps({"id": 3, "cmd": "shutdown"}))
    log(f"worker {candidate.name} {size_label(size)} ({entry['engine']}): {total:.1f} ms end to end, "
        f"{total - model_ms:.1f} ms beyond the model")
    return {**entry, "total_ms": total, "model_ms": model_ms, "beyond_model_ms": total - model_ms,
            "read_gbuffer_ms": read, "write_exr_ms": write, **in_request,
            "transfer_and_prepare_ms": in_request["phase_stylise_ms"] - model_ms}


def runtime_ratios(onnx_rows: list[dict[str, Any]], torch_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ONNX Runtime beside torch, per preset and size: both end-to-end and model times, and how many
    times faster ONNX Runtime is (torch ms / ONNX Runtime ms), from the same run."""
    torch_by_key = {(row["model"], row["size"]): row for row in torch_rows if "total_ms" in row}
    rows = []
    for row in onnx_rows:
        other = torch_by_key.get((row["model"], row["size"]))
        if "total_ms" not in row or other is None:
            continue
        rows.append({"model": row["model"], "size": row["size"],
                     "onnx_total_ms": row["total_ms"], "torch_total_ms": other["total_ms"],
                     "onnx_model_ms": row["model_ms"], "torch_model_ms": other["model_ms"],
                     "total_speedup": other["total_ms"] / row["total_ms"],
                     "model_speedup": other["model_ms"] / row["model_ms"]})
    return rows


def median_wall_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall milliseconds of `fn` after one untimed call (host code that synchronises itself)."""
    return median_ms(fn, repeats, 1, torch.device("cpu"))
