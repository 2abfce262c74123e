"""``stylepass train-photoreal``: the enhance generator trained to look like a folder of photographs
(unpaired, EPE-style; core: :mod:`stylepass.training.loop.photoreal`)."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from stylepass.blender_addon.contract.exit_codes import ExitCode

from .arguments import CommandText, add_command, add_device_argument, training_device
from .blender_job import make_console, print_error, print_warning

EPILOG = """outputs:
  RUN/model/          model.safetensors + config.json (apply it:
                      `stylepass stylise EXPORT --model RUN/model --out DIR`), photoreal.json
                      (what it was trained from), preview.png
  RUN/preview.png     input | output | matched photo crop, for a few validation frames
  RUN/photos/         the photos as trained on (scaled, exposure-matched linear EXR; photos.json)
  RUN/config.toml     the resolved training config; checkpoints/, metrics.jsonl as `stylepass train`

exit codes:
  0    trained (or resumed to --steps), exported, preview written
  2    bad input: no/missing photo folder, unreadable images, no usable photo (all greyscale,
       cut-outs or smaller than the crop), --data not a render dataset, a bad --config, a run that
       exists already (--resume) or photos changed since it started
  3    the run folder cannot be written
  5    the loss became non-finite (the last good checkpoint is named)
  130  cancelled (Ctrl-C, SIGTERM): a checkpoint is kept; run the same command with --resume
"""

HELP_TEXT = CommandText(
    name="train-photoreal",
    help="train the enhance generator to make renders look like a folder of your photographs",
    description="""
        Unpaired photoreal enhancement (after Richter et al., "Enhancing Photorealism
        Enhancement"): the RAD enhance generator reads a render dataset's frames and G-buffers and
        learns to make them look like your photographs, judged by a discriminator on
        layout-matched photo crops, while an L1 to the input keeps the render's content. Photos
        of any size and kind are prepared first (scaled down without distortion, colour profiles,
        16-bit and alpha handled, exposure matched to the renders). Details: docs/photoreal.md.""",
    epilog=EPILOG,
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``train-photoreal`` to the CLI."""
    parser = add_command(commands, HELP_TEXT, run_train_photoreal)
    parser.add_argument("--photos", metavar="DIR", type=Path, required=True,
                        help="folder of photographs (JPEG, PNG, TIFF, WebP, BMP; subfolders too)")
    parser.add_argument("--data", metavar="DATASET", type=Path, required=True,
                        help="render dataset folder (pairs.jsonl) from `stylepass dataset`; its targets are not used")
    parser.add_argument("--out", metavar="RUN", type=Path, required=True,
                        help="run folder: checkpoints, prepared photos, preview, model/")
    parser.add_argument("--steps", metavar="N", type=int, help="total training steps (default 2000)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly (same photos)")
    add_device_argument(parser, help="where to train: auto (CUDA when available, the default), cpu, cuda or cuda:N")
    parser.add_argument("--config", metavar="TOML", type=Path,
                        help="training config whose keys replace the defaults (see docs/photoreal.md), "
                             "e.g. [train] crop_size or [loss] content")
    parser.add_argument("--photo-size", metavar="PX", type=int,
                        help="shorter side the photos are scaled down to (default: the render frames' "
                             "shorter side)")


def run_train_photoreal(args: argparse.Namespace) -> int:
    """Prepare the photos, train, export and preview; returns the exit code."""
    console = make_console()

    from stylepass.training.loop.photoreal import train_photoreal
    from stylepass.training.loop.run_control import NonFiniteLossError, StepProgress
    from stylepass.training.loop.stop_signals import handled_signals, raise_keyboard_interrupt

    from .train_command import input_errors

    device = training_device(args.device, console, "about 2 s a step at the defaults on a 2-core CPU; Ctrl-C "
                                                    "keeps a checkpoint, --resume goes on; docs/photoreal.md")
    if device is None:
        return ExitCode.BAD_INPUT
    if args.photo_size is not None and args.photo_size < 1:
        print_error(console, f"--photo-size must be >= 1, got {args.photo_size}")
        return ExitCode.BAD_INPUT

    progress: StepProgress | None = None

    def on_photo(done: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = StepProgress("photos", total, console, description="preparing").__enter__()
        progress.update(done, "prepared" if done == total else None, logged=done == total)
        if done == total:
            progress.__exit__(None, None, None)
            progress = None

    started = time.perf_counter()
    try:
        with handled_signals(raise_keyboard_interrupt, (signal.SIGTERM,)):  # the trainer has its own stop
            result = train_photoreal(
                args.photos, args.data, args.out, device, resume=args.resume, steps=args.steps,
                config_file=args.config, photo_size=args.photo_size, on_photo=on_photo,
                on_note=lambda text: print_warning(console, text),
            )
    except NonFiniteLossError as error:
        print_error(console, str(error))
        return ExitCode.DIVERGED
    except input_errors() as error:
        print_error(console, str(error))
        return ExitCode.BAD_INPUT
    except OSError as error:
        print_error(console, f"cannot write {error.filename or args.out}: {error}")
        return ExitCode.OUTPUT_UNWRITABLE
    except KeyboardInterrupt:
        console.print("[yellow]cancelled[/]: nothing half-written is kept; run the same command again "
                      "(with --resume once a checkpoint exists)")
        return ExitCode.CANCELLED
    finally:
        if progress is not None:
            progress.__exit__(None, None, None)
    training = result.training
    if training.interrupted:
        console.print(f"[yellow]cancelled[/] at step {training.step}: checkpoint {training.checkpoint}; continue "
                      "with the same command and --resume", highlight=False)
        return ExitCode.CANCELLED
    photos = result.photos
    used = f"{len(photos.photos)} photo(s)" + (f", {len(photos.skipped)} skipped" if photos.skipped else "")
    console.print(f"trained to step {training.step} in {time.perf_counter() - started:.0f} s on {used} "
                  f"(exposure x{photos.exposure:.3g})", markup=False, highlight=False)
    console.print(f"model written to {result.model_dir}", markup=False, highlight=False)
    console.print(f"preview: {result.preview}", markup=False, highlight=False)
    console.print(f"apply it: stylepass stylise EXPORT --model {result.model_dir} --out OUT", markup=False,
                  highlight=False)
    return ExitCode.OK
