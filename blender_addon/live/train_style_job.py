"""Train a custom style from painted keyframes in the core's Python (Blender-free: standard
library only; Blender's process never imports torch).

:class:`TrainStyleJob` runs ``python -m stylepass.core.cli train-style EXPORT --out MODEL
--events`` in a child process and follows its ``@@stylepass`` progress lines
(:mod:`..contract.headless_protocol`) without blocking: reader threads (:mod:`.child_output`) queue
the child's output and :meth:`TrainStyleJob.steps` yields progress between polls, so the same job
runs synchronously (background mode, tests) or from a modal operator's timer. Cancelling sends
SIGINT: the child finishes its step, writes a checkpoint and exits 130; the next job resumes from it.

Folders: the model goes to ``EXPORT/styles/NAME/``, its work folder (checkpoints, the preview
PNG rewritten while it trains) to ``EXPORT/styles/NAME.run/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..contract.exit_codes import ExitCode
from ..contract.headless_protocol import BadInputError, JobCancelled, JobError, decode_event
from ..contract.keyframes import list_keyframes
from .child_output import ChildOutput

STYLES_DIR = "styles"
PREVIEW_NAME = "preview.png"
CHECKPOINT_POINTER = Path("checkpoints") / "latest.json"
SETTINGS_NAME = "settings.json"  # written by stylepass.training.loop.train_style: the paintings a run started on
CLI_MODULE = "stylepass.core.cli"
_running: set[TrainStyleJob] = set()


@dataclass
class TrainingProgress:
    """``done`` of ``total`` training steps and what to show (the loss)."""

    done: int
    total: int
    message: str


@dataclass(frozen=True)
class StyleFolders:
    """Where a style called ``name`` of an export folder goes."""

    model: Path
    work: Path
    preview: Path

    @classmethod
    def of(cls, export_dir: Path, name: str) -> StyleFolders:
        name = name.strip()
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise BadInputError(f"style name {name!r}: give a plain folder name, e.g. my_style")
        model = Path(export_dir) / STYLES_DIR / name
        work = model.with_name(model.name + ".run")
        return cls(model, work, work / PREVIEW_NAME)

    @property
    def has_checkpoint(self) -> bool:
        """True when an earlier run left a checkpoint."""
        return (self.work / CHECKPOINT_POINTER).is_file()

    def trained_on_current_paintings(self, export_dir: Path) -> bool:
        """True when the earlier run was started on the paintings the export folder holds now
        (same frames, same bytes): then it can be continued, else it is trained afresh."""
        try:
            started = json.loads((self.work / SETTINGS_NAME).read_text(encoding="utf-8"))["keyframes"]
        except (OSError, ValueError, KeyError):
            return False
        current = [{"frame": k.frame, "painting": k.painting.name, "sha256": _sha256(k.painting)}
                   for k in list_keyframes(export_dir)]
        return started == current


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train_style_argv(python: Path, export_dir: Path, folders: StyleFolders, device: str, *, resume: bool,
                     restart: bool, steps: int = 0, patch: int = 0, minutes: float = 0.0) -> list[str]:
    """The command line of a training job (0 keeps the CLI's default for steps, patch, minutes)."""
    argv = [str(python), "-m", CLI_MODULE, "train-style", str(export_dir), "--out", str(folders.model),
            "--work", str(folders.work), "--preview", str(folders.preview), "--device", device, "--events"]
    if resume:
        argv.append("--resume")
    if restart:
        argv.append("--restart")
    if steps:
        argv += ["--steps", str(steps)]
    if patch:
        argv += ["--patch", str(patch)]
    if minutes:
        argv += ["--minutes", str(minutes)]
    return argv


class TrainStyleJob:
    """One ``train-style`` child process."""

    def __init__(self, argv: list[str], export_dir: Path, env: dict[str, str] | None = None) -> None:
        if not list_keyframes(export_dir):
            raise BadInputError(f"{export_dir} has no painted keyframes: add one with Add painted keyframe first")
        if not Path(argv[0]).is_file():
            raise JobError(f"the core's Python {argv[0]} does not exist: run `python build.py setup`, or choose "
                           "it in Preferences > Add-ons > Stylepass")
        self.argv = argv
        self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                         env={**os.environ, **(env or {})}, errors="replace")
        self._output = ChildOutput(self._process, decode_event)  # its events and last stderr lines
        self._cancelled = False
        self.result: dict | None = None  # the "done" event: model, preview, message
        self._error: str | None = None
        _running.add(self)

    def cancel(self) -> None:
        """Ask the child to stop after its current step (it writes a checkpoint, exits 130)."""
        if not self._cancelled and self._process.poll() is None:
            self._cancelled = True
            self._process.send_signal(signal.SIGINT)

    def steps(self) -> Iterator[TrainingProgress]:
        """Yields progress while the child runs (never blocks); returns when it succeeded.

        Raises:
            JobCancelled: it was cancelled (a checkpoint is kept).
            BadInputError: it refused the input (the message says why).
            JobError: it failed otherwise (with the last lines it wrote).
        """
        progress = TrainingProgress(0, 1, "starting the core's Python")
        try:
            while True:
                finished = self._process.poll() is not None
                if finished:
                    self._output.join(timeout=5)
                progress = self._drain(progress)
                if finished:
                    break
                yield progress
        finally:
            if self._process.poll() is None:  # the caller gave up on the job: stop the child
                self.cancel()
                self.wait_for_exit()
            _running.discard(self)
        self._raise_for_exit(self._process.returncode)

    def _drain(self, progress: TrainingProgress) -> TrainingProgress:
        while True:
            try:
                event = self._output.messages.get_nowait()
            except queue.Empty:
                return progress
            kind = event.get("event")
            if kind == "start":
                progress = TrainingProgress(0, int(event["total"]), "loading the paintings")
            elif kind == "progress":
                progress = TrainingProgress(int(event["done"]), int(event["total"]), f"step {event['done']}/"
                                            f"{event['total']}, {event['label']}")
            elif kind == "error":
                self._error = str(event["message"])
            elif kind == "done":
                self.result = event
                progress = TrainingProgress(progress.total, progress.total, str(event["message"]))

    def _raise_for_exit(self, code: int) -> None:
        if code == ExitCode.OK and self.result is not None:
            return
        if code == ExitCode.CANCELLED:
            raise JobCancelled
        message = self._error or "\n".join(self._output.stderr_tail) or "(it printed nothing)"
        if code == ExitCode.BAD_INPUT:
            raise BadInputError(message)
        raise JobError(f"training the style failed (exit code {code}):\n{message}")

    def wait_for_exit(self) -> None:
        """Wait for the child to end (up to a minute, then kill it)."""
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def running() -> bool:
    """Whether a training job is running."""
    return bool(_running)


def stop_all() -> None:
    """Cancel every running training job and wait for its checkpoint (on unregister)."""
    for job in list(_running):
        job.cancel()
        job.wait_for_exit()
        _running.discard(job)
