"""Figures derived from ``stylepass bench``'s measurements (speed-ups over the baselines,
3840x2160 over 1920x1080 scaling) and the project's performance targets checked against them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from .candidates import EPE_BASELINE, TRAIN_BASELINE, UNET_BASELINE
from .cpu_speed import UNITS_TARGET, worst_units

GB = 1e9


def _figure(rows: list[dict[str, Any]], model: str, size: str, key: str) -> float | None:
    for row in rows:
        if row["model"] == model and row.get("size") == size and key in row:
            return float(row[key])
    return None


def ratios(inference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Speed-up of each preset and family over its family's baseline, per size, and how many
    times fewer FLOPs it computes (``flop_ratio``, also where a time was skipped)."""
    rows = []
    for row in inference:
        if row["role"] == "baseline":
            continue
        baseline = EPE_BASELINE if row["family"] == "rad" else UNET_BASELINE
        entry = {"model": row["model"], "baseline": baseline, "size": row["size"]}
        base_tflop = _figure(inference, baseline, row["size"], "tflop_per_frame")
        if base_tflop is not None:
            entry["flop_ratio"] = base_tflop / row["tflop_per_frame"]
        base_ms = _figure(inference, baseline, row["size"], "ms_per_frame")
        if "ms_per_frame" not in row or base_ms is None:
            rows.append({**entry, "skipped": "one of the two was not measured at this size"})
        else:
            rows.append({**entry, "speedup": base_ms / row["ms_per_frame"]})
    return rows


