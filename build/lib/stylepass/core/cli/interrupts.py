"""How the commands that run a model end: SIGTERM handled like Ctrl-C, so a render farm's kill
cancels them cleanly, and their errors turned into exit codes with one message each."""

from __future__ import annotations

import signal
from collections.abc import Callable

from rich.console import Console

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.training.loop.stop_signals import handled_signals, raise_keyboard_interrupt

from .blender_job import print_error


def run_model_command(console: Console, body: Callable[[], int], *, cannot_write: str, on_cancel: str,
                      bad_input: tuple[type[Exception], ...] = ()) -> int:
    """Run a command that stylises (``body`` returns its exit code), SIGTERM cancelling like Ctrl-C.

    Errors become exit codes, each printed once: `bad_input` exceptions and bad-input
    ``StyliseError`` kinds give BAD_INPUT, other ``StyliseError`` kinds FAILED, OSError
    OUTPUT_UNWRITABLE (``"<cannot_write>: <error>"``), Ctrl-C or SIGTERM CANCELLED (``"cancelled:
    <on_cancel>"``).
    """
    from stylepass.core.inference.stylise import StyliseError  # numpy and OpenEXR load here, not when the CLI starts

    try:
        with handled_signals(raise_keyboard_interrupt, (signal.SIGTERM,)):  # the previous handler comes back
            return body()
    except bad_input as error:
        print_error(console, str(error))
        return ExitCode.BAD_INPUT
    except StyliseError as error:
        print_error(console, str(error))
        return ExitCode.BAD_INPUT if error.is_bad_input else ExitCode.FAILED
    except OSError as error:
        print_error(console, f"{cannot_write}: {error}")
        return ExitCode.OUTPUT_UNWRITABLE
    except KeyboardInterrupt:
        console.print(f"[yellow]cancelled[/]: {on_cancel}")
        return ExitCode.CANCELLED
