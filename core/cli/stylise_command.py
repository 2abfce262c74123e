"""``stylepass stylise``: run a trained model on exported frames (core: :mod:`stylepass.core.inference.stylise`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.frame_selection import parse_frame_range, parse_shard

from .arguments import CommandText, add_command, add_device_argument, add_engine_argument, add_precision_argument
from .blender_job import make_console, print_error, print_warning
from .interrupts import run_model_command

if TYPE_CHECKING:
    from ..inference.stylise import FrameJob, Styliser

EPILOG = """outputs:
  OUT/stylised_<frame>.exr  scene-linear half-float RGB, the input's size (frame_000012.exr
                            gives stylised_000012.exr)
  OUT/stylised_<frame>.png  sRGB preview
  OUT/manifest.jsonl        one line per finished frame; re-running skips them

exit codes:
  0    every frame is stylised
  1    unexpected failure, or out of memory even with the smallest tiles
  2    bad input: model, preset, frame, missing passes, option, or CUDA asked for but missing
       (a model folder without an up-to-date model.onnx needs torch to write one; --precision
       int8 needs an up-to-date model.int8.onnx: `stylepass quantize`)
  3    the output folder cannot be written
  130  cancelled; run the same command again to resume
"""


HELP_TEXT = CommandText(
    name="stylise",
    help="stylise exported frames with a trained model (EXR + PNG per frame)",
    description="""
        Run a model on an exported frame (EXR with its JSON sidecar beside it) or on every frame of
        an export folder. Writes OUT/stylised_<frame>.exr (scene-linear, half float) and
        OUT/stylised_<frame>.png (sRGB preview). Re-running the same command resumes: frames this
        model already finished are skipped.""",
    epilog=EPILOG,
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``stylise`` to the CLI."""
    parser = add_command(commands, HELP_TEXT, run_stylise)
    parser.add_argument("input", metavar="INPUT", help="an export EXR (sidecar beside it) or an export folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="DIR",
                        help="model folder (model.onnx, and/or model.safetensors + config.json)")
    source.add_argument("--preset", metavar="NAME",
                        help="a preset's trained model: presets/NAME/model/ ($STYLEPASS_PRESETS overrides presets/)")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    add_device_argument(parser)
    add_engine_argument(parser)
    add_precision_argument(parser)
    parser.add_argument("--frames", metavar="A-B", help="only these frames of the export folder (inclusive)")
    parser.add_argument("--shard", metavar="I/N", help="farm task I of N: every N-th frame from the I-th (1-based); "
                        "tasks may share --out: a frame another task is stylising is left to it")
    parser.add_argument("--tile", metavar="N", type=int,
                        help="run in overlapping N x N tiles (default: whole frames up to 2048x2048, "
                             "1024 tiles above; smaller tiles on GPU out-of-memory)")


def run_stylise(args: argparse.Namespace) -> int:
    """Load the model, stylise every frame of INPUT into --out, and return the exit code."""
    console = make_console()
    try:
        frames = parse_frame_range(args.frames) if args.frames else None
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as error:
        print_error(console, str(error))
        return ExitCode.BAD_INPUT

    def stylise_all() -> int:
        from ..inference.stylise import StyliseError, frame_jobs, load_styliser, resolve_model_dir, select_jobs

        jobs = select_jobs(frame_jobs(args.input, args.out), frames, shard)
        if not jobs:
            raise StyliseError(f"no frame of {args.input} is in --frames {args.frames}", "bad_request")
        model_dir = resolve_model_dir(args.model, args.preset)
        styliser = load_styliser(model_dir, args.device, args.tile, name=args.preset, engine=args.engine,
                                  precision=args.precision)
        console.print(f"model {styliser.name} ({styliser.family}) in {styliser.runtime} on {styliser.device}; "
                      f"{len(jobs)} frame(s) -> {args.out}", markup=False, highlight=False)
        if warning := _input_warning(styliser.name, model_dir, jobs[0].source):
            print_warning(console, warning)
        return _stylise_all(styliser, jobs, Path(args.out), console)

    return run_model_command(console, stylise_all, cannot_write=f"cannot write to {args.out}",
                             on_cancel="run the same command again to resume")


def _input_warning(name: str, model_dir: Path, frame: Path) -> str | None:
    """A warning when the first frame's engine is not the one the preset was trained on."""
    from stylepass.blender_addon.contract.preset_input import input_warning, trained_input

    from ..io.gbuffer import GBufferError, read_sidecar, sidecar_path

    try:
        engine = str(read_sidecar(sidecar_path(frame)).get("engine", ""))
    except GBufferError:
        return None  # the frame loop names an unreadable frame
    return input_warning(name, trained_input(model_dir), engine)


def _stylise_all(styliser: Styliser, jobs: list[FrameJob], out_dir: Path, console: Console) -> int:
    from ..inference.stylise import stylise_jobs

    progress = Progress(TextColumn("[bold]stylise"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.description}"), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal)
    frames = progress.add_task("", total=len(jobs))

    def on_tile(done: int, total: int) -> None:
        progress.update(frames, description=f"tile {done}/{total}")

    def on_frame(done: int, total: int, job: FrameJob, status: str) -> None:
        progress.update(frames, completed=done, description=f"{job.output.name} {status}")
        if not console.is_terminal:
            console.print(f"{job.output.name} {status} ({done}/{total})", markup=False, highlight=False)

    with progress:
        summary = stylise_jobs(styliser, jobs, out_dir, on_frame, on_tile,
                               lambda message: print_warning(progress.console, message))
    taken = f", {len(summary.taken)} left to another task" if summary.taken else ""
    console.print(f"done: {len(summary.stylised)} stylised, {len(summary.skipped)} already finished{taken}, "
                  f"in {out_dir}", markup=False, highlight=False)
    if summary.failed:
        for job, error in summary.failed:
            print_error(console, f"{job.source.name}: {error}")
        print_error(console, f"{len(summary.failed)} of {len(jobs)} frame(s) could not be stylised (named above); "
                             "the others are done. Fix or export those frames again and run the same command")
        return ExitCode.BAD_INPUT
    return ExitCode.OK
