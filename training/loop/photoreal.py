"""Photoreal enhance from a folder of photographs: ``stylepass train-photoreal``.

EPE-style unpaired training (Richter et al. 2021) made one call: :func:`train_photoreal` takes a
render dataset (``stylepass dataset``: G-buffer inputs, targets unused) and a folder of a user's
photographs, and

1. checks the dataset (:func:`check_render_dataset`) and the run folder (a new run never
   overwrites one; ``resume`` needs one), before anything is written;
2. prepares the photos into ``RUN/photos/`` (:mod:`..data.photo_folder`: any size scaled down
   without distortion, colour profiles, 16-bit, alpha and EXIF handled, exposure matched to the
   renders; kept as they are on resume, which refuses changed photos);
3. trains the RAD enhance generator with :func:`.trainer.train` in ``data.mode = "unpaired"``:
   a PatchGAN compares outputs with layout-matched photo crops (adversarial loss) while an L1 to
   the input keeps the render's content (``loss.content``);
4. exports the model to ``RUN/model/`` (``model.safetensors`` + ``config.json``, ``photoreal.json``,
   ``preview.png``), replaced as a whole, and writes the preview sheet ``RUN/preview.png``
   (:mod:`.photoreal_preview`).

The defaults (:data:`DEFAULTS`) are the enhance preset's model (``presets/enhance/train.toml``) with
unpaired losses; a TOML file (``config``) may change any key but the data mode and the photo folder.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylepass.blender_addon.contract.atomic_files import write_folder_atomic, write_json_atomic
from stylepass.blender_addon.contract.dataset_layout import PAIRS_NAME, DatasetError
from stylepass.core.models.config import ConfigError
from stylepass.core.models.serialization import save_model

from ..data.paired_dataset import FrameReader, PairedDataset, default_frame_reader
from ..data.photo_folder import PHOTO_SUFFIXES, PreparedPhotos, log_average_luminance, prepare_photos
from ..data.unpaired_dataset import TargetPatchIndex, list_target_images
from ..deploy.export import load_run_generator
from .checkpoint import latest_checkpoint
from .config import TrainConfig, config_from_dict
from .photoreal_preview import preview_rows, spread_indices, write_photoreal_preview
from .run_control import checkpoint_to_resume
from .trainer import TRAIN_REFUSALS, TrainResult, train

PHOTOS_DIR = "photos"
MODEL_DIR = "model"
PREVIEW_FILE = "preview.png"
CARD_FILE = "photoreal.json"
PREVIEW_FRAMES = 3
KEY_FRAMES = 8  # render frames read to measure the renders' exposure
FEW_PHOTOS = 20  # fewer usable photos than this gets a warning

# The enhance preset's RAD generator (presets/enhance/train.toml) with unpaired losses, sized for a
# 2-core CPU: about 2 s a step at 128 px crops there, 2000 steps about an hour (docs/photoreal.md).
DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"family": "rad", "gbuffer_passes": ["albedo", "normal", "depth"], "widths": [16, 32, 64],
              "blocks": [1, 2, 3], "gbuffer_widths": [16, 16, 32], "num_materials": 8},
    "train": {"steps": 2000, "batch_size": 4, "crop_size": 128, "lr_g": 2e-4, "lr_d": 2e-4, "lr_decay_start": 1000,
              "checkpoint_every": 100, "log_every": 25, "val_every": 0, "num_workers": 1},
    "loss": {"l1": 0.0, "content": 5.0, "adversarial": 1.0, "adversarial_kind": "lsgan"},
    "discriminator": {"base_width": 32, "n_layers": 3},
}


@dataclasses.dataclass(frozen=True)
class PhotorealResult:
    """What :func:`train_photoreal` did."""

    training: TrainResult
    photos: PreparedPhotos
    model_dir: Path | None  # None when interrupted
    preview: Path | None  # None when interrupted
    preview_size: tuple[int, int] | None  # (W, H) of the sheet


def photoreal_config(overrides: Mapping[str, Any], photos_dir: Path, steps: int | None = None) -> TrainConfig:
    """:data:`DEFAULTS` with `overrides` (TOML tables) merged over them key by key, in unpaired mode on
    the prepared photos `photos_dir` (absolute); `steps` overrides train.steps. Raises ConfigError."""
    tables: dict[str, dict[str, Any]] = {name: dict(values) for name, values in DEFAULTS.items()}
    for name, values in overrides.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{name}] must be a table, got {values!r}")
        if name == "data" and set(values) - {"match_candidates"}:
            raise ConfigError("train-photoreal sets data.mode and data.target_images itself: "
                              "only data.match_candidates may be given")
        if name == "model" and values.get("family", "rad") != tables["model"]["family"]:
            tables["model"] = {}  # another family: its own defaults, not RAD's keys
        tables.setdefault(name, {}).update(values)
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {steps}")
        tables["train"]["steps"] = steps
    tables["data"] = {**tables.get("data", {}), "mode": "unpaired", "target_images": str(Path(photos_dir).resolve())}
    return config_from_dict(tables)


def read_overrides(path: Path | None) -> dict[str, Any]:
    """The tables of a TOML config file (empty without one); ConfigError naming the file."""
    if path is None:
        return {}
    if not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None


def check_render_dataset(
    data_dir: Path, passes: tuple[str, ...], frame_reader: FrameReader = default_frame_reader
) -> tuple[PairedDataset, tuple[int, int]]:
    """The 'train' split of a render dataset and its first frame's (H, W); DatasetError with what to
    do when `data_dir` is not one (missing, an export or a photo folder, no train frames, frames
    that are not G-buffer exports or lack a pass the model reads)."""
    data_dir = Path(data_dir)
    how = "make one with `stylepass dataset RECIPE --out DIR` (e.g. presets/enhance/dataset.toml)"
    if not data_dir.is_dir():
        raise DatasetError(f"render dataset not found: {data_dir}; {how}")
    if not (data_dir / PAIRS_NAME).is_file():
        if (data_dir / "manifest.jsonl").is_file():
            what = "a G-buffer export (manifest.jsonl), not a render dataset"
        elif any(p.suffix.lower() in PHOTO_SUFFIXES for p in data_dir.iterdir()):
            what = "a folder of images, not a render dataset (photographs go to --photos)"
        else:
            what = "not a render dataset"
        raise DatasetError(f"{data_dir} is {what}: --data takes a folder with {PAIRS_NAME}; {how}")
    frames = PairedDataset(data_dir, "train", passes, None, frame_reader, with_targets=False)
    if len(frames) == 0:
        raise DatasetError(f"{data_dir}: no frames with split 'train' in {PAIRS_NAME}")
    first_input = frames.records[0].input
    if first_input.suffix.lower() != ".exr":
        raise DatasetError(f"{data_dir} is not a render dataset: its inputs (such as {first_input.name}) must be "
                           f"G-buffer exports (.exr with a sidecar .json); {how}")
    try:
        first = frames.load_pair(0)  # reads a G-buffer export; a missing pass is named
    except DatasetError as error:
        raise DatasetError(f"{data_dir} is not a usable render dataset: {error}") from None
    height, width = first["image"].shape[-2:]
    return frames, (int(height), int(width))


def render_key(frames: PairedDataset, count: int = KEY_FRAMES) -> float:
    """The log-average luminance of the beauty pass over the valid pixels of up to `count` frames
    spread over `frames` (what the photos' exposure is matched to)."""
    logs = []
    for index in spread_indices(len(frames), count):
        frame = frames.frame_reader(frames.records[index].input)
        logs.append(np.log(log_average_luminance(np.asarray(frame.beauty, np.float32), np.asarray(frame.valid))
                           or 1e-4))
    return float(np.exp(np.mean(logs)))


def train_photoreal(
    photos: Path,
    data_dir: Path,
    run_dir: Path,
    device: torch.device,
    *,
    resume: bool = False,
    steps: int | None = None,
    config_file: Path | None = None,
    photo_size: int | None = None,
    frame_reader: FrameReader | None = None,
    on_photo: Callable[[int, int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> PhotorealResult:
    """Prepare the photos, train (or resume), export the model and write the preview (see the module
    docstring). photo_size: the prepared photos' shorter side (default: the render frames' shorter
    side, at least the crop). on_photo(done, total): photo preparation progress; on_note(text):
    remarks for the user (skipped photos, few photos). Raises ConfigError, DatasetError (and its
    PhotoFolderError), NonFiniteLossError.
    """
    run_dir = Path(run_dir)
    reader = frame_reader or default_frame_reader
    note = on_note or (lambda text: None)
    config = photoreal_config(read_overrides(config_file), run_dir / PHOTOS_DIR, steps)
    crop = config.train.crop_size
    frames, (height, width) = check_render_dataset(data_dir, config.model.gbuffer_passes, reader)
    if min(height, width) < crop:
        raise DatasetError(f"{data_dir}'s frames are {width}x{height}, smaller than the training crop {crop} px: "
                           "lower train.crop_size in a --config file, or render the dataset larger")
    checkpoint_to_resume(run_dir, resume, TRAIN_REFUSALS, ConfigError)  # before RUN/photos is touched
    short_side = photo_size if photo_size is not None else max(crop, min(height, width))
    prepared = prepare_photos(photos, run_dir / PHOTOS_DIR, short_side, crop, render_key(frames),
                              must_reuse=resume, on_progress=on_photo)
    for name, why in prepared.skipped:
        note(f"photo skipped: {name}: {why}")
    if len(prepared.photos) < FEW_PHOTOS:
        note(f"only {len(prepared.photos)} usable photo(s): the discriminator will learn them by heart; "
             "a few hundred photos of the kind of scene you render work far better")

    training = train(config, data_dir, run_dir, device, resume=resume, frame_reader=reader)
    if training.interrupted:
        return PhotorealResult(training, prepared, None, None, None)
    generator, model_config = load_run_generator(run_dir)
    index = TargetPatchIndex(list_target_images(prepared.folder), crop)
    preview = run_dir / PREVIEW_FILE
    rows = preview_rows(data_dir, config.model.gbuffer_passes, PREVIEW_FRAMES, config.train.val_max_size, reader)
    size = write_photoreal_preview(preview, generator, rows, index, torch.device("cpu"))
    card = {
        "format": "stylepass-photoreal",
        "photos": str(Path(photos).resolve()),
        "photos_used": len(prepared.photos),
        "photos_skipped": len(prepared.skipped),
        "exposure": prepared.exposure,
        "dataset": str(Path(data_dir).resolve()),
        "steps": training.step,
        "checkpoint": str(latest_checkpoint(run_dir)),
        "validation": training.validation,
    }

    def write_model(staged: Path) -> None:
        save_model(generator, model_config, staged)
        write_json_atomic(staged / CARD_FILE, json.loads(json.dumps(card)))
        (staged / PREVIEW_FILE).write_bytes(preview.read_bytes())

    write_folder_atomic(run_dir / MODEL_DIR, write_model)
    return PhotorealResult(training, prepared, run_dir / MODEL_DIR, preview, size)
