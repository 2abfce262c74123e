"""``stylepass export``: render G-buffers from headless Blender (see README, "Export")."""

from __future__ import annotations

import argparse
from pathlib import Path

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.export_options import ExportOptions, add_export_arguments

from .arguments import CommandText, add_blender_arguments, add_command
from .blender_job import given_options, make_console, print_error, run_blender_job

EXIT_CODES_HELP = """exit codes:
  0    every frame of this shard is exported (re-running skips them)
  1    unexpected failure (Blender crashed, a bug): retry, then report it
  2    bad input: scene, option or frame range is wrong; retrying will not help
  3    the output folder cannot be written
  4    the requested Blender is not installed (run `python build.py setup`)
  130  cancelled; run the same command again to resume
"""


HELP_TEXT = CommandText(
    name="export",
    help="render G-buffers (multilayer EXR + JSON per frame) with headless Blender",
    description="""
        Render a scene's frames and write one multilayer EXR (beauty, albedo, normal, depth,
        material ids, motion) and one JSON sidecar per frame, plus manifest.jsonl. Re-running the
        same command resumes: finished frames are skipped.""",
    epilog=EXIT_CODES_HELP,
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``export`` to the CLI."""
    parser = add_command(commands, HELP_TEXT, run_export)
    add_export_arguments(parser)
    add_blender_arguments(parser)


def run_export(args: argparse.Namespace) -> int:
    """Validate the options, run the export job in Blender, and return its exit code."""
    console = make_console()
    try:
        ExportOptions.from_namespace(args)
        if args.scene != "demo" and not Path(args.scene).is_file():
            raise ValueError(f"scene file not found: {args.scene}")
    except ValueError as exc:
        print_error(console, str(exc))
        return ExitCode.BAD_INPUT
    job_args = [args.scene if args.scene == "demo" else str(Path(args.scene).resolve()),
                "--out", str(Path(args.out).resolve()), "--seed", str(args.seed),
                *given_options(args, ("engine", "frames", "samples", "resolution", "shard", "cycles_device"))]
    return run_blender_job("export", job_args, args.blender, args.verbose, console)
