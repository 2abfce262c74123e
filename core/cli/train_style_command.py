"""``stylepass train-style``: a custom style from the painted keyframes of an export folder
(core: :mod:`stylepass.training.loop.train_style`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.headless_protocol import encode_event
from stylepass.training.loop.stop_signals import StopRequest

from .arguments import CommandText, add_command, add_device_argument, training_device
from .blender_job import make_console, print_error, print_warning

EPILOG = """outputs:
  MODEL_DIR/                model.safetensors + config.json (stylise it like a preset:
                            `stylepass stylise EXPORT --model MODEL_DIR`), style.json (what it
                            was trained from), preview.png
  WORK/ (MODEL_DIR.run)     checkpoints, metrics.jsonl, preview.png (rewritten while it trains)

exit codes:
  0    the style is trained and exported (also when --minutes ended it early)
  2    bad input: no painted keyframes, a painting of the wrong size, unreadable frames, a run
       that exists already (--resume / --restart), options out of range, CUDA asked for but missing
  3    the output folder cannot be written
  5    the loss became non-finite (the last good checkpoint is named)
  130  cancelled (Ctrl-C, SIGTERM): a checkpoint is written; continue with --resume
"""


HELP_TEXT = CommandText(
    name="train-style",
    help="train a custom style from painted keyframes (1 to 5 paintings)",
    description="""
        Train a few-shot styliser from the painted keyframes registered in an export folder
        (`stylepass keyframe add`): a small U-Net reading the render and its albedo, normal and
        depth passes learns the paintings from randomly cropped, scaled, turned and mirrored
        patches. The paintings are only read. The defaults gave a usable style in 8 minutes on a
        2-core CPU at 512x512 (docs/train-style.md).""",
    epilog=EPILOG,
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``train-style`` to the CLI."""
    parser = add_command(commands, HELP_TEXT, run_train_style)
    parser.add_argument("export", metavar="EXPORT", type=Path, help="export folder with painted keyframes")
    parser.add_argument("--out", metavar="MODEL_DIR", type=Path, required=True,
                        help="model dir to write (an existing model dir is replaced when training ends)")
    parser.add_argument("--steps", type=int, help="training steps (default 2000)")
    parser.add_argument("--minutes", type=float,
                        help="time budget: stop after this many minutes of training and export the model "
                             "(--resume continues towards --steps)")
    add_device_argument(parser, help="where to train (default: auto, CUDA when available)")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--resume", action="store_true", help="continue the run in the work folder")
    state.add_argument("--restart", action="store_true",
                       help="discard the work folder's checkpoints and train afresh (paintings are never touched)")
    parser.add_argument("--work", metavar="DIR", type=Path, help="work folder (default: MODEL_DIR.run)")
    parser.add_argument("--preview", metavar="FILE.png", type=Path,
                        help="preview sheet, rewritten atomically while training (default: WORK/preview.png)")
    parser.add_argument("--preview-every", metavar="K", type=int, help="steps between previews (100)")
    parser.add_argument("--patch", metavar="PX", type=int, help="training patch size in pixels (96)")
    parser.add_argument("--batch", metavar="N", type=int, help="patches per step (4)")
    parser.add_argument("--width", metavar="C", type=int, help="U-Net channels at full resolution (16)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (0.001)")
    parser.add_argument("--seed", type=int, help="initial weights and patch sequence (0)")
    parser.add_argument("--threads", type=int,
                        help="CPU threads (default: half the cores, at least 1: more threads than free cores "
                             "make each step many times slower)")
    parser.add_argument("--no-rotate", action="store_true",
                        help="no quarter turns or small rotations (for strokes with a fixed direction on screen)")
    parser.add_argument("--no-flip", action="store_true", help="no mirrored patches")
    parser.add_argument("--events", action="store_true",
                        help="report progress as '@@stylepass {json}' lines on stdout (for the Blender add-on)")


