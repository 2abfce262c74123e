"""The skeleton both training loops share: stop signals, the non-finite check, the resume checks,
the progress display."""

from __future__ import annotations

import io
import os
import signal
import threading
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from stylepass.training.loop.checkpoint import save_checkpoint
from stylepass.training.loop.run_control import (
    NonFiniteLossError,
    ResumeRefusals,
    StepProgress,
    check_finite,
    checkpoint_to_resume,
    resume_step,
)
from stylepass.training.loop.stop_signals import StopRequest, handled_signals, raise_keyboard_interrupt

REFUSALS = ResumeRefusals(nothing_to_resume="nothing in {run}", run_exists="{run} is taken")


def test_the_first_signal_requests_a_stop_and_the_second_aborts() -> None:
    before = signal.getsignal(signal.SIGTERM)
    said: list[str] = []
    with StopRequest(said.append) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and said == [
            "SIGTERM: stopping after this step and writing a checkpoint (Ctrl-C again to abort at once)"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


def test_handlers_are_only_installed_from_the_main_thread() -> None:
    seen = []

    def elsewhere() -> None:
        with handled_signals(raise_keyboard_interrupt, (signal.SIGTERM,)):
            seen.append(signal.getsignal(signal.SIGTERM))

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]


def test_a_non_finite_loss_names_itself_and_the_last_good_checkpoint(tmp_path: Path) -> None:
    finite = {"l1": torch.tensor(0.5), "generator": torch.tensor(1.0)}
    check_finite(finite, 3, tmp_path, "advice")
    with pytest.raises(NonFiniteLossError, match=r"^loss l1 became non-finite at step 3; training stopped and "
                                                 r"no checkpoint was written yet \(advice\)$"):
        check_finite({**finite, "l1": torch.tensor(float("nan"))}, 3, tmp_path, "advice")
    module = nn.Linear(2, 2)
    save_checkpoint(tmp_path, 2, {"m": module}, {})
    with pytest.raises(NonFiniteLossError, match=r"^the loss became .* last good checkpoint is .*step-00000002"):
        check_finite({"loss": torch.tensor(float("inf"))}, 3, tmp_path, "advice", subject="the loss")
    with pytest.raises(NonFiniteLossError, match=r"^loss \(another rank\) became"):
        check_finite(finite, 3, tmp_path, "advice", all_ranks=lambda ok: False)


def test_resume_needs_a_checkpoint_and_a_new_run_refuses_one(tmp_path: Path) -> None:
    assert checkpoint_to_resume(tmp_path, False, REFUSALS, ValueError) is None
    with pytest.raises(ValueError, match=f"^nothing in {tmp_path}$"):
        checkpoint_to_resume(tmp_path, True, REFUSALS, ValueError)
    module, optimizer = nn.Linear(2, 2), torch.optim.Adam([torch.zeros(1)])
    written = save_checkpoint(tmp_path, 7, {"m": module}, {"o": optimizer})
    with pytest.raises(ValueError, match=f"^{tmp_path} is taken$"):
        checkpoint_to_resume(tmp_path, False, REFUSALS, ValueError)
    latest = checkpoint_to_resume(tmp_path, True, REFUSALS, ValueError)
    assert latest == written and resume_step(latest, {"m": module}, {"o": optimizer}) == 7
    assert resume_step(None, {"m": module}, {"o": optimizer}) == 0


def test_progress_outside_a_terminal_prints_a_line_per_logged_step() -> None:
    out = io.StringIO()
    with StepProgress("train", 4, Console(file=out, force_terminal=False), completed=1) as progress:
        progress.update(2, "l1 0.5")
        progress.update(3, "l1 0.25", logged=True, elapsed=12.3)
    assert out.getvalue() == "step 3/4 l1 0.25 (12 s)\n"
    quiet = io.StringIO()
    with StepProgress("train", 4, Console(file=quiet, force_terminal=False), enabled=False) as progress:
        progress.update(1, "l1 0.5", logged=True)
    assert quiet.getvalue() == ""
