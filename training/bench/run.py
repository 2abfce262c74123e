"""``stylepass bench``: speed of the shipped presets, the model families and two baselines, in one
process, with the figures the project's performance targets are checked against.

What is measured (each after warm-up; CUDA: bf16 autocast, channels_last, cudnn.benchmark, CUDA
events and no host-device copies in the timed loop; CPU: float32 and ``time.perf_counter``):

* ``inference``: ms per frame, frames/s and peak GPU memory of every preset (loaded from
  ``presets/<name>/model/`` as ``stylepass stylise`` loads it), of each model family at its
  default config (random weights) and of the baselines (:mod:`.bench_baselines`) at 512x512,
  1920x1080 and 3840x2160 (batch 1, through :func:`~stylepass.core.inference.predict.predict`).
* ``tiled_8k`` (CUDA): every preset on a 7680x4320 frame in the tiles ``stylepass stylise`` uses.
* ``training``: optimisation steps/s of each preset's training config at 256x256, batch 16 (the
  training loop's own step, bf16 on CUDA) and of the pix2pix reference in float32.
* ``worker``: one exported frame through the worker (``stylepass.core.inference.worker``: read_gbuffer ->
  model -> atomic EXR write), wall time, and the part beyond the model's own time.
* ``ratios`` and ``scaling``: each preset and family against its family's baseline, and the
  3840x2160 time over the 1920x1080 time; ``targets``: each target, its figure, pass or fail.

On the CPU, a measurement whose estimated time per frame or step (from the model's smaller sizes,
or a 32x32 probe) is above :data:`CPU_BUDGET_S` is skipped and says so. ``--quick`` uses tiny
sizes and few repeats (a smoke test of the whole suite; its figures check no target).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stylepass.blender_addon.contract.export_format import pass_spec
from stylepass.core.io.exr_file import write_exr
from stylepass.core.models.config import ModelConfig, RADConfig, UNetConfig, build_generator
from stylepass.core.inference.predict import predict
from stylepass.core.models.inputs import gbuffer_channels
from stylepass.core.models.serialization import MODEL_CONFIG, MODEL_WEIGHTS, load_model
from stylepass.core.inference.stylise import (
    AUTO_TILE,
    PRESET_MODEL_FOLDER,
    TILE_CONTEXT,
    TILE_OVERLAP,
    presets_dir,
)

from .baselines import (
    EPE_LAYOUT,
    EPE_PUBLISHED_PARAMETERS,
    EPE_PUBLISHED_TFLOP_960x540,
    UNET_256_PARAMETERS,
    ReferencePatchGAN,
    ReferenceUNet,
    parameter_count,
)
from .flops import frame_tflop, meta_model
from .timing import call_times_ms, median_ms, peak_memory, synthetic_batch, training_step, training_step_ms
from ..loop.config import TrainConfig, load_config

SCHEMA = "stylepass-bench/1"
FULL_SIZES = ((512, 512), (1080, 1920), (2160, 3840))  # (H, W)
QUICK_SIZES = ((32, 32), (32, 64))
SIZE_8K = (4320, 7680)
CPU_BUDGET_S = 10.0  # CPU: skip a frame or step estimated to take longer than this
GB = 1e9
EPE_BASELINE = "baseline:epe_layout"
UNET_BASELINE = "baseline:reference_unet_256"
TRAIN_BASELINE = "baseline:reference_pix2pix"
HALF_FLOAT_PASSES = ("beauty", "albedo")  # Blender writes colour passes as half float
Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much to measure, from ``--device``, ``--quick`` and ``--compile``."""

    device: torch.device
    quick: bool
    compile: bool
    sizes: tuple[tuple[int, int], ...]
    baseline_sizes: tuple[tuple[int, int], ...]
    warmup: int
    repeats: int
    baseline_repeats: int  # the baselines are slow: fewer repeats
    train_crop: int
    train_batch: int
    train_repeats: int
    worker_sizes: tuple[tuple[int, int], ...]
    worker_repeats: int

    @classmethod
    def for_run(cls, device: torch.device, quick: bool = False, compile: bool = False) -> Settings:
        """The settings of a full or ``--quick`` run on `device`."""
        if quick:
            return cls(device, True, compile, QUICK_SIZES, QUICK_SIZES[:1], 1, 2, 1, 32, 1, 1, QUICK_SIZES[:1], 2)
        if device.type == "cuda":
            return cls(device, False, compile, FULL_SIZES, FULL_SIZES, 5, 20, 5, 256, 16, 10, FULL_SIZES[1:2], 5)
        return cls(device, False, compile, FULL_SIZES, FULL_SIZES, 1, 3, 2, 256, 16, 2, FULL_SIZES[:2], 2)

    def describe(self) -> dict[str, Any]:
        """The settings as they go into the JSON."""
        cuda = self.device.type == "cuda"
        return {
            "dtype": "bfloat16 autocast" if cuda else "float32",
            "channels_last": cuda,
            "cudnn_benchmark": cuda,
            "compile": self.compile,
            "tf32_convolutions": bool(torch.backends.cudnn.allow_tf32) if cuda else None,
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32) if cuda else None,
            "quick": self.quick,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "baseline_repeats": self.baseline_repeats,
            "sizes": [size_label(size) for size in self.sizes],
            "baseline_sizes": [size_label(size) for size in self.baseline_sizes],
            "train_crop": self.train_crop,
            "train_batch": self.train_batch,
            "train_repeats": self.train_repeats,
            "worker_sizes": [size_label(size) for size in self.worker_sizes],
            "cpu_budget_s": None if cuda or self.quick else CPU_BUDGET_S,
        }


