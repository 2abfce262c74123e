"""The ``stylepass`` command line: ``stylepass COMMAND --help`` for each command."""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import TextIO

from . import (
    bench_command,
    compose_command,
    dataset_command,
    evaluate_command,
    export_command,
    keyframe_command,
    quantize_command,
    stylise_command,
    train_command,
    train_photoreal_command,
    train_preset_command,
    train_style_command,
)
from .blender_job import make_console, print_warning


def _version() -> str:
    try:
        return version("stylepass")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stylepass",
        description="Neural stylisation of 3D renders: export G-buffers from Blender, train and run models.",
    )
    parser.add_argument("--version", action="version", version=f"stylepass {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export_command.register(commands)
    dataset_command.register(commands)
    keyframe_command.register(commands)
    train_style_command.register(commands)
    train_photoreal_command.register(commands)
    stylise_command.register(commands)
    quantize_command.register(commands)
    compose_command.register(commands)
    evaluate_command.register(commands)
    train_command.register(commands)
    train_preset_command.register(commands)
    bench_command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser, argv = dataset_command.subcommand_parser(argv) or (build_parser(), argv)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # Python warnings as our own one-line "warning:" messages
        warnings.showwarning = _show_warning
        return int(args.handler(args))


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    print_warning(make_console(), str(message))


if __name__ == "__main__":
    sys.exit(main())
