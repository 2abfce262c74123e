"""Install training engine (Blender-free part): a real install from pip's configured sources, and
failures and cancels that leave nothing half-installed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stylepass.blender_addon.contract.headless_protocol import JobCancelled, JobError
from stylepass.blender_addon.live.training_engine import INDEX_ENV, MARKER, TORCH_ENV, EngineInstall, engine_python

REPO = Path(__file__).resolve().parents[2]


def run(install: EngineInstall, cancel_when: str | None = None) -> list[str]:
    """Drive an install to its end; returns the messages it showed."""
    seen: list[str] = []
    for progress in install.steps():
        seen.append(progress.message)
        if cancel_when and cancel_when in progress.message:
            install.cancel()
    return seen


def test_an_install_makes_a_training_engine_with_torch_and_stylepass(tmp_path, monkeypatch):
    monkeypatch.setenv(INDEX_ENV, "")  # pip's own sources: this machine's torch==2.13.0 is the CPU build
    folder = tmp_path / "training_engine"
    seen = run(EngineInstall(folder, "cpu", REPO / "blender_addon"))
    assert seen[0] == "making the environment" and seen[-1] == f"training engine installed in {folder}"
    assert any(message.startswith("downloading torch (CPU, about") for message in seen)
    python = engine_python(folder)
    assert python is not None and (folder / MARKER).is_file()
    assert not folder.with_name("training_engine.partial").exists()
    check = subprocess.run([str(python), "-m", "stylepass.core.cli", "train-style", "--help"], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0 and "--resume" in check.stdout


def test_a_failed_install_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(INDEX_ENV, "")
    monkeypatch.setenv(TORCH_ENV, "torch==0.0.0.1")  # no such build
    folder = tmp_path / "training_engine"
    (tmp_path / "training_engine.partial" / "bin").mkdir(parents=True)  # a crashed install's leftovers
    with pytest.raises(JobError, match="failed while downloading torch .*nothing was installed"):
        run(EngineInstall(folder, "cpu", REPO / "blender_addon"))
    assert sorted(tmp_path.iterdir()) == []
    assert engine_python(folder) is None


def test_a_cancelled_install_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(INDEX_ENV, "")
    folder = tmp_path / "training_engine"
    with pytest.raises(JobCancelled):
        run(EngineInstall(folder, "cpu", REPO / "blender_addon"), cancel_when="downloading torch")
    assert sorted(tmp_path.iterdir()) == []


def test_an_unknown_build_is_refused(tmp_path):
    with pytest.raises(JobError, match="unknown torch build 'rocm'; builds: cpu, cuda"):
        EngineInstall(tmp_path / "engine", "rocm", REPO / "blender_addon")
