"""Custom styles from painted keyframes: a few-shot styliser trained on 1 to 5 paintings.

``stylepass train-style EXPORT --out MODEL_DIR`` (and the add-on's Train style) call
:func:`train_style`. It reads the keyframes registered in an export folder
(:mod:`stylepass.blender_addon.contract.keyframes`: each painting over a frame, plus that frame's
G-buffers), trains a small G-buffer-conditioned U-Net on augmented patches of them
(:mod:`..data.augment`) and exports a model dir that loads like any preset.

Why a loop of its own rather than :func:`.trainer.train`: the 1 to 5 frames stay in memory
(no data loader reading EXRs each step), every patch is augmented, there is no validation
split to score (the preview shows an unpainted frame instead), and a time budget may end the
run. It shares the trainer's skeleton (:mod:`.run_control`): checkpoints from :mod:`.checkpoint`
(safetensors, written whole or not at all), the resume checks and exact resume (a step's patches
are a pure function of (seed, step)), cancellation after the current step with a checkpoint
(``should_stop``, which the CLI wires to :class:`.stop_signals.StopRequest`), and a stop on a
non-finite loss.

Work folder (``WORK``, by default ``MODEL_DIR.run`` beside the model)::

    WORK/settings.json      the settings and the paintings (SHA-256) the run was started with
    WORK/checkpoints/       as in training runs (latest.json, step-NNNNNNNN/)
    WORK/metrics.jsonl      mean loss per logging interval
    WORK/preview.png        input | output (| painting) of the first keyframe and an unpainted
                            frame, rewritten atomically while training

Model dir: weights, config, ``style.json`` (what it was trained from and how) and
``preview.png``, replaced as a whole (:mod:`.style_export`).

Paintings are only ever opened for reading.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stylepass.blender_addon.contract.atomic_files import append_jsonl, write_json_atomic
from stylepass.blender_addon.contract.export_format import frame_stem
from stylepass.blender_addon.contract.keyframes import KEYFRAMES_DIR, Keyframe, list_keyframes
from stylepass.core.inference.predict import autocast_for
from stylepass.core.io.colour import decode_srgb, encode_srgb
from stylepass.core.io.gbuffer import GBufferError, exported_frames, missing_passes, read_gbuffer
from stylepass.core.models.config import UNetConfig, build_generator
from stylepass.core.models.inputs import frame_to_tensors, tonemap
from stylepass.core.models.serialization import MODEL_CONFIG

from ..data.augment import AugmentSettings, augmented_batch, prepare_frame
from ..data.image_io import ImageReadError, read_linear_exr, read_srgb_png
from ..data.sampling import step_generator
from .checkpoint import latest_checkpoint, save_checkpoint
from .run_control import ResumeRefusals, check_finite, checkpoint_to_resume, resume_step
from .style_export import PREVIEW_FILE, export_style, write_preview

STYLE_PASSES = ("albedo", "normal", "depth")
SETTINGS_FILE = "settings.json"
METRICS_FILE = "metrics.jsonl"
TUNED_MAX_KEYFRAMES = 5
STYLE_REFUSALS = ResumeRefusals(
    nothing_to_resume="nothing to resume: {run} has no checkpoint; drop --resume to start afresh",
    run_exists="{run} holds a run already: pass --resume to continue it, or --restart to start over",
)
NON_FINITE_ADVICE = "check the paintings for NaN/inf, lower the learning rate, then --resume"


class TrainStyleError(ValueError):
    """The export, its paintings, an option or the folders asked for cannot be used; the message
    says what to do (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class StyleSettings:
    """How a style is trained. The defaults aim at a usable style within 20 minutes on a 2-core
    CPU at 512x512 and well under 2 minutes on a GPU (measurements: docs/train-style.md)."""

    steps: int = 2000
    batch_size: int = 4
    lr: float = 1e-3  # Adam; constant for the first half, then falling linearly to 5 % of it
    base_width: int = 16  # U-Net channels at full resolution
    depth: int = 4  # U-Net downsamplings (receptive field of about 2^depth * 6 pixels)
    seed: int = 0
    checkpoint_every: int = 250
    preview_every: int = 100  # steps between preview rewrites (also at the start and the end)
    log_every: int = 25
    augment: AugmentSettings = dataclasses.field(default_factory=AugmentSettings)

    def validate(self) -> None:
        """Raise TrainStyleError on values out of range."""
        for name in ("steps", "batch_size", "base_width", "depth", "checkpoint_every", "preview_every", "log_every"):
            if getattr(self, name) < 1:
                raise TrainStyleError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise TrainStyleError(f"the learning rate must be > 0, got {self.lr}")
        try:
            self.augment.validate()
        except ValueError as error:
            raise TrainStyleError(str(error)) from None

    def model_config(self) -> UNetConfig:
        """The generator: a U-Net reading the image and the albedo, normal and depth passes."""
        return UNetConfig(gbuffer_passes=STYLE_PASSES, base_width=self.base_width, depth=self.depth)

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step `step` (1-based); a pure function, so resumes need no state."""
        half = self.steps / 2
        if step <= half:
            return self.lr
        return self.lr * max(0.05, 1.0 - 0.95 * (step - half) / max(self.steps - half, 1))


@dataclasses.dataclass(frozen=True)
class StepReport:
    """Progress after every step (and once at the start, with the step the run starts from)."""

    step: int
    steps: int
    loss: float | None  # mean loss of the last logging interval, None before the first one ends
    elapsed: float  # seconds of training in this call
    logged: bool = False  # `loss` was just computed (every log_every steps and at the end)


@dataclasses.dataclass(frozen=True)
class StyleResult:
    """What :func:`train_style` did."""

    step: int  # last completed step
    interrupted: bool  # cancelled: a checkpoint of `step` is written, the model is not exported
    out_of_time: bool  # the time budget ended training early; the model is exported all the same
    model_dir: Path | None  # exported model (None when interrupted)
    work_dir: Path
    preview: Path
    loss: float | None


ProgressCallback = Callable[[StepReport], None]


def work_dir_for(model_dir: Path) -> Path:
    """The default work folder of a model dir: ``MODEL_DIR.run`` beside it."""
    model_dir = Path(model_dir)
    return model_dir.with_name(model_dir.name + ".run")


def read_painting(path: Path) -> torch.Tensor:
    """A painting in the model range, float32 (3, H, W) in [0, 1]. The file is only read.

    ``.exr`` is scene-linear. Anything Pillow reads (PNG, JPEG, TIFF) is read as painted over
    the template of ``stylepass keyframe template`` (the render Reinhard-mapped, then sRGB): its
    decoded sRGB values are model-range values, so a pixel the artist left alone is exactly the
    render (tone map of the beauty, up to 8-bit rounding) and only painted pixels change.
    """
    try:
        if path.suffix.lower() == ".exr":
            return tonemap(torch.from_numpy(read_linear_exr(path)))
        return decode_srgb(torch.from_numpy(read_srgb_png(path)))
    except (OSError, RuntimeError, ImageReadError) as error:  # OpenEXR raises RuntimeError
        raise TrainStyleError(f"cannot read the painting {path}: {error}") from None


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_frame_tensors(export_dir: Path, frame: int) -> dict[str, torch.Tensor]:
    path = export_dir / f"{frame_stem(frame)}.exr"
    try:
        gbuffer = read_gbuffer(path)
    except GBufferError as error:
        raise TrainStyleError(str(error)) from None
    lacking = missing_passes(gbuffer, STYLE_PASSES)
    if lacking:
        raise TrainStyleError(f"{path} lacks {', '.join(lacking)}: run Stylepass > Set up passes and export again")
    return frame_to_tensors(gbuffer, STYLE_PASSES)


def load_keyframes(export_dir: Path) -> tuple[list[Keyframe], list[dict[str, torch.Tensor]]]:
    """The registered keyframes of an export folder and their training items (full frames:
    ``image``, ``gbuffers``, ``material_id``, ``target``); TrainStyleError when there are none
    or one cannot be used."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise TrainStyleError(f"export folder not found: {export_dir}")
    keyframes = list_keyframes(export_dir)
    if not keyframes:
        raise TrainStyleError(
            f"{export_dir} has no painted keyframes ({KEYFRAMES_DIR}/ is empty): paint over 1 to "
            f"{TUNED_MAX_KEYFRAMES} frames and register them first: `stylepass keyframe template "
            f"{export_dir} --frame N`, paint over the PNG, `stylepass keyframe add {export_dir} PAINTING "
            "--frame N` (in Blender: Stylepass > Add painted keyframe)"
        )
    items = []
    for keyframe in keyframes:
        item = _read_frame_tensors(export_dir, keyframe.frame)
        target = read_painting(keyframe.painting)
        if tuple(target.shape) != tuple(item["image"].shape):
            raise TrainStyleError(
                f"{keyframe.painting} is {target.shape[-1]}x{target.shape[-2]} but frame {keyframe.frame} is "
                f"{item['image'].shape[-1]}x{item['image'].shape[-2]}: paint over an image of the render's size"
            )
        items.append({**item, "target": target})
    return keyframes, items


def unpainted_frame(export_dir: Path, keyframes: list[Keyframe]) -> int | None:
    """An exported frame without a painting, as far as possible from the painted ones (for the
    preview); None when every exported frame is painted or the folder has no manifest."""
    try:
        frames = [int(path.stem.removeprefix("frame_")) for path in exported_frames(export_dir)]
    except (GBufferError, ValueError):
        return None
    painted = {k.frame for k in keyframes}
    candidates = [f for f in frames if f not in painted]
    if not candidates:
        return None
    return max(candidates, key=lambda f: (min(abs(f - p) for p in painted), -f))


def _run_record(export_dir: Path, keyframes: list[Keyframe], settings: StyleSettings) -> dict[str, Any]:
    return {
        "export": str(Path(export_dir).resolve()),
        "keyframes": [{"frame": k.frame, "painting": k.painting.name, "sha256": sha256(k.painting)} for k in keyframes],
        "settings": {k: v for k, v in _settings_dict(settings).items() if k != "steps"},
    }


def _settings_dict(settings: StyleSettings) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(settings)))  # tuples as lists, as read back