@dataclasses.dataclass
class Candidate:
    """A model to time: a preset, a family default or a baseline."""

    name: str  # "preset:toon", "family:unet", "baseline:epe_layout", ...
    role: str  # "preset", "family" or "baseline"
    family: str  # "unet" or "rad"
    build: Callable[[], nn.Module]  # the generator on the CPU, eval mode
    gbuffer_count: int
    multiple: int  # inputs are padded to a multiple of this
    model_dir: Path | None = None
    train_config: TrainConfig | None = None
    seconds_per_pixel: float | None = None  # CPU estimate, from its latest measurement


def size_label(size: tuple[int, int]) -> str:
    """(H, W) -> "WxH" (the way frame sizes are usually written)."""
    return f"{size[1]}x{size[0]}"


def padded_pixels(size: tuple[int, int], multiple: int) -> int:
    """Pixels the model computes on for a (H, W) frame padded to `multiple`."""
    return math.ceil(size[0] / multiple) * multiple * math.ceil(size[1] / multiple) * multiple


# ---------------------------------------------------------------------------------------
# environment


def environment(device: torch.device) -> dict[str, Any]:
    """Device name, torch/CUDA versions, git commit and date for the JSON."""
    repo = Path(__file__).resolve().parents[2]
    commit, dirty = os.environ.get("STYLEPASS_GIT_COMMIT"), None
    if commit is None:
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                    check=True, timeout=10).stdout.strip()
            dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                        capture_output=True, text=True, check=True, timeout=10).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            commit = None
    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "device_type": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else cpu_model(),
        "gpu_memory_gib": torch.cuda.get_device_properties(device).total_memory / 2**30 if cuda else None,
        "cpu": cpu_model(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------
# candidates


def preset_candidates(root: Path) -> tuple[list[Candidate], list[str]]:
    """Every preset of `root` with a trained model, and the names of those without one."""
    found, missing = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        model_dir = folder / PRESET_MODEL_FOLDER
        if not (model_dir / MODEL_WEIGHTS).is_file() or not (model_dir / MODEL_CONFIG).is_file():
            missing.append(folder.name)
            continue
        model, config = load_model(model_dir)
        train_toml = folder / "train.toml"
        found.append(Candidate(
            f"preset:{folder.name}", "preset", config.family,
            lambda directory=model_dir: load_model(directory)[0],
            gbuffer_channels(config.gbuffer_passes) if config.gbuffer_passes else 1,
            int(getattr(model, "multiple", 1)), model_dir,
            load_config(train_toml) if train_toml.is_file() else None,
        ))
    return found, missing


def config_candidate(name: str, role: str, config: ModelConfig) -> Candidate:
    """A generator built from `config` with seeded random weights."""
    def build() -> nn.Module:
        torch.manual_seed(0)
        return build_generator(config).eval()

    with torch.device("meta"):
        multiple = int(getattr(build_generator(config), "multiple", 1))
    channels = gbuffer_channels(config.gbuffer_passes) if config.gbuffer_passes else 1
    return Candidate(name, role, config.family, build, channels, multiple)


def reference_unet_candidate() -> Candidate:
    """pix2pix unet_256 (image only; the G-buffer tensor it is given is ignored)."""
    def build() -> nn.Module:
        torch.manual_seed(0)
        return ReferenceUNet().eval()

    return Candidate(UNET_BASELINE, "baseline", "unet", build, 1, 256)


def all_candidates(root: Path) -> tuple[list[Candidate], list[str]]:
    """Presets, family defaults and baselines, in that order; and presets without a model."""
    presets, missing = preset_candidates(root)
    return presets + [
        config_candidate("family:unet", "family", UNetConfig()),
        config_candidate("family:rad", "family", RADConfig()),
        config_candidate(EPE_BASELINE, "baseline", EPE_LAYOUT),
        reference_unet_candidate(),
    ], missing


def baselines_summary() -> dict[str, Any]:
    """Parameter counts of the baselines against the published ones, their configs, and the EPE
    layout's TFLOP per 960x540 frame against the published figure."""
    with torch.device("meta"):
        epe_model = build_generator(EPE_LAYOUT).eval()
        epe = parameter_count(epe_model)
        unet = parameter_count(ReferenceUNet())
        patchgan = parameter_count(ReferencePatchGAN())
    return {
        EPE_BASELINE: {
            "what": "our RAD generator in the published layout of the official EPE generator (Richter et al. 2021)",
            "parameters": epe, "published_parameters": EPE_PUBLISHED_PARAMETERS,
            "tflop_960x540": frame_tflop(epe_model, gbuffer_channels(EPE_LAYOUT.gbuffer_passes), (540, 960)),
            "published_tflop_960x540": EPE_PUBLISHED_TFLOP_960x540,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(EPE_LAYOUT).items()},
        },
        UNET_BASELINE: {
            "what": "pix2pix unet_256 (8 downsamplings, 64 channels, batch norm, dropout), image input only",
            "parameters": unet, "published_parameters": UNET_256_PARAMETERS,
        },
        TRAIN_BASELINE: {
            "what": "unet_256 + pix2pix basic PatchGAN (batch norm), float32, NCHW, GAN + 100 L1, Adam",
            "parameters": unet + patchgan,
        },
    }


