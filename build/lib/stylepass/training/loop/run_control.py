"""What ``stylepass train`` and ``stylepass train-style`` share around their steps: the resume
checks, the non-finite-loss stop and the progress display (the stop on Ctrl-C/SIGTERM is
:class:`.stop_signals.StopRequest`, standard library only so that the CLI can load it without torch).

A loop built on it reads (see :func:`.trainer.train`; ``train-style`` has the stop and the progress
in its CLI, around :func:`.train_style.train_style`)::

    latest = checkpoint_to_resume(run_dir, resume, refusals, Error)  # refuse a mismatched request
    start = resume_step(latest, modules, optimizers)                 # exact: weights, Adam, RNG
    with StopRequest() as stop, StepProgress(label, total, console) as progress:
        for step in range(start + 1, total + 1):
            losses = ...
            check_finite(losses, step, run_dir, advice)              # before any optimiser step
            ...                                                      # optimiser steps, logging
            progress.update(step, description, logged=...)
            if stop.requested:                                       # checkpoint, then return
                break
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from .checkpoint import latest_checkpoint, load_checkpoint


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the message names the loss, the step and the last good
    checkpoint (exit code 5)."""


def check_finite(
    losses: Mapping[str, torch.Tensor],
    step: int,
    run_dir: Path,
    advice: str,
    *,
    subject: str | None = None,
    all_ranks: Callable[[bool], bool] = bool,
) -> None:
    """Raise NonFiniteLossError unless every loss is finite (one device sync for all of them).

    losses: scalar tensors by name. advice: what to try, ending the message. subject: what the
    message calls the losses (default ``loss <names of the bad ones>``). all_ranks: under DDP,
    True only when the flag is True on every rank, so all ranks stop at the same step.
    Checkpoints are only ever written from finite states, so the newest one is the last good one.
    """
    finite = bool(torch.isfinite(torch.stack([v.detach().float() for v in losses.values()])).all())
    if all_ranks(finite):
        return
    if subject is None:
        bad = [name for name, value in losses.items() if not bool(torch.isfinite(value).item())]
        subject = f"loss {', '.join(bad or ['(another rank)'])}"
    last = latest_checkpoint(run_dir)
    where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
    raise NonFiniteLossError(f"{subject} became non-finite at step {step}; training stopped and {where} ({advice})")


@dataclasses.dataclass(frozen=True)
class ResumeRefusals:
    """A loop's words for a run folder that does not fit the request; ``{run}`` is the folder."""

    nothing_to_resume: str  # --resume, but no checkpoint
    run_exists: str  # a new run, but checkpoints are there


def checkpoint_to_resume(
    run_dir: Path, resume: bool, refusals: ResumeRefusals, error: type[Exception]
) -> Path | None:
    """The checkpoint a run starts from: the newest one when resuming, None for a new run.

    Raises `error` with the loop's message when resuming finds no checkpoint or a new run finds
    one (a new run never overwrites another). Comparing the run's settings is the loop's part.
    """
    latest = latest_checkpoint(run_dir)
    if resume and latest is None:
        raise error(refusals.nothing_to_resume.format(run=run_dir))
    if not resume and latest is not None:
        raise error(refusals.run_exists.format(run=run_dir))
    return latest


def resume_step(
    checkpoint: Path | None, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer]
) -> int:
    """Load `checkpoint` (weights, optimiser state, RNG states) and return its step; 0 without one.

    Step k's data is a pure function of (seed, k), so training on from here gives the weights of
    a run that was never stopped, bit for bit.
    """
    if checkpoint is None:
        return 0
    return int(load_checkpoint(checkpoint, modules, optimizers)["step"])


class StepProgress:
    """Training progress on a console: in a terminal a rich bar (label, bar, done/total, the latest
    losses, elapsed and remaining time); elsewhere (a log file, a pipe) one plain line
    ``step N/TOTAL <losses> (S s)`` each time the losses are logged. Silent unless `enabled`.

    Use it as a context manager around the loop and call :meth:`update` after each step.
    """

    def __init__(self, label: str, total: int, console: Console, *, completed: int = 0, description: str = "",
                 enabled: bool = True) -> None:
        self.console, self.total = console, total
        self._lines = enabled and not console.is_terminal
        self._bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.description}"), TimeElapsedColumn(), TimeRemainingColumn(),
                             console=console, disable=not enabled or self._lines)
        self._task = self._bar.add_task(description, total=total, completed=completed)
        self._started = time.perf_counter()

    def __enter__(self) -> StepProgress:
        self._started = time.perf_counter()
        self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.stop()

    def update(self, step: int, description: str | None = None, *, logged: bool = False,
               elapsed: float | None = None) -> None:
        """Show that `step` is done, with `description` (the latest losses) if given. logged: they
        were just computed; outside a terminal that prints the line, with `elapsed` seconds
        (default: since the context was entered)."""
        self._bar.update(self._task, completed=step, description=description)  # None: the description stays
        if logged and self._lines:
            seconds = time.perf_counter() - self._started if elapsed is None else elapsed
            self.console.print(f"step {step}/{self.total} {description or ''} ({seconds:.0f} s)",
                               markup=False, highlight=False)
