"""CPU speed of ``stylepass bench`` (issue 16): each preset's 1920x1080 frame through the real
``stylepass stylise`` frame loop, in reference units measured in the same run.

Reference unit: one 3x3, 64-to-64-channel float32 convolution over a 960x540 frame in torch
(channels_last, all the cores this process may use), median of a few calls after warm-up, taken
at the start and at the end of the section and averaged. Shared machines run at different speeds
from run to run; times divided by this unit compare across runs.

Per preset and path (``torch``: the weights in torch; ``onnx_fp32``: ``model.onnx``;
``onnx_int8``: ``model.int8.onnx`` when the folder has an up-to-date one, made by ``stylepass
quantize``):

* ``loop_ms``: per frame in a sequence through :func:`~stylepass.core.inference.stylise.stylise_jobs`
  (read, model, write pipelined as ``stylepass stylise`` runs them), on synthetic exported
  frames: the median time between two frames' "stylised" reports of a :data:`LOOP_FRAMES`-frame
  run, after a one-frame warm-up run. A frame is reported once its files are written, after the
  next frame's model run, so each interval is one frame in the steady pipeline, except the last
  (the last frame's write alone), which is left out; a median, so that one slow frame on a shared
  machine does not skew it;
* where the time goes, each stage alone (medians): ``read_ms`` (the export EXR and sidecar to
  arrays), ``prepare_ms`` (arrays to the runtime's inputs), ``model_ms`` (the runtime's call),
  ``finish_ms`` (clip and inverse tone map of the output), ``write_ms`` (EXR and PNG preview,
  atomically); ``stages_ms`` is their sum, and ``overlap_saved_ms`` what the pipeline saves
  against it;
* each ``*_ms`` figure also as ``*_units`` (over the reference unit).

``int8``: the int8 file's own check (``stylepass.int8_check``: PSNR against the float32 output and
against the targets on held-out frames) and the verdict: kept when it is faster than float32 in the
loop and its PSNR against the targets is within :data:`INT8_MAX_DB_LOSS` of float32's.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stylepass.blender_addon.contract.worker_protocol import INT8_MODEL
from stylepass.core.inference.onnx_styliser import OnnxStyliser, cpu_threads
from stylepass.core.inference.stylise import (
    FrameJob,
    StyliseError,
    Styliser,
    load_styliser,
    output_stem,
    read_frame,
    stylise_jobs,
    write_stylised,
)
from stylepass.core.inference.torch_styliser import TorchStyliser
from stylepass.core.io.colour import inverse_tonemap

from .candidates import Candidate
from .settings import Log, Settings, size_label
from .timing import median_ms
from .worker_timing import write_synthetic_export

REFERENCE = {"what": "one 3x3 64->64-channel float32 convolution over a 960x540 frame in torch, channels_last, "
                     "all usable cores", "channels": 64, "size": "960x540"}
CPU_SIZE = (1080, 1920)  # (H, W)
LOOP_FRAMES = 6  # frames of the loop run: 4 steady intervals between their reports, of which the median counts
UNITS_TARGET = 3.0  # issue 16: a 1080p frame in at most this many reference units
INT8_MAX_DB_LOSS = 0.3  # int8 kept when its PSNR against the targets is within this of float32's
PATHS = (("torch", "torch", "fp32"), ("onnx_fp32", "onnx", "fp32"), ("onnx_int8", "onnx", "int8"))


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def reference_unit_ms(repeats: int, warmup: int = 1, size: tuple[int, int] = (540, 960)) -> float:
    """Median milliseconds of the reference convolution (see the module docstring) at `size`."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 64, *size, generator=generator).contiguous(memory_format=torch.channels_last)
    weight = (torch.rand(64, 64, 3, 3, generator=generator) - 0.5).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch_threads(cpu_threads()):
        return median_ms(lambda: F.conv2d(x, weight, padding=1), repeats, warmup, torch.device("cpu"))


