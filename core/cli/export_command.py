"""``stylepass export``: render G-buffers from headless Blender (see README, "Export")."""

from __future__ import annotations

import argparse
from pathlib import Path

from stylepass.blender_addon.contract.export_options import ExportOptions, add_export_arguments
from stylepass.blender_addon.contract.exit_codes import ExitCode

from .blender_runtime import SUPPORTED_VERSIONS
from .blender_job import make_console, print_error, run_blender_job

EXIT_CODES_HELP = """exit codes:
  0    every frame of this shard is exported (re-running skips them)
  1    unexpected failure (Blender crashed, a bug): retry, then report it
  2    bad input: scene, option or frame range is wrong; retrying will not help
  3    the output folder cannot be written
  4    the requested Blender is not installed (run `python build.py setup`)
  130  cancelled; run the same command again to resume
"""


def add_blender_arguments(parser: argparse.ArgumentParser) -> None:
    """``--blender`` and ``--verbose``, shared by the commands that run Blender."""
    parser.add_argument("--blender", metavar="4.5|5.2|PATH",
                        help=f"Blender to use: {' or '.join(SUPPORTED_VERSIONS)} (set up by build.py) "
                             "or a path to a Blender executable (default: the newest set up)")
    parser.add_argument("--verbose", action="store_true", help="show Blender's own output")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``export`` to the CLI."""
    parser = commands.add_parser(
        "export",
        help="render G-buffers (multilayer EXR + JSON per frame) with headless Blender",
        description="Render a scene's frames and write one multilayer EXR (beauty, albedo, normal, "
                    "depth, material ids, motion) and one JSON sidecar per frame, plus manifest.jsonl. "
                    "Re-running the same command resumes: finished frames are skipped.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_export_arguments(parser)
    add_blender_arguments(parser)
    parser.set_defaults(handler=run_export)


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
                "--out", str(Path(args.out).resolve()), "--seed", str(args.seed)]
    for option in ("engine", "frames", "samples", "resolution", "shard"):
        value = getattr(args, option)
        if value is not None:
            job_args += [f"--{option}", str(value)]
    return run_blender_job("export", job_args, args.blender, args.verbose, console)
