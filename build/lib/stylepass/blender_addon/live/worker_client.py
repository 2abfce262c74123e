"""The add-on's side of the stylise worker (Blender-free: standard library only).

Starts ``python -m stylepass.core.inference.worker`` in the core's Python, waits for its ready
line, sends requests and collects replies without blocking Blender: a reader thread
(:mod:`.child_output`) queues the worker's stdout lines; ``poll`` hands them out, ``pending``
follows one request as a generator (a modal operator advances it from a timer), ``call`` blocks. A
worker that dies is reported with the last lines it wrote to stderr, and Blender goes on.
"""

from __future__ import annotations

import os
import queue
import subprocess
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from ..contract.headless_protocol import JobError
from ..contract.worker_protocol import WORKER_MODULE, decode, encode
from .child_output import ChildOutput


class WorkerError(JobError):
    """The worker could not start, died, or answered a request with an error.

    ``kind`` is one of ``worker_protocol.ERROR_KINDS``, or ``"worker_failed"`` when the
    process itself failed.
    """

    def __init__(self, message: str, kind: str = "worker_failed") -> None:
        super().__init__(message)
        self.kind = kind


class WorkerClient:
    """One running worker process."""

    def __init__(self, python: Path, env: dict[str, str] | None = None) -> None:
        self.python = Path(python)
        if not self.python.is_file():
            raise WorkerError(f"the worker's Python {self.python} does not exist: run `python build.py setup`, "
                              "or choose the core's Python in the Stylepass add-on preferences")
        self._process = subprocess.Popen(
            [str(self.python), "-m", WORKER_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1, env={**os.environ, **(env or {})})
        self._output = ChildOutput(self._process, decode)  # its messages and last stderr lines
        self._next_id = 0
        self.ready: dict[str, Any] | None = None

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def _died(self) -> WorkerError:
        self._process.wait(timeout=5)
        self._output.join(timeout=5)  # the readers catch the last lines
        tail = "\n".join(self._output.stderr_tail) or "(it printed nothing)"
        return WorkerError(f"the stylise worker ({self.python}) stopped with exit code "
                           f"{self._process.returncode}:\n{tail}")

    def poll(self) -> list[dict[str, Any]]:
        """Messages received since the last call (never blocks); WorkerError if the worker died.

        The ready line is kept in ``self.ready`` rather than returned.
        """
        messages = []
        while True:
            try:
                message = self._output.messages.get_nowait()
            except queue.Empty:
                break
            if message.get("event") == "ready":
                self.ready = message
            else:
                messages.append(message)
        if not messages and not self.alive and self._output.messages.empty():
            raise self._died()
        return messages

    def starting(self) -> Iterator[None]:
        """Yields while the worker starts; ends once it is ready."""
        while self.ready is None:
            self.poll()
            if self.ready is None:
                yield None

    def send(self, command: str, **fields: Any) -> int:
        """Send a request; returns its id."""
        if not self.alive:
            raise self._died()
        self._next_id += 1
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(encode({"id": self._next_id, "cmd": command, **fields}) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self._died() from exc
        return self._next_id

    def pending(self, request_id: int) -> Generator[float, None, dict[str, Any]]:
        """Yields the progress (0..1) of ``request_id`` while it runs; returns its ``ok`` reply.

        Raises:
            WorkerError: the worker answered with an error (``kind`` says which) or died.
        """
        fraction = 0.0
        while True:
            for message in self.poll():
                if message.get("id") != request_id:
                    continue
                if message.get("event") == "progress":
                    fraction = int(message["done"]) / max(int(message["total"]), 1)
                elif message.get("ok"):
                    return message
                else:
                    raise WorkerError(message.get("error", "the worker failed"), message.get("kind", "failed"))
            yield fraction

    def wait_ready(self, poll_seconds: float = 0.02) -> dict[str, Any]:
        """Block until the worker is ready; returns its ready line."""
        for _ in self.starting():
            time.sleep(poll_seconds)
        assert self.ready is not None
        return self.ready

    @staticmethod
    def finish(pending: Generator[float, None, dict[str, Any]], poll_seconds: float = 0.02) -> dict[str, Any]:
        """Block until a ``pending`` request ends; returns its reply."""
        while True:
            try:
                next(pending)
            except StopIteration as done:
                return done.value
            time.sleep(poll_seconds)

    def call(self, command: str, **fields: Any) -> dict[str, Any]:
        """Send a request and block until its reply (waiting for the worker to start if needed)."""
        self.wait_ready()
        return self.finish(self.pending(self.send(command, **fields)))

    def close(self) -> None:
        """Ask the worker to stop; terminate it if it does not within a few seconds."""
        if self.alive:
            try:
                self.send("shutdown")
                self._process.wait(timeout=5)
            except (WorkerError, subprocess.TimeoutExpired):
                self._process.terminate()
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