def scaling(inference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """3840x2160 time over 1920x1080 time of every model measured at both."""
    rows = []
    for model in dict.fromkeys(row["model"] for row in inference):
        hd = _figure(inference, model, "1920x1080", "ms_per_frame")
        uhd = _figure(inference, model, "3840x2160", "ms_per_frame")
        if hd is not None and uhd is not None:
            rows.append({"model": model, "ratio_3840x2160_to_1920x1080": uhd / hd})
    return rows


@dataclasses.dataclass(frozen=True)
class Target:
    """A performance target: `figures(report)` gives the figures it takes the worst of."""

    id: str
    text: str
    unit: str
    threshold: float
    higher_is_better: bool
    device_type: str  # "cuda" or "cpu": where it is measured
    worst: Callable[[dict[str, Any]], tuple[float | None, str | None]]


def _worst(values: list[float | None], missing: str, higher_is_better: bool) -> tuple[float | None, str | None]:
    """The worst of `values`, or (None, reason) when there are none or one is missing."""
    if not values or any(v is None for v in values):
        return None, missing
    return (min if higher_is_better else max)(v for v in values if v is not None), None


def _presets(report: dict[str, Any], family: str | None = None) -> list[str]:
    return [row["name"] for row in report["models"]
            if row["role"] == "preset" and (family is None or row["family"] == family)]


def _rows_figure(report: dict[str, Any], section: str, models: list[str], size: str, key: str) -> list[float | None]:
    return [_figure(report[section], model, size, key) for model in models] if models else []


def _training_ratio(report: dict[str, Any]) -> tuple[float | None, str | None]:
    settings = report["settings"]
    if (settings["train_crop"], settings["train_batch"]) != (256, 16):
        return None, "training was measured at another crop or batch size"
    speed = {row["model"]: row.get("steps_per_s") for row in report["training"]}
    reference = speed.get(TRAIN_BASELINE)
    values = [speed[m] / reference if reference and speed.get(m) else None for m in _presets(report, "unet")]
    return _worst(values, "a pix2pix preset or the reference was not measured", True)


def _8k(report: dict[str, Any]) -> tuple[float | None, str | None]:
    rows = report["tiled_8k"]
    peaks = [row.get("peak_memory_mib") for row in rows]
    value, reason = _worst(peaks, "not every preset completed the tiled 8K frame", False)
    return (None if value is None else value * 2**20 / GB), reason


def _speedup(report: dict[str, Any], family: str) -> tuple[float | None, str | None]:
    models = _presets(report, family)
    values = [_figure(report["ratios"], model, "1920x1080", "speedup") for model in models]
    return _worst(values, "no 1920x1080 figure for a preset or its baseline", True)


def _scaling(report: dict[str, Any]) -> tuple[float | None, str | None]:
    values = [next((row["ratio_3840x2160_to_1920x1080"] for row in report["scaling"] if row["model"] == model), None)
              for model in _presets(report)]
    return _worst(values, "a preset lacks the 1920x1080 or 3840x2160 figure", False)


def _ms(section: str, family: str | None, size: str, key: str, scale: float = 1.0) -> Callable[
        [dict[str, Any]], tuple[float | None, str | None]]:
    """The worst `key` of the presets (of `family`, None: all) at `size` in `section`, times `scale`."""
    def worst(report: dict[str, Any]) -> tuple[float | None, str | None]:
        values = _rows_figure(report, section, _presets(report, family), size, key)
        value, reason = _worst(values, f"no {size} {section} figure for every {family or ''} preset", False)
        return (None if value is None else value * scale), reason
    return worst


TARGETS = (
    Target("rad_1080p_ms", "RAD (enhance) presets: one 1920x1080 frame in under 33 ms", "ms", 33.0, False, "cuda",
           _ms("inference", "rad", "1920x1080", "ms_per_frame")),
    Target("rad_vs_epe_1080p", "RAD presets >= 40x faster than the EPE-layout baseline at 1920x1080", "x", 40.0,
           True, "cuda", lambda r: _speedup(r, "rad")),
    Target("pix2pix_1080p_ms", "pix2pix presets: one 1920x1080 frame in under 2.5 ms", "ms", 2.5, False, "cuda",
           _ms("inference", "unet", "1920x1080", "ms_per_frame")),
    Target("pix2pix_vs_unet256_1080p", "pix2pix presets faster than the reference unet_256 at 1920x1080", "x", 1.0,
           True, "cuda", lambda r: _speedup(r, "unet")),
    Target("pix2pix_training_vs_reference", "pix2pix preset training (256x256, batch 16) >= 3x the reference's "
           "float32 steps/s", "x", 3.0, True, "cuda", _training_ratio),
    Target("uhd_vs_hd", "every preset: 3840x2160 in under 4x its 1920x1080 time", "x", 4.0, False, "cuda", _scaling),
    Target("tiled_8k_memory", "every preset completes a 7680x4320 frame by tiling within 8 GB of GPU memory", "GB",
           8.0, False, "cuda", _8k),
    Target("worker_beyond_model_ms", "worker, one exported 1920x1080 frame: under 150 ms beyond the model's time",
           "ms", 150.0, False, "cuda", _ms("worker", None, "1920x1080", "beyond_model_ms")),
    Target("cpu_pix2pix_1080p_s", "CPU: a 1920x1080 frame through a pix2pix preset (worker, end to end) in under 3 s",
           "s", 3.0, False, "cpu", _ms("worker", "unet", "1920x1080", "total_ms", 1e-3)),
    Target("cpu_1080p_units", "CPU: every preset's 1920x1080 frame through the stylise loop (per frame in a "
           "sequence, its fastest kept precision) within 3 reference units (issue 16)", "units", UNITS_TARGET, False,
           "cpu", worst_units),
    Target("cpu_enhance_512_s", "CPU: a 512x512 frame through the enhance (RAD) preset (worker, end to end) in "
           "under 2 s", "s", 2.0, False, "cpu", _ms("worker", "rad", "512x512", "total_ms", 1e-3)),
)


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured (worst) figure and "pass", "fail" or "not measured"."""
    rows = []
    device_type = report["environment"]["device_type"]
    for target in TARGETS:
        entry = {"id": target.id, "target": target.text, "threshold": target.threshold, "unit": target.unit,
                 "higher_is_better": target.higher_is_better, "measured": None}
        if device_type != target.device_type:
            where = "GPU" if target.device_type == "cuda" else "CPU"
            rows.append({**entry, "status": "not measured", "reason": f"a {where} target; run with --device "
                                                                     f"{target.device_type}"})
            continue
        value, reason = target.worst(report)
        if value is None:
            quick = " (--quick measures tiny sizes only)" if report["settings"]["quick"] else ""
            rows.append({**entry, "status": "not measured", "reason": f"{reason}{quick}"})
            continue
        ok = value >= target.threshold if target.higher_is_better else value < target.threshold
        rows.append({**entry, "measured": value, "status": "pass" if ok else "fail"})
    return rows



def target_lines(report: dict[str, Any]) -> Iterator[str]:
    """Human-readable lines of the targets, for the end of the run."""
    for row in report["targets"]:
        measured = "-" if row["measured"] is None else f"{row['measured']:.3g} {row['unit']}"
        reason = f" ({row['reason']})" if "reason" in row else ""
        yield f"{row['status']:>12}  {measured:>12}  {row['target']}{reason}"
