"""Argument set-up the ``stylepass`` commands share (standard library only: ``stylepass --help``
must not wait for torch)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stylepass.blender_addon.contract.worker_protocol import ENGINES, PRECISIONS

from .blender_runtime import SUPPORTED_VERSIONS

if TYPE_CHECKING:
    import torch
    from rich.console import Console

Handler = Callable[[argparse.Namespace], int]  # runs a parsed command; returns its exit code



@dataclass(frozen=True)
class CommandText:
    """What the help says of a subcommand. ``help``: its line in ``stylepass --help``;
    ``description``: the paragraph that opens ``stylepass NAME --help``, written over as many source
    lines as it likes and shown as one line; ``epilog``: what ends it (what the command writes, its
    exit codes), laid out as written."""

    name: str
    help: str
    description: str
    epilog: str


def add_command(commands: argparse._SubParsersAction, text: CommandText, handler: Handler) -> argparse.ArgumentParser:
    """Add the subcommand ``text.name``, run by ``handler``, with the help ``text`` gives."""
    paragraph = " ".join(text.description.split())  # the raw formatter (kept for the epilog) would show its line breaks
    parser = commands.add_parser(text.name, help=text.help, description=paragraph, epilog=text.epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def add_blender_arguments(parser: argparse.ArgumentParser) -> None:
    """``--blender`` and ``--verbose``, shared by the commands that run Blender."""
    parser.add_argument("--blender", metavar="4.5|5.2|PATH",
                        help=f"Blender to use: {' or '.join(SUPPORTED_VERSIONS)} (set up by build.py) "
                             "or a path to a Blender executable (default: the newest set up)")
    parser.add_argument("--verbose", action="store_true", help="show Blender's own output")


def device_name(text: str) -> str:
    """An argparse type: "auto", "cpu", "cuda" or "cuda:N", else an error naming them."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use auto, cpu, cuda or cuda:N")
    return text


def add_device_argument(parser: argparse.ArgumentParser,
                        help: str = "where the model runs: auto (CUDA when available), cpu, cuda or cuda:N") -> None:
    """``--device auto|cpu|cuda|cuda:N`` (default auto: CUDA when the runtime has it, else the CPU)."""
    parser.add_argument("--device", type=device_name, default="auto", metavar="DEVICE", help=help)


def training_device(requested: str, console: Console, cpu_note: str) -> torch.device | None:
    """The torch device a training command's ``--device`` asks for: auto takes CUDA when there is
    one, else the CPU with a warning ending in `cpu_note` (what CPU training costs). Prints the
    error and returns None when CUDA is asked for but missing (the caller exits 2)."""
    import torch

    from ..inference.predict import resolve_device
    from .blender_job import print_error, print_warning

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
        if requested == "cpu":
            print_warning(console, f"no usable CUDA device: training on the CPU ({cpu_note})")
    try:
        return resolve_device(requested)
    except RuntimeError as error:
        print_error(console, str(error))
        return None


def add_engine_argument(parser: argparse.ArgumentParser) -> None:
    """``--engine onnx|torch`` (default onnx: ONNX Runtime on the model's model.onnx)."""
    parser.add_argument("--engine", choices=ENGINES, default=ENGINES[0],
                        help="what runs the model: onnx (ONNX Runtime on model.onnx, written from the weights when "
                             "missing; the default) or torch (the weights in torch, as training does)")


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision fp32|int8`` (default fp32: model.onnx; int8: model.int8.onnx, from ``stylepass quantize``)."""
    parser.add_argument("--precision", choices=PRECISIONS, default=PRECISIONS[0],
                        help="fp32 (model.onnx; the default) or int8 (the folder's model.int8.onnx, made by "
                             "`stylepass quantize MODEL_DIR --data FOLDER`; faster on CPUs with int8 instructions, "
                             "ONNX Runtime only)")
