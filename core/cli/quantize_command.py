"""``stylepass quantize``: a model folder's int8 ONNX model (core: :mod:`stylepass.core.inference.onnx_quantize`)."""

from __future__ import annotations

import argparse
import json

from stylepass.blender_addon.contract.exit_codes import ExitCode

from .arguments import CommandText, add_command
from .blender_job import make_console, print_warning
from .interrupts import run_model_command

EPILOG = """outputs:
  MODEL_DIR/model.int8.onnx  model.onnx with int8 convolutions (QDQ), calibrated on FOLDER's frames;
                             run it with  stylepass stylise ... --precision int8
  (MODEL_DIR/model.onnx is written first when missing or out of date, as stylise does)

exit codes:
  0    written; the figures of the check are printed
  2    bad input: model folder or preset, calibration folder, a damaged frame
  3    the model folder cannot be written
  130  cancelled; nothing is left half-written
"""

HELP_TEXT = CommandText(
    name="quantize",
    help="make a model folder's int8 model (model.int8.onnx) for faster CPU stylising",
    description="""
        Quantize a model folder's model.onnx to int8 with ONNX Runtime's static QDQ quantization: the
        convolutions run in int8 (the Kuwahara stage, norms and colour maths stay float32), with
        ranges calibrated on FOLDER's frames: a training dataset (pairs.jsonl: its train frames
        calibrate, its val frames check) or an export folder of frames like the ones you will stylise.
        Then the int8 and float32 models run on held-out frames and the PSNR of the int8 output against
        the float32 one is printed and recorded in the file. When the weights change, the int8 file is
        refused until this is run again.""",
    epilog=EPILOG,
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``quantize`` to the CLI."""
    parser = add_command(commands, HELP_TEXT, run_quantize)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("model", metavar="MODEL_DIR", nargs="?",
                        help="model folder (model.safetensors + config.json, and/or model.onnx)")
    source.add_argument("--preset", metavar="NAME", help="a preset's model: presets/NAME/model/")
    parser.add_argument("--data", metavar="FOLDER", required=True,
                        help="calibration frames: a training dataset (pairs.jsonl) or an export folder")


def run_quantize(args: argparse.Namespace) -> int:
    """Quantize the model folder; returns the exit code."""
    console = make_console()

    def quantize() -> int:
        from ..inference.onnx_quantize import quantize_model
        from ..inference.stylise import resolve_model_dir

        model_dir = resolve_model_dir(args.model, args.preset)
        report = quantize_model(model_dir, args.data, lambda line: console.print(line, markup=False, highlight=False))
        summary = report.summary()
        console.print(f"int8 model written to {report.path}", markup=False, highlight=False)
        console.print(json.dumps(summary, sort_keys=True), markup=False, highlight=False)
        worst = summary["min_psnr_int8_vs_fp32_db"]
        if worst is not None and worst < 30.0:
            print_warning(console, f"the int8 output differs visibly from the float32 one on a check frame "
                                   f"({worst:.1f} dB): compare before using --precision int8")
        return ExitCode.OK

    return run_model_command(console, quantize, cannot_write=f"cannot write into {args.model or args.preset}",
                             on_cancel="nothing was written; run the same command again")
