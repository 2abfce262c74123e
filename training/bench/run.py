"""``stylepass bench``: speed of the shipped presets, the model families and two baselines, in one
process, with the figures the project's performance targets are checked against.

What is measured (each after warm-up; CUDA: bf16 autocast, channels_last, cudnn.benchmark, CUDA
events and no host-device copies in the timed loop; CPU: float32 and ``time.perf_counter``):

* ``inference``: ms per frame, frames/s and peak GPU memory of every preset (loaded from
  ``presets/<name>/model/`` as ``stylepass stylise`` loads it), of each model family at its
  default config (random weights) and of the baselines (:mod:`.baselines`) at 512x512,
  1920x1080 and 3840x2160 (batch 1, through :func:`~stylepass.core.inference.predict.predict`).
* ``tiled_8k`` (CUDA): every preset on a 7680x4320 frame in the tiles ``stylepass stylise`` uses.
* ``training``: optimisation steps/s of each preset's training config at 256x256, batch 16 (the
  training loop's own step, bf16 on CUDA) and of the pix2pix reference in float32.
* ``worker``: one exported frame through the worker (``stylepass.core.inference.worker``: read_gbuffer ->
  model -> atomic EXR write) in ONNX Runtime, as ``stylepass stylise`` and the add-on run it, wall
  time, and the part beyond the model's own time; ``worker_torch``: the same in torch;
  ``runtimes``: the two side by side per preset and size, with torch's time over ONNX Runtime's.
* ``cpu_speed`` (CPU): each preset's 1920x1080 frame through the ``stylepass stylise`` loop in
  torch, ONNX Runtime float32 and int8, in ms and in reference units measured in the same run, and
  where the time goes (:mod:`.cpu_speed`).
* ``ratios`` and ``scaling``: each preset and family against its family's baseline, and the
  3840x2160 time over the 1920x1080 time; ``targets``: each target, its figure, pass or fail.

On the CPU, a measurement whose estimated time per frame or step (from the model's smaller sizes,
or a 32x32 probe) is above :data:`.settings.CPU_BUDGET_S` is skipped and says so. ``--quick`` uses tiny
sizes and few repeats (a smoke test of the whole suite; its figures check no target).

:func:`run_bench` is the entry point (``core/cli/bench_command.py``). The parts: :mod:`.settings`
(how much to measure), :mod:`.candidates` (what is timed), :mod:`.environment`,
:mod:`.inference_timing`, :mod:`.training_speed`, :mod:`.worker_timing` and :mod:`.targets` (derived
figures and the targets' verdicts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stylepass.core.inference.stylise import presets_dir

from .candidates import all_candidates, baselines_summary
from .cpu_speed import measure_cpu_speed
from .environment import environment
from .inference_timing import measure_inference, measure_tiled_8k
from .settings import Log, Settings
from .targets import evaluate_targets, ratios, scaling
from .training_speed import measure_training
from .worker_timing import measure_worker, runtime_ratios

SCHEMA = "stylepass-bench/1"


def run_bench(device: torch.device, quick: bool = False, compile: bool = False, log: Log = print,
              presets: Path | None = None, cpu_speed_only: bool = False) -> dict[str, Any]:
    """Measure everything (see the module docstring) and return the report (JSON-ready).

    cpu_speed_only: measure the ``cpu_speed`` section alone (the others are left empty, their
    targets not measured).
    """
    settings = Settings.for_run(device, quick, compile)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    report: dict[str, Any] = {"schema": SCHEMA, "environment": environment(device), "settings": settings.describe()}
    candidates, missing = all_candidates(presets or presets_dir())
    report["models"] = [{"name": c.name, "role": c.role, "family": c.family} for c in candidates]
    report["presets_without_model"] = missing
    report["baselines"] = baselines_summary()
    if cpu_speed_only:
        for section in ("inference", "tiled_8k", "training", "worker", "worker_torch", "runtimes", "ratios",
                        "scaling"):
            report[section] = []
        report["cpu_speed"] = measure_cpu_speed(candidates, settings, log)
        report["targets"] = evaluate_targets(report)
        return report
    inference: list[dict[str, Any]] = []
    for candidate in candidates:
        inference += measure_inference(candidate, settings, log)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next model starts from a clean allocator
    report["inference"] = inference
    report["tiled_8k"] = [measure_tiled_8k(c, settings, log) for c in candidates if c.role == "preset"]
    report["training"] = measure_training(candidates, settings, log)
    report["worker"] = measure_worker(candidates, inference, settings, log, engine="onnx")
    report["worker_torch"] = measure_worker(candidates, inference, settings, log, engine="torch")
    report["runtimes"] = runtime_ratios(report["worker"], report["worker_torch"])
    report["cpu_speed"] = measure_cpu_speed(candidates, settings, log)
    report["ratios"] = ratios(inference)
    report["scaling"] = scaling(inference)
    report["targets"] = evaluate_targets(report)
    return report
