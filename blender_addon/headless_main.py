"""Entry point of the headless jobs that ``stylepass`` runs inside Blender.

    PYTHON_WITH_BPY headless_main.py -- JOB [job options]
    blender -b --factory-startup --python headless_main.py -- JOB [job options]

``JOB`` is ``export``, ``dataset``, ``compose`` or ``denoise`` (see ``headless/<job>_job.py``). This file
registers the add-on from the folder it lives in, runs the job, reports progress on
stdout as ``headless_protocol`` events and exits with an ``exit_codes.ExitCode``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "stylepass_addon"
EXTENSION_MODULE = "bl_ext.user_default.stylepass"
JOBS = ("export", "dataset", "compose", "denoise")


@contextlib.contextmanager
def addon_registered() -> Iterator[None]:
    """Import the add-on package this file belongs to and register it while in the block.

    It must be unregistered before the process exits: bpy as a module hangs at exit
    when classes of an unmanaged add-on are still registered.
    """
    import bpy  # noqa: F401 - makes Blender's own modules (addon_utils) importable
    import addon_utils  # isort: skip - importable only once bpy is imported

    # An enabled copy of the installed extension would clash with ours: turn it off here
    # (in this process only; preferences are not saved).
    if addon_utils.check(EXTENSION_MODULE)[1]:
        addon_utils.disable(EXTENSION_MODULE)
    folder = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location(
        PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    package.register()
    try:
        yield
    finally:
        package.unregister()


def script_arguments(argv: list[str]) -> list[str]:
    """Arguments after ``--`` (Blender's own come before it)."""
    return argv[argv.index("--") + 1:] if "--" in argv else []


class CancelRequest:
    """Set by SIGINT/SIGTERM; a job stops after the frame in progress.

    Raising from the signal handler does not work: the handler runs inside whatever
    Python Blender is executing (Cycles' render callback, say), which swallows exceptions.
    """

    requested = False

    @classmethod
    def on_signal(cls, _signum: int, _frame: object) -> None:
        cls.requested = True


def run(argv: list[str]) -> int:
    """Run the job named by ``argv[0]`` with the add-on registered; returns the exit code."""
    with addon_registered():
        from stylepass_addon.contract.exit_codes import ExitCode
        from stylepass_addon.contract.headless_protocol import (
            JobCancelled,
            encode_event,
            error_exit_code,
            error_message,
        )

        def emit(kind: str, **fields: object) -> None:
            print(encode_event(kind, **fields), flush=True)

        if not argv or argv[0] not in JOBS:
            emit("error", code=int(ExitCode.BAD_INPUT), message=f"expected a job: {', '.join(JOBS)}")
            return ExitCode.BAD_INPUT
        job = importlib.import_module(f"{PACKAGE}.headless.{argv[0]}_job")
        try:
            job.run(argv[1:], emit, lambda: CancelRequest.requested)
            return ExitCode.OK
        except JobCancelled:
            emit("error", code=int(ExitCode.CANCELLED), message="cancelled; re-run the same command to resume")
            return ExitCode.CANCELLED
        except SystemExit as exc:  # argparse: its message is already on stderr
            emit("error", code=int(ExitCode.BAD_INPUT), message="invalid arguments")
            return ExitCode.BAD_INPUT if exc.code else ExitCode.OK
        except Exception as exc:  # every failure becomes an event and an exit code
            code = error_exit_code(exc)
            if code == ExitCode.FAILED:
                traceback.print_exc()
            emit("error", code=int(code), message=error_message(exc))
            return code


def exit_now(code: int) -> None:
    """End the process with ``code`` once our output is out, skipping Blender's own teardown: with a
    scripted driver in the file, Blender 4.5 waits forever at exit (in ``GlobalState``'s destructor,
    on its ``delayed_close_thread``) after the job is done. Every file the job wrote is closed by now
    (written atomically); nothing is left for the teardown to save."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, CancelRequest.on_signal)
    signal.signal(signal.SIGINT, CancelRequest.on_signal)
    exit_now(run(script_arguments(sys.argv)))