def measure_cpu_speed(candidates: list[Candidate], settings: Settings, log: Log) -> dict[str, Any]:
    """The ``cpu_speed`` section (see the module docstring); on a GPU run it says it was not measured."""
    if settings.device.type != "cpu":
        return {"skipped": "a CPU measurement; run with --device cpu"}
    size = settings.worker_sizes[0] if settings.quick else CPU_SIZE
    repeats = max(2, settings.worker_repeats)
    unit_start = reference_unit_ms(max(3, repeats))
    log(f"reference unit: {unit_start:.1f} ms")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stylepass-cpu-speed-") as temp:
        folder = Path(temp)
        (folder / "export").mkdir()
        sources = [write_synthetic_export(folder / "export" / f"frame_{n:06d}.exr", *size, seed=n)
                   for n in range(1, LOOP_FRAMES + 1)]
        for candidate in (c for c in candidates if c.role == "preset"):
            model_dir = candidate.model_dir
            assert model_dir is not None  # a preset's candidate has its folder
            for path, engine, precision in PATHS:
                entry: dict[str, Any] = {"model": candidate.name, "size": size_label(size), "path": path}
                try:
                    styliser = load_styliser(model_dir, "cpu", engine=engine, precision=precision)
                except StyliseError as error:
                    rows.append({**entry, "skipped": str(error)})
                    log(f"{candidate.name} {path}: skipped ({error})")
                    continue
                try:
                    row: dict[str, Any] = dict(time_paths(
                        styliser, sources, folder / f"out_{candidate.name.split(':')[1]}_{path}", repeats))
                finally:
                    styliser.close()
                if precision == "int8":
                    row["int8_check"] = int8_check(model_dir)
                rows.append({**entry, **row})
                log(f"{candidate.name} {size_label(size)} {path}: {row['loop_ms']:.0f} ms per frame in the loop, "
                    f"model {row['model_ms']:.0f} ms")
    unit_end = reference_unit_ms(max(3, repeats))
    unit = (unit_start + unit_end) / 2.0  # the load of a shared machine drifts over a run
    log(f"reference unit: {unit_end:.1f} ms at the end, {unit:.1f} ms on average")
    rows = [{**row, **{key.replace("_ms", "_units"): value / unit for key, value in row.items()
                       if key.endswith("_ms") and isinstance(value, float)}} for row in rows]
    return {"reference_unit": {**REFERENCE, "ms": unit, "ms_at_start": unit_start, "ms_at_end": unit_end,
                               "threads": cpu_threads()},
            "units_target": UNITS_TARGET, "rows": rows, "presets": preset_summary(rows)}


def time_paths(styliser: Styliser, sources: list[Path], out: Path, repeats: int) -> dict[str, float]:
    """The loop's per-frame time on `sources` and each stage alone (see the module docstring)."""
    def report_times(frames: list[Path], folder: Path) -> list[float]:
        """perf_counter() at each frame's "stylised" report of one stylise_jobs run on `frames`."""
        jobs = [FrameJob(source, folder / f"{output_stem(source)}.exr", folder / f"{output_stem(source)}.png")
                for source in frames]
        times: list[float] = []
        summary = stylise_jobs(styliser, jobs, folder, on_frame=lambda *_: times.append(time.perf_counter()))
        if len(summary.stylised) != len(jobs):
            raise RuntimeError(f"the stylise loop did not stylise every frame: {summary}")
        return times

    report_times(sources[:1], out / "warm_up")
    times = report_times(sources, out / "all")
    steady = itertools.pairwise(times[:-1])  # the last interval is the last frame's write alone
    loop_ms = 1000.0 * statistics.median(later - earlier for earlier, later in steady)

    frame = read_frame(sources[0])
    read_ms = median_ms(lambda: read_frame(sources[0]), repeats, 0, torch.device("cpu"))
    prepare, model = stage_calls(styliser, frame)
    prepare_ms = median_ms(prepare, repeats, 0, torch.device("cpu"))
    model_ms = median_ms(model, repeats, 1, torch.device("cpu"))
    output = np.clip(np.random.default_rng(0).random((3, *frame.size), dtype=np.float32), 0.0, 1.0)
    finish_ms = median_ms(lambda: inverse_tonemap(np.clip(output, 0.0, 1.0)).astype(np.float32, copy=False),
                          repeats, 0, torch.device("cpu"))
    rgb = styliser.stylise(frame)
    write_ms = median_ms(lambda: write_stylised(rgb, out / "alone.exr", out / "alone.png"), repeats, 0,
                         torch.device("cpu"))
    stages = read_ms + prepare_ms + model_ms + finish_ms + write_ms
    return {"loop_ms": loop_ms, "read_ms": read_ms, "prepare_ms": prepare_ms, "model_ms": model_ms,
            "finish_ms": finish_ms, "write_ms": write_ms, "stages_ms": stages, "overlap_saved_ms": stages - loop_ms}


