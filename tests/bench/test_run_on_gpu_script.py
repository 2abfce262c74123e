"""``benchmarks/run_on_gpu.sh``, the way the benchmark runs on the lent GPU machine (no installed
stylepass), tried here on the CPU: it must run from the bare tree and name what Python lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run_on_gpu.sh"


def run_script(tmp_path: Path, python: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": python, "DEVICE": "cpu",
           "STYLEPASS_GIT_COMMIT": "0123abc", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)


def test_the_script_runs_the_quick_benchmark_from_the_source_tree(tmp_path: Path) -> None:
    result = run_script(tmp_path, sys.executable, "--quick")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out" / "bench_cpu.json").read_text())
    assert report["environment"]["device"] == "cpu" and report["environment"]["git_commit"] == "0123abc"
    assert report["settings"]["quick"] and report["worker"]
    assert (tmp_path / "out" / "device.txt").read_text().startswith(f"torch {torch.__version__}")


def test_the_script_names_the_modules_python_lacks(tmp_path: Path) -> None:
    bare_python = tmp_path / "bare-python"  # the same Python without site-packages: no torch, numpy, ...
    bare_python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    bare_python.chmod(0o755)
    result = run_script(tmp_path, str(bare_python), "--quick")
    assert result.returncode == 2
    assert "lacks: torch numpy OpenEXR" in result.stderr and "WHEELS" in result.stderr
    assert not (tmp_path / "out" / "bench_cpu.json").exists()