# ---------------------------------------------------------------------------------------
# measurements


def skipped(entry: dict[str, Any], reason: str, log: Log) -> dict[str, Any]:
    """`entry` marked as skipped for `reason` (logged)."""
    log(f"{entry.get('model', '')} {entry.get('size', '')}: skipped ({reason})")
    return {**entry, "skipped": reason}


def device_inputs(candidate: Candidate, size: tuple[int, int], device: torch.device) -> dict[str, torch.Tensor]:
    """Random image (1, 3, H, W), G-buffers (1, C, H, W) and material ids (1, H, W) on `device`."""
    return synthetic_batch(UNetConfig(), 1, *size, device, gbuffer_count=candidate.gbuffer_count)


def cpu_estimate_s(candidate: Candidate, model: nn.Module, size: tuple[int, int]) -> float:
    """Estimated CPU seconds for one frame of `size`: from the candidate's last measurement, or
    from a 32x32 probe (padded to the model's multiple) run twice."""
    if candidate.seconds_per_pixel is None:
        side = max(32, candidate.multiple)
        probe = device_inputs(candidate, (side, side), torch.device("cpu"))
        seconds = median_ms(lambda: predict(model, probe["image"], probe["gbuffers"], probe["material_id"]),
                            1, 1, torch.device("cpu")) / 1000.0
        candidate.seconds_per_pixel = seconds / padded_pixels((side, side), candidate.multiple)
    return candidate.seconds_per_pixel * padded_pixels(size, candidate.multiple)


def over_cpu_budget(estimate_s: float, per: str) -> str | None:
    """Why a CPU measurement estimated at `estimate_s` seconds per `per` ("frame", "step") is
    skipped, or None when it fits the budget."""
    if estimate_s <= CPU_BUDGET_S:
        return None
    return (f"estimated {estimate_s:.0f} s per {per} on this CPU, above the {CPU_BUDGET_S:.0f} s budget; "
            "measure it on a GPU")


