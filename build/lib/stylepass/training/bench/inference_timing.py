"""Inference timing of ``stylepass bench``: ms per frame, frames/s and peak memory of each
candidate at the run's sizes, and every preset on a tiled 7680x4320 frame (CUDA)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stylepass.core.inference.stylise import AUTO_TILE, TILE_CONTEXT, TILE_OVERLAP

from .baselines import parameter_count
from .candidates import Candidate, device_inputs
from .flops import frame_tflop, meta_model
from .settings import Log, Settings, out_of_memory, over_cpu_budget, padded_pixels, size_label, skipped
from .timing import median_ms, peak_memory, predict_call

SIZE_8K = (4320, 7680)  # (H, W)


def cpu_estimate_s(candidate: Candidate, model: nn.Module, size: tuple[int, int]) -> float:
    """Estimated CPU seconds for one frame of `size`: from the candidate's last measurement, or
    from a 32x32 probe (padded to the model's multiple) run twice."""
    if candidate.seconds_per_pixel is None:
        side = max(32, candidate.multiple)
        probe = device_inputs(candidate, (side, side), torch.device("cpu"))
        seconds = median_ms(predict_call(model, probe), 1, 1, torch.device("cpu")) / 1000.0
        candidate.seconds_per_pixel = seconds / padded_pixels((side, side), candidate.multiple)
    return candidate.seconds_per_pixel * padded_pixels(size, candidate.multiple)



def measure_inference(candidate: Candidate, settings: Settings, log: Log) -> list[dict[str, Any]]:
    """ms per frame, frames/s and peak memory of `candidate` at every size of the run."""
    device = settings.device
    model = candidate.build().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    parameters = parameter_count(model)
    compiled = settings.compile and candidate.role != "baseline"
    runner: nn.Module = torch.compile(model, dynamic=False) if compiled else model  # type: ignore[assignment]
    baseline = candidate.role == "baseline"
    repeats = settings.baseline_repeats if baseline else settings.repeats
    counted = meta_model(candidate.build)
    rows = []
    for size in settings.baseline_sizes if baseline else settings.sizes:
        tflop = frame_tflop(counted, candidate.gbuffer_count, size)
        entry = {"model": candidate.name, "role": candidate.role, "family": candidate.family,
                 "parameters": parameters, "size": size_label(size), "compiled": compiled, "tflop_per_frame": tflop}
        if device.type == "cpu" and not settings.quick:
            reason = over_cpu_budget(cpu_estimate_s(candidate, model, size), "frame")
            if reason is not None:
                rows.append(skipped(entry, reason, log))
                continue
        try:
            with peak_memory(device) as memory:
                inputs = device_inputs(candidate, size, device)
                ms = median_ms(predict_call(runner, inputs), repeats, settings.warmup, device)
        except torch.OutOfMemoryError:
            rows.append(skipped(entry, out_of_memory(device), log))
            continue
        finally:
            inputs = {}
        candidate.seconds_per_pixel = ms / 1000.0 / padded_pixels(size, candidate.multiple)
        rows.append({**entry, "ms_per_frame": ms, "frames_per_s": 1000.0 / ms, "peak_memory_mib": memory["peak_mib"],
                     "achieved_tflop_per_s": tflop / (ms / 1000.0), "repeats": repeats})
        log(f"{candidate.name} {size_label(size)}: {ms:.2f} ms per frame")
    return rows


def measure_tiled_8k(candidate: Candidate, settings: Settings, log: Log) -> dict[str, Any]:
    """A 7680x4320 frame in the tiles ``stylepass stylise`` uses (CUDA only): time and peak memory."""
    device = settings.device
    entry = {"model": candidate.name, "size": size_label(SIZE_8K), "tile": AUTO_TILE, "overlap": TILE_OVERLAP,
             "context": TILE_CONTEXT}
    if device.type != "cuda":
        return skipped(entry, "GPU measurement (tiling keeps GPU memory bounded); run with --device cuda", log)
    model = candidate.build().to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        with peak_memory(device) as memory:
            inputs = device_inputs(candidate, SIZE_8K, device)
            ms = median_ms(predict_call(model, inputs, AUTO_TILE, TILE_OVERLAP, TILE_CONTEXT), 3, 1, device)
    except torch.OutOfMemoryError:
        return skipped(entry, out_of_memory(device), log)
    finally:
        inputs = {}
    log(f"{candidate.name} {size_label(SIZE_8K)} tiled: {ms:.1f} ms, peak {memory['peak_mib']:.0f} MiB")
    return {**entry, "ms_per_frame": ms, "peak_memory_mib": memory["peak_mib"]}