def run_train_style(args: argparse.Namespace) -> int:
    """Train and export the style; returns the exit code."""
    console = make_console()
    import torch

    from stylepass.blender_addon.contract.keyframes import list_keyframes
    from stylepass.training.loop.run_control import NonFiniteLossError, StepProgress
    from stylepass.training.loop.train_style import TUNED_MAX_KEYFRAMES, TrainStyleError, train_style

    settings = settings_from_args(args)
    threads = args.threads if args.threads is not None else max(1, (os.cpu_count() or 2) // 2)
    if threads < 1:
        print_error(console, f"--threads must be >= 1, got {threads}")
        return ExitCode.BAD_INPUT
    torch.set_num_threads(threads)
    device = training_device(args.device, console, "the defaults took 8 minutes on a 2-core CPU; --minutes "
                                                    "sets a budget")
    if device is None:
        return ExitCode.BAD_INPUT
    count = len(list_keyframes(args.export)) if args.export.is_dir() else 0
    if count > TUNED_MAX_KEYFRAMES:
        print_warning(console, f"{count} painted keyframes: train-style is tuned for 1 to {TUNED_MAX_KEYFRAMES}; "
                               "more work too, but each is seen less often (raise --steps)")

    stop = StopRequest(lambda message: console.print(message, markup=False))
    progress = StepProgress("train-style", settings.steps, console, description="loading the paintings",
                            enabled=not args.events)

    def on_progress(report) -> None:  # a train_style.StepReport
        label = "starting" if report.loss is None else f"loss {report.loss:.4f}"
        progress.update(report.step, label, logged=report.logged, elapsed=report.elapsed)
        if args.events:
            print(encode_event("progress", done=report.step, total=report.steps, label=label, status="training"),
                  flush=True)

    try:
        with stop:
            if args.events:
                print(encode_event("start", total=settings.steps, message=f"training a style from {args.export}"),
                      flush=True)
            with progress:
                result = train_style(args.export, args.out, settings, device, work_dir=args.work,
                                     resume=args.resume, restart=args.restart, minutes=args.minutes,
                                     preview=args.preview, on_progress=on_progress,
                                     should_stop=lambda: stop.requested)
    except TrainStyleError as error:
        return _fail(console, args, str(error), ExitCode.BAD_INPUT)
    except NonFiniteLossError as error:
        return _fail(console, args, str(error), ExitCode.DIVERGED)
    except OSError as error:
        return _fail(console, args, f"cannot write {error.filename or args.out}: {error}", ExitCode.OUTPUT_UNWRITABLE)
    except KeyboardInterrupt:
        console.print("[yellow]cancelled[/] at once: the last checkpoint is kept; continue with --resume")
        return ExitCode.CANCELLED
    if result.interrupted:
        console.print(f"[yellow]cancelled[/] at step {result.step}: checkpoint in {result.work_dir}; "
                      f"continue with the same command and --resume", highlight=False)
        return ExitCode.CANCELLED
    note = ""
    if result.out_of_time:
        note = f" (time budget reached at step {result.step} of {settings.steps}; --resume continues)"
    message = f"style written to {result.model_dir}{note}; preview {result.preview}"
    console.print(message, markup=False, highlight=False)
    console.print(f"apply it: stylepass stylise {args.export} --model {result.model_dir} --out OUT", markup=False)
    if args.events:
        print(encode_event("done", message=message, model=str(result.model_dir), preview=str(result.preview)),
              flush=True)
    return ExitCode.OK


def settings_from_args(args: argparse.Namespace):  # -> train_style.StyleSettings
    """The training settings: StyleSettings' defaults with the options given on the command line."""
    import dataclasses

    from stylepass.training.loop.train_style import StyleSettings

    defaults = StyleSettings()
    augment = defaults.augment
    if args.patch is not None:
        augment = dataclasses.replace(augment, patch=args.patch)
    if args.no_rotate:
        augment = dataclasses.replace(augment, quarter_turns=False, max_rotation_degrees=0.0)
    if args.no_flip:
        augment = dataclasses.replace(augment, flips=False)
    given = {"steps": args.steps, "batch_size": args.batch, "lr": args.lr, "base_width": args.width,
             "seed": args.seed, "preview_every": args.preview_every}
    changes = {name: value for name, value in given.items() if value is not None}
    return dataclasses.replace(defaults, augment=augment, **changes)


def _fail(console: Console, args: argparse.Namespace, message: str, code: ExitCode) -> int:
    print_error(console, message)
    if args.events:
        print(encode_event("error", code=int(code), message=message), flush=True)
    return code