def out_of_memory(device: torch.device) -> str:
    """Free the cache after an out-of-memory error; the reason to record."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return f"out of memory on {device}"


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
                ms = median_ms(lambda: predict(runner, inputs["image"], inputs["gbuffers"], inputs["material_id"]),
                               repeats, settings.warmup, device)
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
            ms = median_ms(lambda: predict(model, inputs["image"], inputs["gbuffers"], inputs["material_id"],
                                           AUTO_TILE, TILE_OVERLAP, TILE_CONTEXT), 3, 1, device)
    except torch.OutOfMemoryError:
        return skipped(entry, out_of_memory(device), log)
    finally:
        inputs = {}
    log(f"{candidate.name} {size_label(SIZE_8K)} tiled: {ms:.1f} ms, peak {memory['peak_mib']:.0f} MiB")
    return {**entry, "ms_per_frame": ms, "peak_memory_mib": memory["peak_mib"]}


def measure_training(candidates: list[Candidate], settings: Settings, log: Log) -> list[dict[str, Any]]:
    """Steps/s of each preset's training config (mixed precision on CUDA) and of the float32
    pix2pix reference, at the run's crop and batch size."""
    device, crop, batch_size = settings.device, settings.train_crop, settings.train_batch
    rows = []
    jobs: list[tuple[str, str, Callable[[], Any], Candidate | None]] = []
    for candidate in candidates:
        if candidate.role == "preset" and candidate.train_config is not None:
            jobs.append((candidate.name, candidate.family, lambda c=candidate: _preset_step(c, settings), candidate))
    reference = next((c for c in candidates if c.name == UNET_BASELINE), None)
    jobs.append((TRAIN_BASELINE, "unet", lambda: _reference_step(settings), reference))
    for name, family, make, estimate_from in jobs:
        reference_run = name == TRAIN_BASELINE
        entry = {"model": name, "family": family, "crop": crop, "batch": batch_size,
                 "dtype": "float32" if reference_run or device.type == "cpu" else "bfloat16 autocast",
                 "channels_last": device.type == "cuda" and not reference_run}
        if device.type == "cpu" and not settings.quick:
            if estimate_from is None or estimate_from.seconds_per_pixel is None:
                rows.append(skipped(entry, "its inference was not measured, so its step cannot be estimated", log))
                continue
            # forward + backward ~ 3 forwards per crop, plus the discriminator
            estimate = 3.0 * batch_size * estimate_from.seconds_per_pixel * padded_pixels((crop, crop),
                                                                                           estimate_from.multiple)
            reason = over_cpu_budget(estimate, "step")
            if reason is not None:
                rows.append(skipped(entry, reason, log))
                continue
        try:
            with peak_memory(device) as memory:
                step, batch = make()
                ms = training_step_ms(step, batch, settings.train_repeats, 1, device)
        except torch.OutOfMemoryError:
            rows.append(skipped(entry, out_of_memory(device), log))
            continue
        rows.append({**entry, "ms_per_step": ms, "steps_per_s": 1000.0 / ms, "peak_memory_mib": memory["peak_mib"]})
        log(f"training {name} {crop}x{crop} batch {batch_size}: {1000.0 / ms:.2f} steps/s")
    return rows


def _preset_step(candidate: Candidate, settings: Settings) -> tuple[Any, dict[str, torch.Tensor]]:
    assert candidate.train_config is not None
    config = candidate.train_config
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, batch_size=settings.train_batch, crop_size=settings.train_crop))
    torch.manual_seed(0)
    step = training_step(config, build_generator(config.model), settings.device)
    batch = synthetic_batch(config.model, settings.train_batch, settings.train_crop, settings.train_crop,
                            settings.device)
    return step, _to_memory_format(batch, settings.device.type == "cuda")


def _reference_step(settings: Settings) -> tuple[Any, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    config = TrainConfig(model=UNetConfig())  # pix2pix losses: lsgan + 100 L1; Adam 2e-4, betas (0.5, 0.999)
    step = training_step(config, ReferenceUNet(), settings.device, ReferencePatchGAN(6),
                         mixed_precision=False, channels_last=False)
    batch = synthetic_batch(config.model, settings.train_batch, settings.train_crop, settings.train_crop,
                            settings.device, gbuffer_count=1)
    return step, batch


def _to_memory_format(batch: dict[str, torch.Tensor], channels_last: bool) -> dict[str, torch.Tensor]:
    """4-D tensors of `batch` in channels_last (as the training loop feeds them on CUDA)."""
    if not channels_last:
        return batch
    return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}


# ---------------------------------------------------------------------------------------
# the worker, end to end


