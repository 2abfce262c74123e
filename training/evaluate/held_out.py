"""Evaluate a model on a held-out split of a paired dataset: PSNR and SSIM beside the baselines.

Used by ``stylepass evaluate`` (:mod:`stylepass.core.cli.evaluate_command`, which also runs the
Blender Denoise baseline). Everything here is Blender-free.

What is compared, per pair of the split (scenes never seen in training):

- ``model``: the model's output, computed by :class:`stylepass.core.inference.stylise.Styliser` on the
  whole frame, as ``stylepass stylise`` computes it;
- ``input``: the untouched input (the export's beauty);
- ``denoise`` (optional): the input through Blender's compositor Denoise node, read from the
  EXR the ``denoise`` job wrote;
- ``peer`` (datasets whose recipe has a ``[peer]`` render): what the user would render instead of
  running the model at about the same cost (e.g. Eevee with ray tracing on), rendered by
  ``stylepass dataset`` beside the input, with the render times of input, peer and target.

Metric space. The same as training validation (``val/psnr``, ``val/ssim`` in a run's
metrics.jsonl) and the presets' cards: images in the model range ``y = x / (1 + x)`` of
scene-linear RGB ``x`` (:func:`stylepass.core.models.inputs.tonemap`); PNG targets are decoded
from sRGB to linear first (:func:`stylepass.training.data.image_io.read_target_image`), so a display
white is 0.5. PSNR (data range 1, clamped at 100 dB for identical images) and SSIM (11x11
Gaussian, sigma 1.5) are :mod:`stylepass.training.evaluate.metrics`. Beside them, the fine-detail
ratio: the image's mean absolute Laplacian over the target's (1 keeps the target's detail; a
blurred output falls well below 1; noise or lines the target lacks rise above it). Means are over pairs, as
validation's are. Validation crops frames larger than ``train.val_max_size`` to their centre;
evaluation always uses whole frames.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylepass.blender_addon.contract.dataset_layout import IDENTITY_NAME, PAIRS_NAME, DatasetError
from stylepass.core.io.colour import inverse_tonemap, tonemap
from stylepass.core.io.preview_images import albedo_to_rgb8, tile_grid
from stylepass.core.models.inputs import frame_to_tensors

from ..data.image_io import ImageReadError, read_linear_exr, read_target_image
from ..data.paired_dataset import PairRecord, pair_records
from .metrics import laplacian_energy, psnr, ssim

REPORT_FORMAT = "stylepass-evaluation"
REPORT_VERSION = 3  # 2: the fine-detail ratio ("detail"); 3: the peer render and render seconds
METHODS = ("model", "input", "denoise", "peer")
RENDERS = ("input", "peer", "target")  # the renders a peer dataset records the wall times of
FIGURES = ("psnr", "ssim", "detail")  # per pair and method; "detail" is the fine-detail ratio below
MAX_PSNR = 100.0  # identical images give +inf; validation clamps to this too
METRIC_SPACE = ("model range y = x / (1 + x) of scene-linear RGB x (PNG targets sRGB-decoded to linear "
                "first), as in training validation; PSNR with data range 1, clamped at 100 dB; SSIM with "
                "an 11x11 Gaussian window (sigma 1.5), averaged over channels")
# The Denoise node's settings; the denoise job (blender_addon/headless/denoise_job.py) applies them.
DENOISE_SETTINGS = {"hdr": True, "prefilter": "ACCURATE", "quality": "HIGH"}
DENOISE_GUIDES = ("image: the Combined pass (scene-linear); albedo: the Diffuse Color pass; normal: the Normal "
                  "pass as rendered (world space)")
SHEET_MIN_TILE = 128  # small frames are enlarged (nearest neighbour) to at least this height on the sheet


class EvaluationError(DatasetError):
    """The dataset, split or a pair cannot be evaluated; the message says what to fix."""


# ---------------------------------------------------------------------------------------
# the dataset


def dataset_identity(root: Path) -> dict[str, Any] | None:
    """DATASET/dataset.json (what made the dataset), or None when the folder has none."""
    path = Path(root) / IDENTITY_NAME
    if not path.is_file():
        return None
    try:
        identity = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EvaluationError(f"{path} is not readable JSON: {error}") from None
    return identity if isinstance(identity, dict) else None


def target_kind(identity: dict[str, Any] | None) -> str | None:
    """The recipe's target kind (``enhance``, ``toon``, ``painted`` ...), or None when unknown."""
    try:
        kind = identity["recipe"]["target"]["kind"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return kind if isinstance(kind, str) else None


def split_pairs(root: Path, split: str, limit: int | None = None) -> list[PairRecord]:
    """The pairs of one split (the first `limit` of them), every file checked to exist.

    Raises EvaluationError: no dataset, no pair in the split (naming the splits present), or a
    listed input, sidecar or target missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise EvaluationError(f"dataset folder not found: {root}; make one with `stylepass dataset RECIPE --out "
                              f"{root}`")
    records = pair_records(root)
    chosen = [record for record in records if record.split == split]
    if not chosen:
        present = sorted({record.split for record in records})
        counts = ", ".join(f"{name} ({sum(r.split == name for r in records)} pairs)" for name in present)
        raise EvaluationError(f"{root}/{PAIRS_NAME} has no pair in split {split!r}; splits present: "
                              f"{counts or 'none'}")
    if limit is not None:
        chosen = chosen[:limit]
    with_peer = sum(record.peer is not None for record in chosen)
    if with_peer not in (0, len(chosen)):
        raise EvaluationError(f"{root}/{PAIRS_NAME}: {with_peer} of the {len(chosen)} pairs of split {split!r} have "
                              "a peer render: a dataset is made by one recipe; re-make it in a new folder")
    absent = [str(path) for record in chosen
              for path in (record.input, record.input.with_suffix(".json"), record.target, record.peer)
              if path is not None and not path.is_file()]
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise EvaluationError(f"{root}: {len(absent)} file(s) of split {split!r} listed in {PAIRS_NAME} are "
                              f"missing: {shown}; re-run the `stylepass dataset` command that made it to "
                              "finish it")
    return chosen


def relative_name(path: Path, root: Path) -> str:
    """`path` relative to the dataset folder when it is inside it, else the absolute path."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def pair_label(record: PairRecord) -> str:
    """Short name of a pair for people: ``scene_00003 frame_000001``."""
    return f"{record.scene} {record.input.stem}"


def denoised_path(denoise_dir: Path, record: PairRecord, root: Path) -> Path:
    """Where the denoised input of a pair goes: its path in the dataset under `denoise_dir`
    (inputs outside the dataset: a digest of their path)."""
    name = relative_name(record.input, root)
    if Path(name).is_absolute():
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        return Path(denoise_dir) / "external" / f"{digest}_{record.input.name}"
    return Path(denoise_dir) / name


def denoise_job_list(pairs: list[PairRecord], root: Path, denoise_dir: Path) -> dict[str, Any]:
    """The ``denoise`` job's JOBS.json content (see ``blender_addon/headless/denoise_job.py``) for `pairs`.

    Frame sizes come from the sidecars (``resolution`` [width, height]).
    """
    jobs = []
    for record in pairs:
        try:
            width, height = json.loads(record.input.with_suffix(".json").read_text())["resolution"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise EvaluationError(f"{record.input.with_suffix('.json')}: no usable resolution ({error}); export "
                                  "the frame again") from None
        jobs.append({"input": str(record.input.resolve()),
                     "output": str(denoised_path(denoise_dir, record, root).resolve()),
                     "width": int(width), "height": int(height), "label": pair_label(record)})
    return {"settings": DENOISE_SETTINGS, "jobs": jobs}


# ---------------------------------------------------------------------------------------
# metrics


def image_metrics(image: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``{"psnr", "ssim", "detail"}`` of one image against its target, both (3, H, W) in the model range
    [0, 1). ``detail``: mean absolute Laplacian of the image over the target's (a flat target counts
    as 1e-6, so the ratio stays finite)."""
    batch, reference = image[None].float(), target[None].float()
    detail = float(laplacian_energy(batch)[0]) / max(float(laplacian_energy(reference)[0]), 1e-6)
    return {"psnr": float(psnr(batch, reference).clamp(max=MAX_PSNR)[0]), "ssim": float(ssim(batch, reference)[0]),
            "detail": detail}


@contextlib.contextmanager
def deterministic_inference() -> Iterator[None]:
    """Deterministic kernels while in the block (cuDNN without autotuning), so the same command
    gives the same figures; the previous settings are restored after."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (before CUDA starts)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


# ---------------------------------------------------------------------------------------
# the evaluation


@dataclass
class Evaluation:
    """Per-pair figures and the panels of the first pairs for the sheet.

    rows: one dict per pair: ``scene``, ``input``, ``target`` (paths relative to the dataset),
        ``psnr``, ``ssim`` and ``detail`` (each ``{method: value}`` for the methods run).
    panels: for the first pairs, ``[input, output, target(, denoised)(, peer)]`` in the model range,
        each (3, H, W) float32 on the CPU.
    labels: the sheet's row labels of those pairs.
    model_seconds: the model's wall seconds per pair (``stylise`` only, not reading or scoring).
    render_seconds: per pair with a peer, the dataset's recorded render seconds (``input``, ``peer``,
        ``target``; a value may be None when a resumed dataset job did not time it).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    model_seconds: list[float] = field(default_factory=list)
    render_seconds: list[dict[str, float | None]] = field(default_factory=list)
    panels: list[list[torch.Tensor]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        """The methods compared, in METHODS order."""
        present = set(self.rows[0]["psnr"]) if self.rows else set()
        return [method for method in METHODS if method in present]


PairCallback = Callable[[int, int, str], None]  # (pairs done, pairs in all, pair label)
Stylise = Callable[[Any], np.ndarray]  # G-buffer frame -> scene-linear RGB (3, H, W)
ReadFrame = Callable[[Path], Any]  # export EXR path -> G-buffer frame


def evaluate_pairs(stylise: Stylise, read_frame: ReadFrame, pairs: list[PairRecord], root: Path,
                   denoised: list[Path] | None = None, sheet_rows: int = 8,
                   on_pair: PairCallback | None = None) -> Evaluation:
    """Compute the figures of every pair (deterministically).

    stylise: the model as ``stylepass stylise`` runs it (``Styliser.stylise``): a frame to
        scene-linear RGB (3, H, W), float32, >= 0.
    read_frame: reads an export EXR (``stylepass.core.inference.stylise.read_frame``).
    denoised: the denoised input EXR of each pair (None: no Denoise baseline).
    Raises EvaluationError for a target of another size than its input or unreadable.
    """
    evaluation = Evaluation()
    with deterministic_inference():
        for index, record in enumerate(pairs):
            assert record.target is not None  # evaluation pairs are read with their targets
            frame = read_frame(record.input)
            start = time.perf_counter()
            output = stylise(frame)
            evaluation.model_seconds.append(time.perf_counter() - start)
            images = {"model": tonemap(torch.from_numpy(np.ascontiguousarray(output))),
                      "input": frame_to_tensors(frame, ())["image"]}
            if denoised is not None:
                images["denoise"] = tonemap(torch.from_numpy(read_linear_exr(denoised[index])))
            if record.peer is not None:
                images["peer"] = _read_target(record.peer, record.input, tuple(images["input"].shape))
                evaluation.render_seconds.append(dict(record.seconds or {}))
            target = _read_target(record.target, record.input, tuple(images["input"].shape))
            figures = {method: image_metrics(image, target) for method, image in images.items()}
            evaluation.rows.append({
                "scene": record.scene, "input": relative_name(record.input, root),
                "target": relative_name(record.target, root),
                **{metric: {method: value[metric] for method, value in figures.items()} for metric in FIGURES}})
            if index < sheet_rows:
                panel = [images["input"], images["model"], target]
                evaluation.panels.append(panel + [images[m] for m in ("denoise", "peer") if m in images])
                evaluation.labels.append(pair_label(record))
            if on_pair is not None:
                on_pair(index + 1, len(pairs), pair_label(record))
    return evaluation


def _read_target(path: Path, input_path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """The target image at `path` (3, H, W) in [0, 1]; EvaluationError unless readable and of the
    input's `shape`."""
    try:
        target = read_target_image(path)
    except ImageReadError as error:
        raise EvaluationError(str(error)) from None
    except (OSError, RuntimeError) as error:  # a damaged PNG or EXR
        raise EvaluationError(f"{path} cannot be read: {error}") from None
    if tuple(target.shape) != shape:
        raise EvaluationError(f"{path}: target is {tuple(target.shape[-2:])} but input {input_path} is "
                              f"{shape[-2:]} (H, W); they must match")
    return target


def mean_figures(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{method: {"psnr", "ssim", "detail"}}``: means over `rows` (pairs), for the methods of the first row."""
    methods = [method for method in METHODS if rows and method in rows[0]["psnr"]]
    return {method: {metric: math.fsum(row[metric][method] for row in rows) / len(rows)
                     for metric in FIGURES} for method in methods}


def scene_figures(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{scene: {"pairs": n, method: {"psnr", "ssim", "detail"}}}``: means per scene, scenes sorted."""
    scenes: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        scenes.setdefault(row["scene"], []).append(row)
    return {scene: {"pairs": len(group), **mean_figures(group)} for scene, group in sorted(scenes.items())}


def mean_render_seconds(evaluation: Evaluation) -> dict[str, float | None] | None:
    """Mean recorded render seconds per frame of the input, peer and target renders over the pairs
    that timed them (None per render that no pair timed); None without a peer."""
    if not evaluation.render_seconds:
        return None
    means: dict[str, float | None] = {}
    for render in RENDERS:
        values = [float(v) for times in evaluation.render_seconds
                  if isinstance(v := times.get(render), (int, float))]
        means[render] = math.fsum(values) / len(values) if values else None
    return means


def build_report(evaluation: Evaluation, *, model: dict[str, Any], dataset: Path, identity: dict[str, Any] | None,
                 split: str, device: str, denoise: dict[str, Any] | None, sheet: str | None) -> dict[str, Any]:
    """The JSON report. It holds no time of this run or host, so the same command gives the same file
    (``render_seconds`` are the dataset's, recorded when it was made; the model's time of this run
    goes to :func:`timing_record`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        stylepass_version = version("stylepass")
    except PackageNotFoundError:
        stylepass_version = "unknown"
    return {
        "format": REPORT_FORMAT, "version": REPORT_VERSION, "stylepass": stylepass_version,
        "model": model,
        "dataset": {"path": str(Path(dataset).resolve()), "identity": identity,
                    "target_kind": target_kind(identity)},
        "split": split, "count": len(evaluation.rows), "device": device, "torch": torch.__version__,
        "metric_space": METRIC_SPACE, "methods": evaluation.methods, "denoise": denoise,
        "means": mean_figures(evaluation.rows), "scenes": scene_figures(evaluation.rows),
        "render_seconds": mean_render_seconds(evaluation),
        "pairs": evaluation.rows, "sheet": sheet,
    }


def timing_record(evaluation: Evaluation, *, runtime: str, device: str) -> dict[str, Any]:
    """This run's wall times (timing.json beside the report): the model's median seconds per frame
    beside the dataset's recorded render seconds, so a frame's cost with the model (input render +
    model) can be set against the peer's."""
    seconds = sorted(evaluation.model_seconds)
    median = seconds[len(seconds) // 2] if seconds else None
    return {"model_seconds_median": median, "model_seconds": evaluation.model_seconds, "runtime": runtime,
            "device": device, "cpu_count": os.cpu_count(), "render_seconds": mean_render_seconds(evaluation)}


# ---------------------------------------------------------------------------------------
# the side-by-side sheet


def display_rgb8(image: torch.Tensor) -> np.ndarray:
    """A model-range image (3, H, W) as Blender's Standard view shows it: back to scene-linear,
    clipped to [0, 1], sRGB curve; (H, W, 3) uint8. PNG targets come out as stored."""
    return albedo_to_rgb8(inverse_tonemap(image.float()).numpy())


def enlarged(tile: np.ndarray, min_height: int = SHEET_MIN_TILE) -> np.ndarray:
    """(H, W, 3) enlarged by the whole factor that makes it at least `min_height` tall (nearest)."""
    scale = max(1, -(-min_height // tile.shape[0]))
    return np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1) if scale > 1 else tile


def sheet_image(evaluation: Evaluation) -> np.ndarray:
    """input | output | target (| denoise)(| peer) for the first pairs, titles with the mean figures;
    (H', W', 3) uint8. Raises ValueError when there is no pair."""
    if not evaluation.panels:
        raise ValueError("no pair to show")
    means = mean_figures(evaluation.rows)
    def title(method: str, name: str) -> str:
        return f"{name} {means[method]['psnr']:.2f} dB, detail {means[method]['detail']:.2f}"

    titles = [title("input", "input"), title("model", "output"), "target"]
    titles += [title(method, method) for method in ("denoise", "peer") if method in means]
    rows = [[enlarged(display_rgb8(panel)) for panel in panels] for panels in evaluation.panels]
    return tile_grid(rows, titles, evaluation.labels)
