"""Read a child process's output without blocking Blender (Blender-free: standard library only).

:class:`ChildOutput` starts two daemon threads on a child started with text-mode stdout and
stderr pipes: one queues the messages its stdout lines carry, one keeps the last lines of its
stderr for the error message when it fails.
"""

from __future__ import annotations

import collections
import queue
import subprocess
import threading
from collections.abc import Callable
from typing import IO, Any

STDERR_LINES = 30  # the stderr lines kept: enough for a traceback's end

Decode = Callable[[str], dict[str, Any] | None]  # a stdout line (no newline) -> its message, or None


class ChildOutput:
    """The messages ``decode`` finds on ``process``'s stdout, queued in ``messages`` as they come,
    and the last ``STDERR_LINES`` lines of its stderr (newlines stripped) in ``stderr_tail``."""

    def __init__(self, process: subprocess.Popen[str], decode: Decode) -> None:
        assert process.stdout is not None and process.stderr is not None, "start the child with stdout/stderr=PIPE"
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._threads = [threading.Thread(target=self._read_stdout, args=(process.stdout, decode), daemon=True),
                         threading.Thread(target=self._read_stderr, args=(process.stderr,), daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self, stdout: IO[str], decode: Decode) -> None:
        for line in stdout:
            message = decode(line.rstrip("\n"))
            if message is not None:
                self.messages.put(message)

    def _read_stderr(self, stderr: IO[str]) -> None:
        for line in stderr:
            self.stderr_tail.append(line.rstrip("\n"))

    def join(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds per stream) for both readers to reach the end of the child's
        output: call it once the child has exited, before reading the last messages and lines."""
        for thread in self._threads:
            thread.join(timeout=timeout)
