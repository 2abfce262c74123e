"""Ctrl-C and SIGTERM for long commands: one way to install signal handlers and put the old ones back.

Standard library only, so the CLI can use it without loading torch. Two behaviours:

- :class:`StopRequest` (the training loops): the first SIGINT/SIGTERM only sets ``requested``, so
  the loop stops after its current step and writes a checkpoint; a second one raises
  KeyboardInterrupt at once.
- :func:`raise_keyboard_interrupt` with :func:`handled_signals` (``stylise``, ``evaluate``):
  SIGTERM cancels like Ctrl-C, so a render farm's kill ends a command cleanly.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; kill / cluster pre-emption

SignalHandler = Callable[[int, FrameType | None], object]


@contextlib.contextmanager
def handled_signals(handler: SignalHandler, signums: Iterable[int] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, `handler` receives `signums`; the previous handlers come back on the way out.

    Python only delivers signals to the main thread, so elsewhere (a test runner's worker
    thread, say) this installs nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """A signal handler that acts as Ctrl-C does."""
    raise KeyboardInterrupt


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of data-loader workers: they leave Ctrl-C and SIGTERM to the training
    process, which stops them after its step."""
    del worker_id
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StopRequest:
    """SIGINT/SIGTERM as a request to stop after the current step, with a checkpoint.

    Use it as a context manager around the loop and poll ``requested`` after each step. The first
    signal sets ``requested`` and announces the stop; a second one raises KeyboardInterrupt (abort
    at once; the last checkpoint written stays the newest).
    """

    def __init__(self, announce: Callable[[str], object] = _print_to_stderr) -> None:
        self.requested = False
        self._announce = announce
        self._handlers: contextlib.AbstractContextManager[None] | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._announce(f"{signal.Signals(signum).name}: stopping after this step and writing a checkpoint "
                       "(Ctrl-C again to abort at once)")

    def __enter__(self) -> StopRequest:
        self._handlers = handled_signals(self)
        self._handlers.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        assert self._handlers is not None
        self._handlers.__exit__(kind, error, traceback)
        self._handlers = None