def stage_calls(styliser: Styliser, frame: Any) -> tuple[Callable[[], object], Callable[[], object]]:
    """(preparing the runtime's inputs of `frame`, the runtime's model call on them) to time."""
    if isinstance(styliser, OnnxStyliser):
        feed = styliser.frame_feed(frame)
        return (lambda: styliser.frame_feed(frame)), (lambda: styliser.session.run(["rgb"], feed))
    if isinstance(styliser, TorchStyliser):
        from stylepass.core.inference.predict import predict
        from stylepass.core.models.inputs import frame_to_tensors

        assert styliser.model is not None and styliser.config is not None
        model, passes = styliser.model, styliser.config.gbuffer_passes

        def prepare() -> dict[str, torch.Tensor]:
            return {k: v[None] for k, v in frame_to_tensors(frame, passes).items()}

        batch = prepare()
        return prepare, (lambda: predict(model, batch["image"], batch["gbuffers"], batch["material_id"]))
    raise TypeError(f"no stages to time for {type(styliser).__name__}")


def int8_check(model_dir: Path) -> dict[str, Any] | None:
    """The check ``stylepass quantize`` recorded in the folder's int8 model, if any."""
    import onnx

    path = model_dir / INT8_MODEL
    if not path.is_file():
        return None
    metadata = {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}
    check = metadata.get("stylepass.int8_check")
    return None if check is None else dict(json.loads(check))


def preset_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per preset: each path's loop time in units, whether int8 is kept, the fastest kept path,
    and how far it is from :data:`UNITS_TARGET`."""
    summary = []
    for model in dict.fromkeys(row["model"] for row in rows):
        paths = {row["path"]: row for row in rows if row["model"] == model and "loop_ms" in row}
        sizes = [row["size"] for row in rows if row["model"] == model]
        entry: dict[str, Any] = {"model": model, "size": sizes[0]}
        for path, row in paths.items():
            entry.update({f"{path}_units": row["loop_units"], f"{path}_ms": row["loop_ms"]})
        kept = [path for path in ("onnx_fp32", "torch") if path in paths]
        int8, fp32 = paths.get("onnx_int8"), paths.get("onnx_fp32")
        if int8 is not None and fp32 is not None:
            verdict = int8_verdict(int8, fp32)
            entry["int8"] = verdict
            if verdict["kept"]:
                kept.append("onnx_int8")
        if kept:
            best = min(kept, key=lambda path: paths[path]["loop_units"])
            entry.update(best_path=best, best_units=paths[best]["loop_units"],
                         meets_target=paths[best]["loop_units"] <= UNITS_TARGET,
                         over_target_units=max(0.0, paths[best]["loop_units"] - UNITS_TARGET))
        summary.append(entry)
    return summary


def int8_verdict(int8: dict[str, Any], fp32: dict[str, Any]) -> dict[str, Any]:
    """Whether the int8 path is kept: faster in the loop and within :data:`INT8_MAX_DB_LOSS` dB."""
    speedup = fp32["loop_ms"] / int8["loop_ms"]
    check = int8.get("int8_check") or {}
    fp32_db, int8_db = check.get("fp32_psnr_vs_target_db"), check.get("int8_psnr_vs_target_db")
    loss = None if fp32_db is None or int8_db is None else fp32_db - int8_db
    reasons = []
    if speedup <= 1.0:
        reasons.append(f"not faster ({speedup:.2f}x)")
    if loss is None:
        reasons.append("no quality check against targets recorded (calibrated on an export folder)")
    elif loss > INT8_MAX_DB_LOSS:
        reasons.append(f"loses {loss:.2f} dB against the targets")
    return {"speedup_over_fp32": speedup, "db_loss_vs_target": loss,
            "psnr_int8_vs_fp32_db": check.get("psnr_int8_vs_fp32_db"), "kept": not reasons,
            "why_not": "; ".join(reasons) or None}


def worst_units(report: dict[str, Any]) -> tuple[float | None, str | None]:
    """The worst preset's per-frame units at 1920x1080 on its fastest kept path (a target's figure)."""
    section = report.get("cpu_speed", {})
    presets = [row for row in section.get("presets", []) if row.get("size") == "1920x1080"]
    values = [row.get("best_units") for row in presets]
    if not presets or any(value is None for value in values):
        return None, "no 1920x1080 stylise-loop figure for every preset"
    return max(value for value in values if value is not None), None