def prepare_work_dir(
    work_dir: Path, model_dir: Path, record: dict[str, Any], resume: bool, restart: bool
) -> Path | None:
    """Check the folders against the request; returns the checkpoint to resume from (or None).

    A new run refuses a work folder with checkpoints (unless `restart`, which deletes them: they
    are training state, never paintings); a resumed one needs a checkpoint and the same paintings
    and settings (steps aside). A model dir that exists must be a Stylepass model (it is replaced).
    """
    if resume and restart:
        raise TrainStyleError("--resume and --restart contradict each other: choose one")
    is_model = (model_dir / MODEL_CONFIG).is_file()
    if model_dir.exists() and (not model_dir.is_dir() or (any(model_dir.iterdir()) and not is_model)):
        raise TrainStyleError(f"{model_dir} exists and is not a Stylepass model dir; choose another --out "
                              "(an existing model dir is replaced, anything else is left alone)")
    work_dir.mkdir(parents=True, exist_ok=True)
    if restart and latest_checkpoint(work_dir) is not None:
        shutil.rmtree(work_dir / "checkpoints")
        (work_dir / METRICS_FILE).unlink(missing_ok=True)
    latest = checkpoint_to_resume(work_dir, resume, STYLE_REFUSALS, TrainStyleError)
    if latest is not None:
        previous = json.loads((work_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
        changed = [key for key in ("export", "keyframes", "settings") if previous.get(key) != record[key]]
        if changed:
            what = {"export": "the export folder", "keyframes": "the paintings", "settings": "the settings"}
            raise TrainStyleError(
                f"{', '.join(what[c] for c in changed)} changed since {work_dir} was started: resume with the "
                "same ones, or pass --restart to train afresh"
            )
        return latest
    write_json_atomic(work_dir / SETTINGS_FILE, record)
    return None


def style_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 in the model range plus L1 of its display encoding (sRGB, as the painting was painted),
    so dark strokes weigh as much as the eye gives them. Inputs (B, 3, H, W) in [0, 1]."""
    output, target = output.float(), target.float()
    return (output - target).abs().mean() + (encode_srgb(output) - encode_srgb(target)).abs().mean()


def train_style(
    export_dir: Path,
    model_dir: Path,
    settings: StyleSettings,
    device: torch.device,
    *,
    work_dir: Path | None = None,
    resume: bool = False,
    restart: bool = False,
    minutes: float | None = None,
    preview: Path | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> StyleResult:
    """Train (or resume) a style from an export folder's painted keyframes and export it.

    minutes: a time budget for the training steps of this call; when it runs out the run stops
    at that step, writes a checkpoint and exports the model (``out_of_time``); --resume later
    continues towards ``settings.steps``. preview: where to write the preview sheet (default
    WORK/preview.png). should_stop: polled after every step; True stops with a checkpoint and no
    export (``interrupted``). Raises TrainStyleError (bad input) or
    :class:`.run_control.NonFiniteLossError`.
    """
    settings.validate()
    if minutes is not None and not minutes > 0:
        raise TrainStyleError(f"--minutes must be > 0, got {minutes}")
    export_dir, model_dir = Path(export_dir), Path(model_dir)
    work_dir = Path(work_dir) if work_dir is not None else work_dir_for(model_dir)
    preview = Path(preview) if preview is not None else work_dir / PREVIEW_FILE
    keyframes, items = load_keyframes(export_dir)
    record = _run_record(export_dir, keyframes, settings)
    checkpoint = prepare_work_dir(work_dir, model_dir, record, resume, restart)

    torch.manual_seed(settings.seed)
    generator = build_generator(settings.model_config()).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(generator.parameters(), lr=settings.lr, betas=(0.9, 0.99))
    start = resume_step(checkpoint, {"generator": generator}, {"generator": optimizer})

    rows = [(f"keyframe {keyframes[0].frame}", items[0])]
    other = unpainted_frame(export_dir, keyframes)
    if other is not None:
        rows.append((f"frame {other} (unpainted)", _read_frame_tensors(export_dir, other)))
    write_preview(preview, generator, rows, device)
    frames = [prepare_frame(item, STYLE_PASSES, device) for item in items]

    started = time.perf_counter()
    deadline = started + minutes * 60 if minutes is not None else math.inf
    step, interrupted, out_of_time = start, False, False
    running, count, last_loss = 0.0, 0, None
    if on_progress:
        on_progress(StepReport(step, settings.steps, None, 0.0))
    generator.train()
    while step < settings.steps:
        step += 1
        batch = augmented_batch(frames, settings.augment, settings.batch_size, step_generator(settings.seed, step))
        for group in optimizer.param_groups:
            group["lr"] = settings.lr_at(step)
        with autocast_for(device):
            output = generator(batch["image"], batch["gbuffers"], batch["material_id"])
        loss = style_loss(output, batch["target"])
        check_finite({"loss": loss}, step, work_dir, NON_FINITE_ADVICE, subject="the loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running, count = running + float(loss.detach()), count + 1
        stop = should_stop is not None and should_stop()
        out_of_time = time.perf_counter() > deadline and step < settings.steps
        logged = step % settings.log_every == 0 or step == settings.steps or stop or out_of_time
        if logged:
            last_loss, running, count = running / count, 0.0, 0
            append_jsonl(work_dir / METRICS_FILE, {"step": step, "loss": last_loss, "lr": settings.lr_at(step)})
        if on_progress:
            on_progress(StepReport(step, settings.steps, last_loss, time.perf_counter() - started, logged))
        if stop or out_of_time:
            interrupted = stop
            break
        if step % settings.preview_every == 0:
            write_preview(preview, generator, rows, device)
        if step % settings.checkpoint_every == 0 and step != settings.steps:
            save_checkpoint(work_dir, step, {"generator": generator}, {"generator": optimizer})
    if step > start or checkpoint is None:
        save_checkpoint(work_dir, step, {"generator": generator}, {"generator": optimizer})
    if interrupted:
        return StyleResult(step, True, False, None, work_dir, preview, last_loss)
    write_preview(preview, generator, rows, device)
    card = {
        "format": "stylepass-style",
        "trained_from": record,
        "steps": step,
        "steps_planned": settings.steps,
        "stopped_by_time_budget": out_of_time,
        "final_loss": last_loss,
        "device": device.type,
        "seconds_this_call": round(time.perf_counter() - started, 1),
    }
    exported = export_style(generator, settings.model_config(), model_dir, card, preview)
    return StyleResult(step, False, out_of_time, exported, work_dir, preview, last_loss)
