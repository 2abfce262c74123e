"""Run a ``headless_main`` job in Blender and show its progress (Blender-free); the console and
the error and warning lines every command prints."""

from __future__ import annotations

import argparse
import collections
import functools
import os
import signal
import subprocess
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.headless_protocol import decode_event
from stylepass.training.loop.stop_signals import handled_signals, raise_keyboard_interrupt

from .arguments import Handler
from .blender_runtime import BlenderNotFoundError, addon_dir, blender_command

TAIL_LINES = 40
CANCEL_GRACE_SECONDS = 60


def make_console() -> Console:
    """Console for messages: stderr, and no hard line wraps (farm logs are grepped)."""
    return Console(stderr=True, soft_wrap=True)


def print_error(console: Console, message: str) -> None:
    """``error: message``, the message shown as written (no rich markup in it)."""
    console.print(f"[red]error:[/] {escape(message)}")


def print_warning(console: Console, message: str) -> None:
    """``warning: message``, the message shown as written."""
    console.print(f"[yellow]warning:[/] {escape(message)}")


def bad_input_exits(*errors: type[Exception]) -> Callable[[Handler], Handler]:
    """Decorate a command's handler: an exception of one of ``errors`` is printed as ``error:
    message`` and the handler returns BAD_INPUT instead."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            try:
                return handler(args)
            except errors as exc:
                print_error(make_console(), str(exc))
                return ExitCode.BAD_INPUT

        return run

    return decorate


def given_options(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """``--name value`` for each option of ``names`` given on the command line, to pass on to a job."""
    return [part for name in names if getattr(args, name) is not None
            for part in (f"--{name.replace('_', '-')}", str(getattr(args, name)))]


def run_blender_job(job: str, job_args: list[str], blender: str | None, verbose: bool, console: Console) -> int:
    """Run ``job`` with ``job_args`` in the chosen Blender; returns the job's exit code."""
    try:
        command = blender_command(blender, addon_dir() / "headless_main.py", [job, *job_args])
    except BlenderNotFoundError as exc:
        print_error(console, str(exc))
        return ExitCode.NO_BLENDER
    return _follow(command.argv, {**os.environ, **command.env}, job, verbose, console)


def _follow(argv: list[str], env: dict[str, str], job: str, verbose: bool, console: Console) -> int:
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    errors: list[str] = []
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1, errors="replace")
    progress = Progress(TextColumn(f"[bold]{job}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.description}"), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal)
    task = progress.add_task("starting Blender", total=None)
    try:
        # SIGTERM (a farm stopping the task) cancels like Ctrl-C: Blender is stopped, never left behind.
        with handled_signals(raise_keyboard_interrupt, (signal.SIGTERM,)), progress:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                event = decode_event(line)
                if event is None:
                    tail.append(line)
                    if verbose:
                        progress.console.print(line, markup=False, highlight=False)
                    continue
                _show(event, progress, task, console, errors)
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
        print_error(console, f"Blender exited with code {code}; its last output:")
        console.print("\n".join(tail), markup=False, highlight=False)
        return code if code in {int(c) for c in ExitCode} else ExitCode.FAILED
    return code


def _show(event: dict, progress: Progress, task: TaskID, console: Console, errors: list[str]) -> None:
    kind = event["event"]
    if kind == "start":
        progress.update(task, total=event["total"], description="")
        console.print(event["message"], markup=False, highlight=False)
    elif kind == "progress":
        progress.update(task, completed=event["done"], description=event["label"])
        if not console.is_terminal:
            console.print(f"{event['label']} {event['status']} ({event['done']}/{event['total']})",
                          markup=False, highlight=False)
    elif kind == "warning":
        print_warning(console, event["message"])
    elif kind == "error":
        errors.append(event["message"])
        print_error(console, event["message"])
    elif kind == "done":
        console.print(f"done: {event['message']}", markup=False, highlight=False)
