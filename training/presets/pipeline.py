"""``train-preset``: rebuild presets/NAME from scratch, resumably.

Stages: dataset (``stylepass dataset`` on presets/NAME/dataset.toml) -> training (``stylepass train``,
resumable) -> export (``stylepass export-model``, renamed atomically onto presets/NAME/model/) ->
held-out real assets (presets/NAME/real_assets.toml: the shared glTF assets, never trained on, scored
by ``stylepass evaluate``) -> the quality bars (presets/NAME/bars.toml, :mod:`.bars`) -> install:
presets/NAME/model/, real_assets.json + real_assets.png, CARD.md and thumbnail.png. Each stage's
command runs in its own process, as a user would type it.

A model that misses a bar is not installed: presets/NAME stays as it was, the candidate stays in the
work folder (model/, real_assets_eval/sheet.png) and the command fails (exit 1) naming each missed bar,
unless ``--accept-worse`` installs it anyway (its card then lists what it misses).

Work files: .build/presets/NAME/ in the repository (for another presets folder: DIR/.build/NAME/).
Re-running the same command resumes every stage, and more --steps continue the run. Other dataset
settings (--pairs, --resolution, --blender, the recipes) start the work folder afresh; other
training settings (train.toml, --device) train afresh on the datasets already rendered.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stylepass.blender_addon.contract.atomic_files import (
    copy_file_atomic,
    read_jsonl,
    write_bytes_atomic,
    write_folder_atomic,
    write_json_atomic,
)
from stylepass.blender_addon.contract.dataset_layout import PAIRS_NAME, read_pairs
from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.export_options import parse_resolution
from stylepass.core.inference.stylise import REPO_PRESETS
from stylepass.training.loop.config import dumps_toml

from .bars import BarsError, load_bars, missed_bars
from .card import preset_card
from .measurements import inference_speed, input_baseline
from .thumbnail import write_thumbnail

LOG_PREFIX = "[build]"  # the pipeline's lines read as they did when build.py ran it itself
REPO = REPO_PRESETS.parent  # the repository: default presets folder, .build/ work folders
MIN_SIZE = 16  # smallest --resolution width or height
# Defaults per device: CPU gives a small but working model in minutes on 2 cores; CUDA a larger run.
RUN_DEFAULTS: dict[str, dict[str, Any]] = {
    "cpu": {"pairs": 48, "resolution": "128x128", "steps": None, "crop": 128, "batch": None},
    "cuda": {"pairs": 400, "resolution": "256x256", "steps": 20000, "crop": 256, "batch": 8},
}
DATASET_PARAMS = ("pairs", "resolution", "blender", "recipe", "real_assets")  # a change re-renders

T = TypeVar("T")


class PresetStageError(Exception):
    """A train-preset stage failed; the message names the stage."""


class BarsMissedError(PresetStageError):
    """The trained model misses a quality bar on the held-out real assets; nothing was installed."""


@dataclasses.dataclass(frozen=True)
class PresetRequest:
    """What ``train-preset`` was asked for (its command-line options; None: the device's default)."""

    name: str
    pairs: int | None = None
    steps: int | None = None
    resolution: str | None = None  # "WxH"
    device: str = "cpu"  # "cpu" or "cuda"
    blender: str = "5.2"  # the Blender that renders the datasets
    presets_dir: Path | None = None  # None: the repository's presets/
    accept_worse: bool = False  # install a model that misses a bar of bars.toml


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """One invocation's settings, folders and training config."""

    preset: Path  # presets/NAME
    recipe: Path  # presets/NAME/dataset.toml
    train_config: Path  # presets/NAME/train.toml
    work: Path  # the work folder (datasets, run, params.json, times.json)
    pairs: int
    width: int
    height: int
    steps: int
    crop: int
    config: dict[str, dict[str, Any]]  # train.toml with this run's crops, steps (and batch on CUDA)

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def dataset(self) -> Path:
        return self.work / "dataset"

    @property
    def run_dir(self) -> Path:
        return self.work / "run"


class StageTimes:
    """Wall seconds per stage, summed over the invocations of the same settings (``times.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def add(self, stage: str, seconds: float) -> float:
        """Add ``seconds`` to ``stage`` and save; returns the stage's total."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        write_json_atomic(self.path, self.seconds)
        return self.seconds[stage]


def say(message: str) -> None:
    """One progress line on stdout."""
    print(f"{LOG_PREFIX} {message}", flush=True)


def run_stage(name: str, argv: list[str | Path | int]) -> float:
    """Run one stage's command from the repository; returns its wall time in seconds, raises
    PresetStageError on failure."""
    say(f"[{name}] {' '.join(str(a) for a in argv)}")
    start = time.monotonic()
    code = subprocess.run([str(a) for a in argv], cwd=REPO, check=False).returncode
    if code != 0:
        raise PresetStageError(f"stage '{name}' failed (exit code {code})")
    return time.monotonic() - start


def in_stage(stage: str, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, any error in it a PresetStageError that names ``stage`` (with the traceback's end)."""
    try:
        return function(*args)
    except Exception as error:
        raise PresetStageError(f"stage '{stage}' failed: {traceback.format_exc().strip()[-2000:]}") from error


def plan_run(request: PresetRequest, preset: Path, work: Path) -> RunPlan:
    """The run's settings: the request's, else the device's defaults, else train.toml's steps. Crops fit
    the frames; on CUDA the crop and batch are the larger run's. Raises ValueError on a bad --resolution
    or an unreadable train.toml."""
    defaults = RUN_DEFAULTS[request.device]
    train_config = preset / "train.toml"
    try:
        config = tomllib.loads(train_config.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{train_config}: cannot be read as TOML ({error})") from None
    pairs = request.pairs or defaults["pairs"]
    resolution = request.resolution or defaults["resolution"]
    try:
        width, height = parse_resolution(resolution)
    except ValueError:
        raise ValueError(f"--resolution {resolution!r}: expected WxH, e.g. 128x128") from None
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"--resolution: at least {MIN_SIZE}x{MIN_SIZE}")
    steps = request.steps or defaults["steps"] or int(config.get("train", {}).get("steps", 20000))
    train_section = dict(config.get("train", {}))
    crop = min(int(train_section.get("crop_size", defaults["crop"])), width, height)
    if request.device == "cuda":
        crop = min(defaults["crop"], width, height)
        train_section["batch_size"] = defaults["batch"]
    train_section.update(steps=steps, crop_size=crop)
    return RunPlan(preset, preset / "dataset.toml", train_config, work, pairs, width, height, steps, crop,
                   {**config, "train": train_section})


def prepare_work(plan: RunPlan, request: PresetRequest) -> None:
    """Compare this run's settings with the work folder's last (params.json) and clear what they
    invalidate; then write params.json and the run's train.toml."""
    train_section = plan.config["train"]
    # Same settings but more steps: the dataset and the run resume (the trainer allows raising steps).
    settings = dumps_toml({**plan.config, "train": {k: v for k, v in train_section.items() if k != "steps"}})
    real_recipe = plan.preset / "real_assets.toml"
    params = {"pairs": plan.pairs, "resolution": plan.resolution, "blender": request.blender,
              "recipe": plan.recipe.read_text(),
              "real_assets": real_recipe.read_text() if real_recipe.is_file() else None,
              "device": request.device, "settings": settings}
    params_file = plan.work / "params.json"
    if params_file.is_file():
        old = json.loads(params_file.read_text())
        if any(old.get(key) != params[key] for key in DATASET_PARAMS):
            say(f"dataset settings differ from the previous run in {plan.work}: starting afresh")
            shutil.rmtree(plan.work)
        elif old != params:
            say(f"training settings differ from the previous run in {plan.work}: training afresh on its datasets")
            shutil.rmtree(plan.run_dir, ignore_errors=True)
            times_file = plan.work / "times.json"
            if times_file.is_file():
                kept = {k: v for k, v in json.loads(times_file.read_text()).items() if k == "dataset"}
                write_json_atomic(times_file, kept)
    plan.work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(params_file, params)
    write_bytes_atomic(plan.work / "train.toml", (f"# generated by train-preset from {plan.train_config}\n"
                                                  + dumps_toml(plan.config)).encode())


def export_candidate(stylepass: Path, run_dir: Path, work: Path, dataset: Path) -> tuple[Path, float]:
    """Export the run into the work folder's model/ (atomically: the folder is whole or absent), with
    its int8 model (``stylepass quantize``, calibrated on the run's `dataset`). Returns the candidate's
    folder and the export's seconds (quantization included)."""
    candidate = work / "model"

    def export(temp: Path) -> float:
        return (run_stage("export", [stylepass, "export-model", run_dir, "--out", temp, "--onnx"])
                + run_stage("export", [stylepass, "quantize", temp, "--data", dataset]))

    export_s = write_folder_atomic(candidate, export)
    return candidate, export_s


def install_model(candidate: Path, preset: Path) -> Path:
    """Copy the candidate onto presets/NAME/model/ atomically (the old model goes only once the new one
    is whole in place). Returns presets/NAME/model."""
    def copy_into(temp: Path) -> None:
        for path in candidate.iterdir():
            shutil.copy2(path, temp / path.name)

    write_folder_atomic(preset / "model", copy_into)
    return preset / "model"


def evaluate_real_assets(stylepass: Path, plan: RunPlan, model_dir: Path,
                         request: PresetRequest) -> dict[str, Any] | None:
    """Render presets/NAME/real_assets.toml (resumable) and score the model on it with `stylepass
    evaluate` into the work folder's real_assets_eval/ (report.json and its sheet). Returns the card's
    summary (with ``report`` and ``sheet`` paths for :func:`install_real_assets`), or None when the
    preset has no real_assets.toml."""
    preset, work = plan.preset, plan.work
    recipe = preset / "real_assets.toml"
    if not recipe.is_file():
        say(f"[real assets] {recipe} not found: no figures on real assets in the card, and the quality "
            f"bars (bars.toml) are not checked")
        return None
    data, evaluation, evaluation_int8 = work / "real_assets", work / "real_assets_eval", work / "real_assets_eval_int8"
    say(f"[real assets] held-out real assets from {recipe} into {data}")
    run_stage("real assets", [stylepass, "dataset", recipe, "--out", data, "--blender", request.blender])
    run_stage("real assets", [stylepass, "evaluate", model_dir, "--data", data, "--out", evaluation,
                              "--device", request.device, "--blender", request.blender, "--sheet-rows", "3"])
    run_stage("real assets", [stylepass, "evaluate", model_dir, "--data", data, "--out", evaluation_int8,
                              "--precision", "int8", "--no-denoise", "--sheet-rows", "1"])
    report = json.loads((evaluation / "report.json").read_text())
    timing = json.loads((evaluation / "timing.json").read_text())
    int8 = json.loads((evaluation_int8 / "report.json").read_text())
    means = report["means"]
    recipe_record = report["dataset"]["identity"]["recipe"]
    width, height = recipe_record["dataset"]["resolution"]
    real = {"means": means, "count": report["count"], "resolution": f"{width}x{height}",
            "assets": sorted({Path(a).stem for a in recipe_record["scenes"]["assets"]}),
            "columns": ["input", "output", "target"] + [m for m in ("denoise", "peer") if m in means],
            "peer": recipe_record.get("peer"), "render_seconds": report.get("render_seconds"),
            "model_seconds": timing["model_seconds_median"], "runtime": timing["runtime"],
            "int8": {"means": int8["means"]["model"], "scenes": {s: f["model"] for s, f in int8["scenes"].items()}},
            "beats_input": all(means["model"][k] > means["input"][k] for k in ("psnr", "ssim")),
            "missed_bars": missed_bars(report, load_bars(preset)),
            "report": str(evaluation / "report.json"), "sheet": str(evaluation / report["sheet"])}
    summary = ", ".join(f"{method} {means[method]['psnr']:.2f} dB / {means[method]['ssim']:.4f} / detail "
                        f"{means[method]['detail']:.2f}" for method in ("model", "input", "denoise", "peer")
                        if method in means)
    say(f"[real assets] {summary}")
    for line in real["missed_bars"]:
        say(f"[bars] missed: {line}")
    return real


def install_real_assets(real: dict[str, Any] | None, preset: Path) -> None:
    """Copy the evaluation's report and sheet to presets/NAME/real_assets.json and real_assets.png; the
    report names the installed model (presets/NAME/model), not the candidate it scored."""
    if real is not None:
        report = json.loads(Path(real["report"]).read_text())
        report["model"].update(folder=str(preset / "model"), name=preset.name)
        write_json_atomic(preset / "real_assets.json", report)
        copy_file_atomic(Path(real["sheet"]), preset / "real_assets.png")


def run_stages(stylepass: Path, plan: RunPlan, request: PresetRequest) -> None:
    """Dataset, training, export, real assets, card and thumbnail; raises PresetStageError."""
    dataset, run_dir, preset = plan.dataset, plan.run_dir, plan.preset
    times = StageTimes(plan.work / "times.json")

    # 1. dataset
    say(f"[dataset] {plan.pairs} pairs at {plan.resolution} from {plan.recipe} into {dataset}")
    dataset_resumed = (dataset / PAIRS_NAME).is_file() and "dataset" not in times.seconds
    dataset_s = times.add("dataset", run_stage("dataset", [
        stylepass, "dataset", plan.recipe, "--out", dataset, "--count", plan.pairs,
        "--resolution", plan.resolution, "--blender", request.blender]))
    rows = in_stage("dataset", read_pairs, dataset)
    val_rows = [r for r in rows if r["split"] == "val"]
    if not val_rows:
        raise PresetStageError("stage 'dataset': no validation pairs (every 1/validation_fraction-th scene "
                               "is one): raise --pairs")

    # 2. training (resumes a stopped run of the same settings)
    resume = (run_dir / "checkpoints" / "latest.json").is_file()
    say(f"[training] {plan.steps} steps on {request.device}, crops {plan.crop} px"
        + (f", resuming {run_dir}" if resume else f", run folder {run_dir}"))
    train_s = times.add("training", run_stage("training", [
        stylepass, "train", plan.work / "train.toml", "--data", dataset, "--out", run_dir, "--steps", plan.steps,
        "--device", request.device, *(["--resume"] if resume else [])]))
    finals = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "val/psnr" in r]
    if not finals or finals[-1]["step"] != plan.steps:
        raise PresetStageError(f"stage 'training': no validation metrics at step {plan.steps} in "
                               f"{run_dir}/metrics.jsonl")
    metrics = {"psnr": finals[-1]["val/psnr"], "ssim": finals[-1]["val/ssim"], "step": plan.steps}

    # 3. export: the candidate model, in the work folder
    candidate, export_s = export_candidate(stylepass, run_dir, plan.work, dataset)
    weights_mb = (candidate / "model.safetensors").stat().st_size / 1e6
    model_config = json.loads((candidate / "config.json").read_text())["model"]
    say(f"[export] {candidate} ({weights_mb:.1f} MB)")

    # 4. held-out real assets: dataset from real_assets.toml, then stylepass evaluate; the bars decide
    #    whether the candidate replaces the shipped model
    real_assets = evaluate_real_assets(stylepass, plan, candidate, request)
    if real_assets is not None and real_assets["missed_bars"]:
        if not request.accept_worse:
            raise BarsMissedError(
                f"the model misses {len(real_assets['missed_bars'])} bar(s) of {preset / 'bars.toml'} on the "
                f"held-out real assets (listed above), so {preset} is unchanged; see {real_assets['sheet']}. "
                f"The candidate is {candidate}; --accept-worse installs it anyway")
        say("[bars] --accept-worse: installing a model that misses its bars (the card says which)")
    model_dir = install_model(candidate, preset)
    install_real_assets(real_assets, preset)

    # 5. card: baseline on the same validation pairs, speed on this device
    say("[card] untouched-input baseline on the validation pairs; speed at 512x512")
    train_section = plan.config["train"]
    baseline = in_stage("card", input_baseline, dataset, int(train_section.get("val_max_size", 512)))
    speed = in_stage("card", inference_speed, model_dir, request.device)
    device_name = "this machine's CPU" if request.device == "cpu" else "GPU"
    command_args = " ".join([request.name, f"--pairs {plan.pairs}", f"--steps {plan.steps}",
                             f"--resolution {plan.resolution}", f"--device {request.device}",
                             f"--blender {request.blender}"])
    info = {"command_args": command_args, "metrics": metrics, "baseline": baseline, "speed": speed,
            "passes": list(model_config.get("gbuffer_passes", [])), "device": request.device,
            "device_name": f"{device_name}, {os.cpu_count()} cores" if request.device == "cpu" else device_name,
            "model_family": "RAD generator" if model_config.get("family") == "rad" else "pix2pix U-Net",
            "weights_mb": weights_mb, "pairs": len(rows), "train_pairs": len(rows) - len(val_rows),
            "val_pairs": len(val_rows), "resolution": plan.resolution, "steps": plan.steps,
            "batch": train_section.get("batch_size", 4), "crop": plan.crop, "dataset_s": dataset_s,
            "dataset_resumed": dataset_resumed, "train_s": train_s, "export_s": export_s,
            "real_assets": real_assets}
    card = preset / "CARD.md"
    write_bytes_atomic(card, preset_card(request.name, info).encode())
    write_json_atomic(plan.work / "card.json", info)
    say(f"[card] {card}: PSNR {metrics['psnr']:.2f} dB / SSIM {metrics['ssim']:.4f} "
        f"(input {baseline['psnr']:.2f} / {baseline['ssim']:.4f}), {speed['ms']:.0f} ms per 512x512 frame")

    # 6. thumbnail: input | output | target of the first validation pair
    frame = dataset / val_rows[0]["input"]
    stylised = plan.work / "thumbnail"
    shutil.rmtree(stylised, ignore_errors=True)
    run_stage("thumbnail", [stylepass, "stylise", frame, "--model", model_dir, "--out", stylised,
                            "--device", request.device])
    output = next(stylised.glob("stylised_*.exr"), None)
    if output is None:
        raise PresetStageError(f"stage 'thumbnail': stylise wrote no EXR in {stylised}")
    in_stage("thumbnail", write_thumbnail, frame, output, dataset / val_rows[0]["target"], preset / "thumbnail.png")
    say(f"[thumbnail] {preset / 'thumbnail.png'}")


def train_preset(request: PresetRequest) -> int:
    """Rebuild presets/NAME (dataset, training, export, real assets, card, thumbnail); resumable.

    Returns the exit code: 0 rebuilt, 1 a stage failed, 2 the preset has no dataset.toml or train.toml,
    a bad --resolution, train.toml or bars.toml, 4 the ``stylepass`` command beside this Python is
    missing, 6 the model missed a bar of bars.toml (without --accept-worse)."""
    presets_dir = request.presets_dir.resolve() if request.presets_dir else REPO_PRESETS
    preset = presets_dir / request.name
    for path in (preset / "dataset.toml", preset / "train.toml"):
        if not path.is_file():
            say(f"preset {request.name}: {path} not found")
            return ExitCode.BAD_INPUT
    try:
        load_bars(preset)  # a mistake in bars.toml is refused before hours of work, not after
    except BarsError as error:
        say(f"preset {request.name}: {error}")
        return ExitCode.BAD_INPUT
    stylepass = Path(sys.executable).parent / "stylepass"
    if not stylepass.exists():
        say(f"{stylepass} not found: run `python build.py setup` first")
        return ExitCode.NO_BLENDER  # 4: what `build.py setup` installs is missing
    work = (REPO / ".build" / "presets" / request.name if presets_dir == REPO_PRESETS
            else presets_dir / ".build" / request.name)
    try:
        plan = plan_run(request, preset, work)
    except ValueError as error:
        print(f"{LOG_PREFIX} {error}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    prepare_work(plan, request)
    try:
        run_stages(stylepass, plan, request)
    except PresetStageError as error:
        say(f"train-preset {request.name}: {error}")
        return ExitCode.BARS_MISSED if isinstance(error, BarsMissedError) else ExitCode.FAILED
    say(f"preset {request.name} rebuilt in {preset}")
    return ExitCode.OK
