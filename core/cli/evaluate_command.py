"""``stylepass evaluate``: PSNR, SSIM and fine-detail ratio of a model on a dataset's held-out split,
beside the untouched input and Blender's Denoise node (core: :mod:`stylepass.training.evaluate.held_out`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from stylepass.blender_addon.contract.atomic_files import write_json_atomic
from stylepass.blender_addon.contract.dataset_layout import DatasetError
from stylepass.blender_addon.contract.exit_codes import ExitCode

from ..io.dataset_tools import EVALUATIONS_FOLDER
from .arguments import (
    CommandText,
    add_blender_arguments,
    add_command,
    add_device_argument,
    add_engine_argument,
    add_precision_argument,
)
from .blender_job import make_console, run_blender_job
from .interrupts import run_model_command

if TYPE_CHECKING:
    from stylepass.core.inference.stylise import Styliser
    from stylepass.training.data.paired_dataset import PairRecord
    from stylepass.training.evaluate.held_out import Evaluation, ReadFrame

REPORT_NAME = "report.json"
SHEET_NAME = "sheet.png"
TIMING_NAME = "timing.json"
DENOISE_DIR = "denoise"

EPILOG = """outputs (in --out, default DATASET/evaluation/<model name>/):
  report.json        model id (weights digest), dataset and its identity, split, device, torch
                     version, per-pair / per-scene / mean PSNR, SSIM and detail of model, input,
                     denoise and peer (datasets whose recipe has a [peer] render), the dataset's
                     render seconds of input, peer and target
  timing.json        this run's model seconds per frame (median and each), beside those render seconds
  sheet.png          input | output | target (| denoise)(| peer) of the first --sheet-rows pairs
  denoise/           the denoised inputs (float EXR), reused when evaluate runs again

figures: in the model range x/(1+x) of scene-linear RGB, as training validation and the presets'
cards (PNG targets are sRGB-decoded to linear first); the same command gives the same figures.

exit codes:
  0    done
  1    unexpected failure
  2    bad input: model, preset, dataset, split without pairs, missing or mismatched files, option
  3    the output folder cannot be written
  4    the Blender asked for (Denoise baseline) is not installed
  130  cancelled; denoised frames are kept
"""


HELP_TEXT = CommandText(
    name="evaluate",
    help="PSNR, SSIM and fine-detail ratio of a model on a dataset's held-out split, beside the baselines",
    description="""
        Run MODEL on every pair of a split of DATASET (whole frames, as `stylepass stylise` does)
        and compare output, untouched input and, for enhance datasets, Blender's Denoise node on the
        input and the peer render (what a user would render instead, when the dataset's recipe has
        a [peer]) with the targets: PSNR, SSIM and fine-detail ratio per pair, per scene and on average. Writes a JSON
        report and a side-by-side PNG.""",
    epilog=EPILOG,
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the CLI."""
    parser = add_command(commands, HELP_TEXT, run_evaluate)
    parser.add_argument("model", metavar="MODEL",
                        help="a model folder (model.safetensors + config.json) or a preset name")
    parser.add_argument("--data", metavar="DATASET", required=True,
                        help="paired dataset folder (pairs.jsonl) from `stylepass dataset`")
    parser.add_argument("--split", default="val", help="the split to evaluate (default: val, the held-out scenes)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: DATASET/evaluation/<model name>)")
    add_device_argument(parser)
    add_engine_argument(parser)
    add_precision_argument(parser)
    parser.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=None,
                        help="run the Denoise baseline in Blender (default: on for enhance datasets, off otherwise)")
    parser.add_argument("--limit", metavar="N", type=_positive, help="evaluate only the first N pairs of the split")
    parser.add_argument("--sheet-rows", metavar="N", type=_positive, default=8,
                        help="pairs shown on sheet.png (default: 8, the first ones)")
    add_blender_arguments(parser)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def run_evaluate(args: argparse.Namespace) -> int:
    """Check the inputs, load the model, run the Denoise baseline, compute and write the figures."""
    console = make_console()
    # torch loads here, not when the CLI starts.
    from stylepass.training.data.image_io import ImageReadError

    return run_model_command(console, lambda: _evaluate(args, console), cannot_write="cannot write the evaluation",
                             on_cancel="run the same command again (denoised frames are kept)",
                             bad_input=(DatasetError, ImageReadError))  # EvaluationError is a DatasetError


def resolve_model(text: str) -> tuple[Path, str]:
    """MODEL as (model folder, name): an existing path is a model folder (named after it, or after
    its preset for ``presets/NAME/model``), anything else a preset name.

    Raises StyliseError (``bad_model``) naming the presets when it is neither.
    """
    from stylepass.core.inference.stylise import (
        PRESET_MODEL_FOLDER,
        StyliseError,
        presets_dir,
        resolve_model_dir,
    )

    path = Path(text)
    if path.exists() or len(path.parts) > 1 or text.startswith("."):
        directory = resolve_model_dir(model=path)
        resolved = directory.resolve()
        return directory, resolved.parent.name if resolved.name == PRESET_MODEL_FOLDER else resolved.name
    try:
        return resolve_model_dir(preset=text), text
    except StyliseError as error:
        if (presets_dir() / text).is_dir():
            raise  # the preset exists but has no trained model: its own message says what to do
        raise StyliseError(f"MODEL {text!r} is neither a model folder nor a preset: {error}", "bad_model") from None


