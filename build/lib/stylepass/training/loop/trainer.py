"""The training loop for both generator families, paired or unpaired (EPE-style).

Each step is a :class:`.step.TrainingStep` (a PatchGAN discriminator when
``loss.adversarial > 0``: paired runs judge (input, target) vs (input, output) pairs, unpaired
runs matched target-domain crops vs outputs). Losses are checked for NaN/inf before each
optimiser step: a non-finite loss stops the run with :class:`.run_control.NonFiniteLossError`
and the last checkpoint (written only from finite states) stays the newest. Ctrl-C (or SIGTERM)
finishes the current step, writes a checkpoint and returns ``interrupted=True``. Resume, stop and
non-finite checks are :mod:`.run_control`'s, shared with ``train-style``.
On CUDA: bf16 autocast and channels_last; under torchrun: DDP (see :mod:`.distributed`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from stylepass.blender_addon.contract.atomic_files import write_bytes_atomic
from stylepass.blender_addon.contract.dataset_layout import DatasetError
from stylepass.core.inference.predict import autocast_for
from stylepass.core.models.config import ConfigError, build_generator
from stylepass.core.models.patchgan import PatchGANDiscriminator

from ..data.paired_dataset import FrameReader, PairedDataset, default_frame_reader
from ..data.sampling import StepBatchSampler
from ..data.unpaired_dataset import TargetPatchIndex, UnpairedDataset
from ..evaluate.metrics import image_tiles, kernel_inception_distance, psnr, ssim
from ..losses.perceptual import LPIPS, VGGPooledFeatures
from .checkpoint import latest_checkpoint, save_checkpoint
from .config import TrainConfig, config_from_dict, config_to_dict, config_to_toml
from .distributed import DistContext, all_ranks_true, barrier, init_distributed, shutdown
from .run_control import ResumeRefusals, StepProgress, check_finite, checkpoint_to_resume, resume_step
from .run_log import RunLogger, StepTimer
from .step import Batch, GeneratorLosses, TrainingStep
from .stop_signals import StopRequest, ignore_stop_signals

RESOLVED_CONFIG = "config.toml"
TRAIN_REFUSALS = ResumeRefusals(
    nothing_to_resume="nothing to resume: {run} has no checkpoint; drop --resume to start a new run",
    run_exists="{run} already holds a run with checkpoints: pass --resume, or choose a new --out",
)
NON_FINITE_ADVICE = "lower the learning rates, check the data for NaN/inf, then --resume"


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    step: int  # last completed step
    interrupted: bool  # stopped early by Ctrl-C (a checkpoint of `step` was written)
    checkpoint: Path | None  # newest checkpoint folder
    validation: dict[str, float]  # last validation metrics (empty without a val split)


def prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> None:
    """Create RUN, check it matches the request, and write the resolved config.

    A new run refuses a RUN that already has checkpoints; a resumed run needs one, a config
    equal to the run's own (train.steps aside) and train.steps not below the checkpoint's step.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    latest = checkpoint_to_resume(run_dir, resume, TRAIN_REFUSALS, ConfigError)
    if latest is not None:
        previous = config_to_dict(config_from_dict(tomllib.loads((run_dir / RESOLVED_CONFIG).read_text())))
        current = config_to_dict(config)
        changed = [
            f"{section}.{key}"
            for section in current
            for key in sorted(set(current[section]) | set(previous.get(section, {})))
            if (section, key) != ("train", "steps")
            and current[section].get(key) != previous.get(section, {}).get(key)
        ]
        if changed:
            raise ConfigError(
                f"the config differs from the one {run_dir} was trained with in: {', '.join(changed)}; "
                f"resume with {run_dir / RESOLVED_CONFIG} (only train.steps may change)"
            )
        done = json.loads((latest / "state.json").read_text(encoding="utf-8"))["step"]
        if done > config.train.steps:
            raise ConfigError(
                f"{run_dir} is already at step {done}, past train.steps = {config.train.steps}; ask for more steps"
            )
    write_bytes_atomic(run_dir / RESOLVED_CONFIG, config_to_toml(config).encode("utf-8"))


