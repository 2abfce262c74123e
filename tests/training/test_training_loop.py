"""The training loop end to end on the tiny synthetic dataset (CPU, a few dozen steps)."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stylepass.training.loop.checkpoint import latest_checkpoint
from stylepass.training.loop.config import TrainConfig, config_from_dict
from stylepass.training.loop.run_control import NonFiniteLossError
from stylepass.training.loop.run_log import StepTimer, read_metrics
from stylepass.training.loop.trainer import train

MODELS = {
    "unet": {"family": "unet", "base_width": 8, "depth": 3, "gbuffer_passes": ["albedo"]},
    "rad": {"family": "rad", "widths": [8, 16], "blocks": [1, 1], "gbuffer_widths": [8, 8], "num_materials": 4},
}
CPU = torch.device("cpu")


def tiny_config(family: str, steps: int, metrics: dict | None = None, **train_overrides) -> TrainConfig:
    train_section = {
        "steps": steps, "batch_size": 4, "crop_size": 32, "num_workers": 0, "log_every": 5,
        "val_every": 20, "checkpoint_every": 10, "lr_g": 2e-3, "lr_d": 2e-4,
    } | train_overrides
    return config_from_dict(
        {
            "model": MODELS[family],
            "train": train_section,
            "loss": {"l1": 100.0, "adversarial": 1.0},
            "discriminator": {"base_width": 8, "n_layers": 2},
            "metrics": metrics or {},
        }
    )


class CountingReader:
    """Wraps a frame reader; runs `action(call_number, frame)` on every call (main process)."""

    def __init__(self, reader, action) -> None:
        self.reader, self.action, self.calls = reader, action, 0

    def __call__(self, path: Path):
        self.calls += 1
        frame = self.reader(path)
        self.action(self.calls, frame)
        return frame


@pytest.mark.parametrize("family", MODELS)
def test_training_lowers_loss_and_raises_validation_psnr(family: str, paired_dataset: Path, gbuffer_reader,
                                                         tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train(tiny_config(family, 40), paired_dataset, run, CPU, frame_reader=gbuffer_reader)
    assert (result.step, result.interrupted) == (40, False)
    assert result.checkpoint == latest_checkpoint(run) and result.checkpoint.name == "step-00000040"
    records = read_metrics(run)
    l1 = [r["loss/l1"] for r in records if "loss/l1" in r]
    val_psnr = [(r["step"], r["val/psnr"]) for r in records if "val/psnr" in r]
    assert [step for step, _ in val_psnr] == [0, 20, 40]
    assert sum(l1[-2:]) < 0.8 * sum(l1[:2]), l1
    assert val_psnr[-1][1] > val_psnr[0][1] + 2.0, val_psnr
    assert result.validation["val/psnr"] == val_psnr[-1][1] and 0 < result.validation["val/ssim"] <= 1
    throughput = [r["perf/steps_per_s"] for r in records if "loss/l1" in r]
    assert len(throughput) == len(l1) and all(0 < rate < 1e4 for rate in throughput)
    assert not any("perf/peak_memory_mib" in r for r in records)  # CUDA only
    assert "[model]" in (run / "config.toml").read_text()
    assert any((run / "tensorboard").iterdir())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.json", "step-00000030", "step-00000040"]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(paired_dataset: Path, gbuffer_reader,
                                                               tmp_path: Path) -> None:
    config = tiny_config("rad", 12, checkpoint_every=4, val_every=0, lr_decay_start=4)
    train(config, paired_dataset, tmp_path / "straight", CPU, frame_reader=gbuffer_reader)
    interrupt_call = 1 + 2 + 4 * 5 + 1  # reads: pass check, 2 val frames, 4 a step; first read of step 6

    def interrupt(call: int, frame) -> None:
        if call == interrupt_call:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = train(config, paired_dataset, tmp_path / "split", CPU,
                    frame_reader=CountingReader(gbuffer_reader, interrupt))
    assert (stopped.step, stopped.interrupted) == (6, True)
    result = train(config, paired_dataset, tmp_path / "split", CPU, resume=True, frame_reader=gbuffer_reader)
    assert result.step == 12
    straight, split = latest_checkpoint(tmp_path / "straight"), latest_checkpoint(tmp_path / "split")
    for name in ("generator", "discriminator", "optim_generator", "optim_discriminator"):
        a, b = load_file(straight / f"{name}.safetensors"), load_file(split / f"{name}.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}:{key}"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(paired_dataset: Path, gbuffer_reader,
                                                           tmp_path: Path) -> None:
    # Reads: 1 pass check, 2 validation frames, then 4 per step. Poison every read of step 4 on.
    first_bad_call = 1 + 2 + 4 * 3 + 1

    def poison(call: int, frame) -> None:
        if call >= first_bad_call:
            frame.albedo = frame.albedo * float("nan")

    config = tiny_config("rad", 10, checkpoint_every=3, val_every=0)
    with pytest.raises(NonFiniteLossError,
                       match=r"non-finite at step 4; training stopped and the last good checkpoint is .*step-00000003"):
        train(config, paired_dataset, tmp_path / "run", CPU, frame_reader=CountingReader(gbuffer_reader, poison))
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint.name == "step-00000003"
    weights = load_file(checkpoint / "generator.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_after_the_step_with_a_checkpoint_that_resumes(
    signum: int, paired_dataset: Path, gbuffer_reader, tmp_path: Path
) -> None:
    interrupt_call = 1 + 2 + 4 * 5 + 1  # first read of step 6

    def interrupt(call: int, frame) -> None:
        if call == interrupt_call:
            os.kill(os.getpid(), signum)

    config = tiny_config("unet", 1000, val_every=0)
    run = tmp_path / "run"
    stale = run / "checkpoints" / ".tmp-step-00000003-999999"  # as if a process died while saving
    stale.mkdir(parents=True)
    handler_before = signal.getsignal(signum)
    result = train(config, paired_dataset, run, CPU, frame_reader=CountingReader(gbuffer_reader, interrupt))
    assert (result.step, result.interrupted) == (6, True)
    assert latest_checkpoint(run).name == "step-00000006" and not stale.exists()
    assert signal.getsignal(signum) is handler_before  # the training handler is gone again
    shorter = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=9))
    resumed = train(shorter, paired_dataset, run, CPU, resume=True, frame_reader=gbuffer_reader)
    assert (resumed.step, resumed.interrupted) == (9, False)


def test_validation_adds_lpips_and_kid_given_local_weights(paired_dataset: Path, gbuffer_reader, lpips_weights: Path,
                                                           tmp_path: Path) -> None:
    metrics = {"lpips_weights": str(lpips_weights), "kid_weights": str(lpips_weights)}
    result = train(tiny_config("unet", 2, metrics=metrics), paired_dataset, tmp_path / "run", CPU,
                   frame_reader=gbuffer_reader)
    assert set(result.validation) == {"val/psnr", "val/ssim", "val/lpips", "val/kid"}
    assert result.validation["val/lpips"] > 0


def test_every_optional_loss_term_trains_and_is_logged(paired_dataset: Path, gbuffer_reader, lpips_weights: Path,
                                                       tmp_path: Path) -> None:
    config = tiny_config("rad", 3, log_every=1, val_every=0)
    loss = dataclasses.replace(
        config.loss, perceptual=1.0, perceptual_weights=str(lpips_weights), total_variation=0.1,
        surface=1.0, texture=1.0, structure=0.5, content=0.1, adversarial_kind="hinge",
    )
    train(dataclasses.replace(config, loss=loss), paired_dataset, tmp_path / "run", CPU, frame_reader=gbuffer_reader)
    logged = [r for r in read_metrics(tmp_path / "run") if "loss/generator" in r]
    assert len(logged) == 3
    names = {"l1", "content", "adversarial", "perceptual", "total_variation", "surface", "texture", "structure",
             "discriminator"}
    assert {f"loss/{n}" for n in names} <= set(logged[-1])
    assert all(math.isfinite(v) for r in logged for v in r.values())


def test_learning_rates_decay_linearly_after_lr_decay_start(paired_dataset: Path, gbuffer_reader,
                                                            tmp_path: Path) -> None:
    config = tiny_config("unet", 4, log_every=1, val_every=0, lr_decay_start=2)
    assert [config.train.lr_factor(step) for step in range(1, 5)] == [1.0, 1.0, 2 / 3, 1 / 3]
    train(config, paired_dataset, tmp_path / "run", CPU, frame_reader=gbuffer_reader)
    logged = [r["lr/generator"] for r in read_metrics(tmp_path / "run") if "lr/generator" in r]
    assert logged == pytest.approx([2e-3, 2e-3, 2e-3 * 2 / 3, 2e-3 / 3])


def test_loader_worker_processes_change_nothing(paired_dataset: Path, tmp_path: Path) -> None:
    """Crops are keyed by step, so worker processes give the same run as in-process loading."""
    for workers in (0, 2):
        config = tiny_config("unet", 3, num_workers=workers, val_every=0)
        train(config, paired_dataset, tmp_path / f"w{workers}", CPU)  # the default reader
    a = load_file(latest_checkpoint(tmp_path / "w0") / "generator.safetensors")
    b = load_file(latest_checkpoint(tmp_path / "w2") / "generator.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_bf16_autocast_training_path(paired_dataset: Path, gbuffer_reader, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The dtype mixing of CUDA's bf16 autocast, exercised with the CPU's autocast."""
    import stylepass.training.loop.step as step_module
    import stylepass.training.loop.trainer as trainer_module

    def cpu_bf16(device: torch.device):
        return torch.autocast("cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(step_module, "autocast_for", cpu_bf16)
    monkeypatch.setattr(trainer_module, "autocast_for", cpu_bf16)
    for family in MODELS:
        result = train(tiny_config(family, 3, val_every=0), paired_dataset, tmp_path / family, CPU,
                       frame_reader=gbuffer_reader)
        assert result.step == 3 and math.isfinite(result.validation["val/psnr"])
        weights = load_file(result.checkpoint / "generator.safetensors")
        assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())


def test_the_step_timer_leaves_paused_time_out() -> None:
    timer = StepTimer(CPU)
    timer.step()
    timer.step()
    with timer.paused():
        time.sleep(0.3)  # validation or a checkpoint: not training time
    assert timer.read()["perf/steps_per_s"] > 20
    timer.step()
    timer.step()
    time.sleep(0.3)  # counted: a slow step
    assert timer.read()["perf/steps_per_s"] < 2 / 0.3 + 0.1
    assert timer.read() == {}  # no step since the last read