def _evaluate(args: argparse.Namespace, console: Console) -> int:
    from stylepass.core.inference.stylise import load_styliser, read_frame
    from stylepass.training.evaluate import held_out as evaluate

    dataset = Path(args.data)
    pairs = evaluate.split_pairs(dataset, args.split, args.limit)
    identity = evaluate.dataset_identity(dataset)
    kind = evaluate.target_kind(identity)
    model_dir, name = resolve_model(args.model)
    styliser = load_styliser(model_dir, args.device, name=name, engine=args.engine, precision=args.precision)
    default_out = dataset / EVALUATIONS_FOLDER / (name if args.precision == "fp32" else f"{name}-{args.precision}")
    out = Path(args.out) if args.out else default_out  # an int8 run beside the fp32 one, never over it
    denoise = args.denoise if args.denoise is not None else kind == "enhance"
    console.print(f"model {styliser.name} ({styliser.family}) in {styliser.runtime} on {styliser.device}; "
                  f"{len(pairs)} pair(s) of "
                  f"split {args.split!r} of {dataset} (target: {kind or 'unknown'})"
                  f"{'; Denoise baseline in Blender' if denoise else ''} -> {out}", markup=False, highlight=False)
    out.mkdir(parents=True, exist_ok=True)

    denoised = None
    denoise_info = None
    if denoise:
        jobs = evaluate.denoise_job_list(pairs, dataset, out / DENOISE_DIR)
        jobs_file = out / DENOISE_DIR / "jobs.json"
        jobs_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(jobs_file, jobs)
        code = run_blender_job("denoise", [str(jobs_file.resolve())], args.blender, args.verbose, console)
        if code != ExitCode.OK:
            return code
        denoised = [Path(job["output"]) for job in jobs["jobs"]]
        denoise_info = {"node": "Blender compositor Denoise (OpenImageDenoise)", "blender": _blender_name(args.blender),
                        "settings": evaluate.DENOISE_SETTINGS, "guides": evaluate.DENOISE_GUIDES,
                        "folder": DENOISE_DIR}

    result = _run_model(styliser, pairs, dataset, denoised, args.sheet_rows, console, read_frame)
    model = {"name": styliser.name, "folder": str(model_dir.resolve()), "id": styliser.model_id,
             **styliser.describe()}
    report = evaluate.build_report(result, model=model, dataset=dataset, identity=identity, split=args.split,
                                   device=styliser.device, denoise=denoise_info, sheet=SHEET_NAME)
    write_json_atomic(out / REPORT_NAME, report)
    timing = evaluate.timing_record(result, runtime=styliser.runtime, device=styliser.device)
    write_json_atomic(out / TIMING_NAME, timing)
    from stylepass.core.io.atomic_image import save_png_atomic

    save_png_atomic(out / SHEET_NAME, evaluate.sheet_image(result))
    _print_table(report)
    if timing["render_seconds"]:
        renders = ", ".join(f"{name} {value:.2f} s" for name, value in timing["render_seconds"].items()
                            if value is not None)
        console.print(f"per frame: renders (when the dataset was made) {renders}; model "
                      f"{timing['model_seconds_median']:.2f} s ({styliser.runtime}, {styliser.device})",
                      markup=False, highlight=False)
    console.print(f"report: {out / REPORT_NAME}\ntiming: {out / TIMING_NAME}\nsheet: {out / SHEET_NAME}",
                  markup=False, highlight=False)
    return ExitCode.OK


def _blender_name(choice: str | None) -> str:
    """The Blender that ``--blender`` picks, in words (``Blender 5.2 (bpy)``)."""
    from .blender_runtime import addon_dir, blender_command

    return blender_command(choice, addon_dir() / "headless_main.py", []).description


def _run_model(styliser: Styliser, pairs: list[PairRecord], dataset: Path, denoised: list[Path] | None,
               sheet_rows: int, console: Console, read_frame: ReadFrame) -> Evaluation:
    from stylepass.training.evaluate.held_out import evaluate_pairs

    progress = Progress(TextColumn("[bold]evaluate"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.description}"), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal)
    task = progress.add_task("", total=len(pairs))

    def on_pair(done: int, total: int, label: str) -> None:
        progress.update(task, completed=done, description=label)
        if not console.is_terminal:
            console.print(f"{label} evaluated ({done}/{total})", markup=False, highlight=False)

    with progress:
        return evaluate_pairs(styliser.stylise, read_frame, pairs, dataset, denoised, sheet_rows, on_pair)


def _print_table(report: dict[str, Any]) -> None:
    """Per-scene and mean PSNR, SSIM and fine-detail ratio of each method, on stdout."""
    methods = report["methods"]
    table = Table(title=f"{report['model']['name']} on split {report['split']!r} ({report['count']} pairs)")
    table.add_column("scene", no_wrap=True)
    table.add_column("pairs", justify="right")
    columns = (("PSNR dB", "psnr", "{:.2f}"), ("SSIM", "ssim", "{:.4f}"), ("detail", "detail", "{:.2f}"))
    for heading, _, _ in columns:
        for method in methods:
            table.add_column(f"{heading} {method}", justify="right")

    def cells(figures: dict[str, Any]) -> list[str]:
        return [shown.format(figures[m][key]) for _, key, shown in columns for m in methods]

    for scene, figures in report["scenes"].items():
        table.add_row(scene, str(figures["pairs"]), *cells(figures))
    table.add_section()
    table.add_row("mean", str(report["count"]), *cells(report["means"]), style="bold")
    stdout = Console()
    (stdout if stdout.is_terminal else Console(width=160)).print(table)  # logs: no truncated columns