def _to_device(batch: Batch, device: torch.device) -> Batch:
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if device.type == "cuda" and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


@dataclasses.dataclass
class OptionalMetrics:
    """Validation metrics that need local weights (None when not configured)."""

    lpips: LPIPS | None = None
    kid_features: VGGPooledFeatures | None = None
    kid_reference: torch.Tensor | None = None  # (N, 512) target-domain features (unpaired runs)


@torch.no_grad()
def target_domain_features(
    index: TargetPatchIndex, features: VGGPooledFeatures, device: torch.device, limit: int = 64
) -> torch.Tensor:
    """KID reference for unpaired runs: features of up to `limit` evenly spread candidate crops."""
    positions = torch.linspace(0, len(index.positions) - 1, min(limit, len(index.positions))).long().unique()
    crops = torch.stack([index.crop(int(p)) for p in positions]).to(device)
    return torch.cat([features(image_tiles(chunk)) for chunk in crops.split(16)])


def validation_items(dataset: PairedDataset, max_size: int) -> Iterator[Batch]:
    """The split's items one at a time as batches of 1, frames larger than ``max_size`` centre-cropped to
    it (0: full frames): what validation scores."""
    for index in range(len(dataset)):
        item = dataset.load_pair(index)
        if max_size:
            height, width = item["image"].shape[-2:]
            top, left = max(0, (height - max_size) // 2), max(0, (width - max_size) // 2)
            item = {k: v[..., top : top + max_size, left : left + max_size] for k, v in item.items()}
        yield {k: v[None] for k, v in item.items()}


@torch.no_grad()
def validate(
    generator: nn.Module, dataset: PairedDataset, device: torch.device, max_size: int, extra: OptionalMetrics
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Mean PSNR/SSIM (LPIPS, KID) of the generator on a split; also the first item's panels.

    With targets the metrics compare with them (val/psnr, ...); without (unpaired runs) they
    measure how much of the input's content survives (val/content_psnr, ...). KID (val/kid)
    compares 64 px tiles of the outputs with those of the targets, or with the target-domain
    crops of an unpaired run.
    """
    generator.eval()
    sums: dict[str, float] = {}
    panels: list[torch.Tensor] = []
    kid_outputs: list[torch.Tensor] = []
    kid_targets: list[torch.Tensor] = []
    for batch in validation_items(dataset, max_size):
        batch = _to_device(batch, device)
        with autocast_for(device):
            out = generator(batch["image"], batch["gbuffers"], batch["material_id"])
        out = out.float().clamp(0, 1)
        reference = batch.get("target", batch["image"])
        prefix = "val/" if "target" in batch else "val/content_"
        values = {prefix + "psnr": psnr(out, reference), prefix + "ssim": ssim(out, reference)}
        if extra.lpips is not None:
            values[prefix + "lpips"] = extra.lpips(out, reference)
        if extra.kid_features is not None:
            kid_outputs.append(extra.kid_features(image_tiles(out)))
            if "target" in batch:
                kid_targets.append(extra.kid_features(image_tiles(batch["target"].float())))
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + float(value.clamp(max=100.0).sum())
        if not panels:
            panels = [batch["image"][0].float().cpu(), out[0].cpu(), reference[0].float().cpu()]
    generator.train()
    metrics = {k: v / max(1, len(dataset)) for k, v in sums.items()}
    kid_reference = torch.cat(kid_targets) if kid_targets else extra.kid_reference
    if kid_outputs and kid_reference is not None:
        outputs = torch.cat(kid_outputs)
        if len(outputs) >= 2 and len(kid_reference) >= 2:
            metrics["val/kid"] = float(kernel_inception_distance(outputs, kid_reference))
    return metrics, panels


def _stop_loader_workers(batches: Iterator[Any]) -> None:
    """Stop a DataLoader iterator's worker processes now.

    After an error (a bad frame raised in a worker), the exception's traceback holds the iterator
    in a reference cycle until the garbage collector runs; at interpreter exit, multiprocessing
    then waits forever for the still-running workers and the command never returns. PyTorch has
    no public call for this: ``_shutdown_workers`` is what the iterator's own ``__del__`` calls.
    """
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def train(
    config: TrainConfig,
    data_dir: Path,
    run_dir: Path,
    device: torch.device,
    resume: bool = False,
    frame_reader: FrameReader | None = None,
) -> TrainResult:
    """Train (or resume) a run; see the module docstring.

    frame_reader: reads a G-buffer EXR path into a frame (default: stylepass.core.io.gbuffer).
    Errors: ConfigError, DatasetError, NonFiniteLossError, MissingWeightsError (absent
    perceptual/LPIPS weights).
    """
    run_dir = Path(run_dir)
    ctx, device = init_distributed(device)
    try:
        reader = frame_reader or default_frame_reader
        return _train(config, Path(data_dir), run_dir, device, resume, reader, ctx)
    finally:
        shutdown(ctx)


def _train(
    config: TrainConfig,
    data_dir: Path,
    run_dir: Path,
    device: torch.device,
    resume: bool,
    frame_reader: FrameReader,
    ctx: DistContext,
) -> TrainResult:
    tcfg = config.train
    passes = config.model.gbuffer_passes
    paired = config.data.mode == "paired"
    train_set: PairedDataset | UnpairedDataset
    if paired:
        train_set = PairedDataset(data_dir, "train", passes, tcfg.crop_size, frame_reader)
    else:
        assert config.data.target_images is not None  # the config validation checked it
        target_images = data_dir / config.data.target_images  # an absolute path stays as it is
        train_set = UnpairedDataset(
            data_dir, target_images, passes, tcfg.crop_size, config.data.match_candidates, tcfg.seed, frame_reader
        )
    val_set = PairedDataset(data_dir, "val", passes, None, frame_reader, with_targets=paired)
    if len(train_set) == 0:
        raise DatasetError(f"{data_dir}: no pairs with split 'train' in pairs.jsonl")
    train_set.check_passes()
    if ctx.is_main:
        prepare_run_dir(run_dir, config, resume)
    barrier(ctx)

    torch.manual_seed(tcfg.seed)
    generator = build_generator(config.model).to(device)
    use_gan = config.loss.adversarial > 0
    discriminator = (
        PatchGANDiscriminator(
            6 if paired else 3, config.discriminator.base_width, config.discriminator.n_layers
        ).to(device)
        if use_gan
        else None
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if discriminator is not None:
            discriminator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    betas = (tcfg.beta1, tcfg.beta2)
    modules: dict[str, nn.Module] = {"generator": generator}
    optimizers = {"generator": torch.optim.Adam(generator.parameters(), lr=tcfg.lr_g, betas=betas)}
    if discriminator is not None:
        modules["discriminator"] = discriminator
        optimizers["discriminator"] = torch.optim.Adam(discriminator.parameters(), lr=tcfg.lr_d, betas=betas)

    # Resume: weights, optimiser states and RNG states of the newest checkpoint (prepare_run_dir
    # checked on rank 0 that there is one).
    start_step = resume_step(latest_checkpoint(run_dir) if resume else None, modules, optimizers)

    g_train: nn.Module = generator
    d_train: nn.Module | None = discriminator
    if ctx.enabled:
        ids = [device.index] if device.type == "cuda" else None
        g_train = DistributedDataParallel(generator, device_ids=ids)
        if discriminator is not None:
            d_train = DistributedDataParallel(discriminator, device_ids=ids)

    def check_losses(losses: dict[str, torch.Tensor], at_step: int) -> None:
        check_finite(losses, at_step, run_dir, NON_FINITE_ADVICE, all_ranks=lambda ok: all_ranks_true(ok, ctx, device))

    train_step = TrainingStep(
        generator, discriminator, optimizers, GeneratorLosses(config.loss, device), paired, device, check_losses,
        g_train, d_train,
    )
    extra_metrics = OptionalMetrics()
    if ctx.is_main and config.metrics.lpips_weights:
        extra_metrics.lpips = LPIPS(Path(config.metrics.lpips_weights)).to(device)
    if ctx.is_main and config.metrics.kid_weights:
        extra_metrics.kid_features = VGGPooledFeatures(Path(config.metrics.kid_weights)).to(device)
        if isinstance(train_set, UnpairedDataset):
            extra_metrics.kid_reference = target_domain_features(train_set.index, extra_metrics.kid_features, device)
    logger = RunLogger(run_dir) if ctx.is_main else None
    loader = DataLoader(
        train_set,
        batch_sampler=StepBatchSampler(tcfg.seed, start_step, tcfg.steps, tcfg.batch_size, len(train_set), ctx.rank),
        num_workers=tcfg.num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=ignore_stop_signals,
    )

    def run_validation(at_step: int) -> dict[str, float]:
        if not ctx.is_main or len(val_set) == 0:
            return {}
        metrics, panels = validate(generator, val_set, device, tcfg.val_max_size, extra_metrics)
        assert logger is not None
        logger.scalars(at_step, metrics)
        logger.images(at_step, "val/input_output_target", panels)
        return metrics

    def checkpoint_now(at_step: int) -> None:
        if ctx.is_main:
            save_checkpoint(
                run_dir, at_step, modules, optimizers, {"world_size": ctx.world_size}, tcfg.keep_checkpoints
            )
        barrier(ctx)

    if ctx.is_main and len(val_set) == 0 and start_step == 0:
        print(f"note: {data_dir} has no 'val' pairs: no validation metrics", file=sys.stderr)
    validation = run_validation(start_step) if start_step == 0 else {}

    # Train: one batch per step until train.steps, Ctrl-C or SIGTERM (stop after the step with a
    # checkpoint), or a non-finite loss (NonFiniteLossError from train_step, before any weight
    # changes; the newest checkpoint stays the last good one).
    running: dict[str, float] = {}
    running_count = 0
    step = start_step
    interrupted = False
    timer = StepTimer(device)
    batches = iter(loader)  # forks the loader workers before the progress bar starts its thread
    console = Console(stderr=True, soft_wrap=True)  # no hard line breaks in logs
    progress = StepProgress("train", tcfg.steps, console, completed=start_step, enabled=ctx.is_main)
    try:
        with StopRequest(lambda message: console.print(message, markup=False, highlight=False)) as stop, progress:
            generator.train()
            for batch in batches:
                step += 1
                batch = _to_device(batch, device)
                for name, optimizer in optimizers.items():
                    base = tcfg.lr_g if name == "generator" else tcfg.lr_d
                    for group in optimizer.param_groups:
                        group["lr"] = base * tcfg.lr_factor(step)
                logged = train_step(batch, step)
                for name, value in logged.items():
                    running[name] = running.get(name, 0.0) + float(value)
                running_count += 1
                timer.step()

                # Log the means of the interval; validate; stop on Ctrl-C (any rank); checkpoint.
                shown = None
                if step % tcfg.log_every == 0 or step == tcfg.steps:
                    means = {k: v / running_count for k, v in running.items()}
                    means["lr/generator"] = optimizers["generator"].param_groups[0]["lr"]
                    means.update(timer.read())
                    if logger is not None:
                        logger.scalars(step, means)
                    shown = " ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in means.items() if k.startswith("loss/"))
                    running, running_count = {}, 0
                progress.update(step, shown, logged=shown is not None)
                if tcfg.val_every and step % tcfg.val_every == 0 and step != tcfg.steps:
                    with timer.paused():
                        validation = run_validation(step)
                if not all_ranks_true(not stop.requested, ctx, device):
                    interrupted = True
                    break
                if step % tcfg.checkpoint_every == 0 and step != tcfg.steps:
                    with timer.paused():
                        checkpoint_now(step)

            # Done (or stopped): the final checkpoint, then the final validation.
            if step > start_step or not resume:
                checkpoint_now(step)
            if not interrupted and step == tcfg.steps:
                validation = run_validation(step)
    finally:
        _stop_loader_workers(batches)
        if logger is not None:
            logger.close()
    return TrainResult(step, interrupted, latest_checkpoint(run_dir) if ctx.is_main else None, validation)