def write_synthetic_export(path: Path, height: int, width: int, seed: int = 0) -> Path:
    """Write a smooth random frame as a Blender 5.x-style G-buffer export (EXR + sidecar JSON).

    Passes: beauty (HDR, up to ~2), albedo, normal (camera facing), depth, material index
    (12 materials in vertical bands) and motion; the camera is the identity. Like Blender's
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


def measure_worker(candidates: list[Candidate], inference: list[dict[str, Any]], settings: Settings,
                   log: Log) -> list[dict[str, Any]]:
    """Each preset's worker on one exported frame per size: load, then stylise requests timed
    wall-clock; ``model_ms`` is the worker's own model on tensors already on the device.

    Where the time goes: ``phase_read_ms``, ``phase_stylise_ms`` and ``phase_write_ms`` are the
    worker's own timings of its requests (medians; :class:`~stylepass.core.inference.stylise.FrameTimings`),
    and ``transfer_and_prepare_ms`` is the stylise phase beyond the model (tone map, G-buffer
    stacking, host-device copies, the inverse tone map); ``read_gbuffer_ms`` and ``write_exr_ms``
    time the reader and writer alone.
    """
    from stylepass.core.io.gbuffer import read_gbuffer
    from stylepass.core.inference.stylise import write_exr_atomic
    from stylepass.core.inference.worker import Worker

    device = settings.device
    measured = {(row["model"], row["size"]) for row in inference if "ms_per_frame" in row}
    rows = []
    with tempfile.TemporaryDirectory(prefix="stylepass-bench-") as temp:
        folder = Path(temp)
        for size in settings.worker_sizes:
            frame_path = write_synthetic_export(folder / f"frame_{size_label(size)}.exr", *size)
            for candidate in (c for c in candidates if c.role == "preset"):
                entry = {"model": candidate.name, "size": size_label(size), "preview_png": False}
                if (candidate.name, size_label(size)) not in measured:
                    rows.append(skipped(entry, "its inference at this size was not measured", log))
                    continue
                replies: list[dict[str, Any]] = []
                worker = Worker(replies.append)
                worker.handle(json.dumps({"id": 1, "cmd": "load", "model": str(candidate.model_dir),
                                          "device": str(device)}))
                if not replies[-1].get("ok") or worker.styliser is None:
                    raise RuntimeError(f"the worker could not load {candidate.name}: {replies[-1]}")
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
                    write = median_wall_ms(lambda: write_exr_atomic(folder / "write_only.exr", rgb),
                                           settings.worker_repeats)
                    model = worker.styliser.model
                    inputs = device_inputs(candidate, size, device)
                    model_ms = median_ms(lambda: predict(model, inputs["image"], inputs["gbuffers"],
                                                         inputs["material_id"]), settings.repeats, 1, device)
                except torch.OutOfMemoryError:
                    rows.append(skipped(entry, out_of_memory(device), log))
                    continue
                finally:
                    worker.handle(json.dumps({"id": 3, "cmd": "shutdown"}))
                rows.append({**entry, "total_ms": total, "model_ms": model_ms, "beyond_model_ms": total - model_ms,
                             "read_gbuffer_ms": read, "write_exr_ms": write, **in_request,
                             "transfer_and_prepare_ms": in_request["phase_stylise_ms"] - model_ms})
                log(f"worker {candidate.name} {size_label(size)}: {total:.1f} ms end to end, "
                    f"{total - model_ms:.1f} ms beyond the model")
    return rows


def median_wall_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall milliseconds of `fn` after one untimed call (host code that synchronises itself)."""
    return median_ms(fn, repeats, 1, torch.device("cpu"))


# ---------------------------------------------------------------------------------------
# derived figures and targets


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


# ---------------------------------------------------------------------------------------
# the whole run


def run_bench(device: torch.device, quick: bool = False, compile: bool = False, log: Log = print,
              presets: Path | None = None) -> dict[str, Any]:
    """Measure everything (see the module docstring) and return the report (JSON-ready)."""
    settings = Settings.for_run(device, quick, compile)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    report: dict[str, Any] = {"schema": SCHEMA, "environment": environment(device), "settings": settings.describe()}
    candidates, missing = all_candidates(presets or presets_dir())
    report["models"] = [{"name": c.name, "role": c.role, "family": c.family} for c in candidates]
    report["presets_without_model"] = missing
    report["baselines"] = baselines_summary()
    inference: list[dict[str, Any]] = []
    for candidate in candidates:
        inference += measure_inference(candidate, settings, log)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next model starts from a clean allocator
    report["inference"] = inference
    report["tiled_8k"] = [measure_tiled_8k(c, settings, log) for c in candidates if c.role == "preset"]
    report["training"] = measure_training(candidates, settings, log)
    report["worker"] = measure_worker(candidates, inference, settings, log)
    report["ratios"] = ratios(inference)
    report["scaling"] = scaling(inference)
    report["targets"] = evaluate_targets(report)
    return report


def target_lines(report: dict[str, Any]) -> Iterator[str]:
    """Human-readable lines of the targets, for the end of the run."""
    for row in report["targets"]:
        measured = "-" if row["measured"] is None else f"{row['measured']:.3g} {row['unit']}"
        reason = f" ({row['reason']})" if "reason" in row else ""
        yield f"{row['status']:>12}  {measured:>12}  {row['target']}{reason}"
