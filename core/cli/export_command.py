"""``stylepass export``: render G-buffers from headless Blender (see README, "Export")."""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stylepass.blender_addon.export_options import ExportOptions, add_export_arguments
from stylepass.blender_addon.headless_protocol import ExitCode, decode_event

from ..blender_runtime import SUPPORTED_VERSIONS, BlenderNotFoundError, addon_dir, blender_command

EXIT_CODES_HELP = """exit codes:
  0    every frame of this shard is exported (re-running skips them)
  1    unexpected failure (Blender crashed, a bug): retry, then report it
  2    bad input: scene, option or frame range is wrong; retrying will not help
  3    the output folder cannot be written
  4    the requested Blender is not installed (run `python build.py setup`)
  130  cancelled; run the same command again to resume
"""

TAIL_LINES = 40
CANCEL_GRACE_SECONDS = 60


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
    parser.add_argument("--blender", metavar="4.5|5.2|PATH",
                        help=f"Blender to use: {' or '.join(SUPPORTED_VERSIONS)} (set up by build.py) "
                             "or a path to a Blender executable (default: the newest set up)")
    parser.add_argument("--verbose", action="store_true", help="show Blender's own output")
    parser.set_defaults(handler=run_export)


def _script_args(args: argparse.Namespace) -> list[str]:
    forwarded = [args.scene, "--out", str(Path(args.out).resolve()), "--seed", str(args.seed)]
    for option in ("engine", "frames", "samples", "resolution", "shard"):
        value = getattr(args, option)
        if value is not None:
            forwarded += [f"--{option}", str(value)]
    return forwarded


def run_export(args: argparse.Namespace) -> int:
    """Validate, start Blender, show its progress, and return its exit code."""
    console = Console(stderr=True, soft_wrap=True)  # no hard wraps in farm logs
    try:
        ExportOptions.from_namespace(args)
        if args.scene != "demo" and not Path(args.scene).is_file():
            raise ValueError(f"scene file not found: {args.scene}")
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        return ExitCode.BAD_INPUT
    scene_arg = args.scene if args.scene == "demo" else str(Path(args.scene).resolve())
    try:
        command = blender_command(args.blender, addon_dir() / "headless_export.py",
                                  [scene_arg, *_script_args(args)[1:]])
    except BlenderNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}")
        return ExitCode.NO_BLENDER
    return _run_blender(command.argv, {**os.environ, **command.env}, args.verbose, console)


def _run_blender(argv: list[str], env: dict[str, str], verbose: bool, console: Console) -> int:
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    errors: list[str] = []
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1, errors="replace")
    progress = Progress(TextColumn("[bold]export"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.description}"), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal)
    task = progress.add_task("starting Blender", total=None)
    try:
        with progress:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                event = decode_event(line)
                if event is None:
                    tail.append(line)
                    if verbose:
                        progress.console.print(line, markup=False, highlight=False)
                    continue
                _show_event(event, progress, task, console, errors)
        code = process.wait()
    except KeyboardInterrupt:
        # Blender stops after the frame in progress; a frame that will not end is cut off.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=CANCEL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
        console.print("[yellow]cancelled[/]: run the same command again to resume")
        return ExitCode.CANCELLED
    if code != 0 and not errors:
        console.print(f"[red]error:[/] Blender exited with code {code}; its last output:")
        console.print("\n".join(tail), markup=False, highlight=False)
        return code if code in {int(c) for c in ExitCode} else ExitCode.FAILED
    return code


def _show_event(event: dict, progress: Progress, task: int, console: Console, errors: list[str]) -> None:
    kind = event["event"]
    if kind == "start":
        progress.update(task, total=event["total"], description=f"{event['blender']} {event['engine']}")
        console.print(f"exporting {event['total']} frame(s) to {event['out']} with Blender "
                      f"{event['blender']} ({event['engine']})")
    elif kind == "frame":
        progress.update(task, completed=event["done"], description=f"frame {event['frame']}")
        if not console.is_terminal:
            console.print(f"frame {event['frame']} {event['status']} ({event['done']}/{event['total']})")
    elif kind == "warning":
        console.print(f"[yellow]warning:[/] {event['message']}")
    elif kind == "error":
        errors.append(event["message"])
        console.print(f"[red]error:[/] {event['message']}")
    elif kind == "done":
        console.print(f"done: {len(event['written'])} frame(s) written, {len(event['skipped'])} already "
                      f"finished, in {event['out']}")
