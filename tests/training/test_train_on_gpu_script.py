"""``benchmarks/train_on_gpu.sh``: the short training of each family that the GPU machine runs from
the bare source tree, tried here on the CPU for two steps on the tiny dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.training.conftest import build_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_on_gpu.sh"


def test_each_family_trains_and_the_figures_are_written(tmp_path: Path) -> None:
    dataset = build_dataset(tmp_path / "dataset", height=136, width=144)  # the presets crop 128 px
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "DEVICE": "cpu",
           "OMP_NUM_THREADS": "1", "STYLEPASS_GIT_COMMIT": "0123abc"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(["bash", str(SCRIPT), str(dataset), str(dataset), "2"], env=env,
                            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    report = json.loads((tmp_path / "out" / "training_cpu.json").read_text())
    assert report["steps"] == 2 and report["environment"]["device"] == "cpu"
    for family, config in (("unet", "presets/toon/train.toml"), ("rad", "presets/enhance/train.toml")):
        figures = report["families"][family]
        assert figures["config"] == config and figures["steps_per_s"] > 0 and "peak_memory_mib" not in figures
        assert figures["first_validation"]["step"] == 0 and figures["last_validation"]["step"] == 2
        assert figures["last_validation"]["val/psnr"] > 0
        assert (tmp_path / "out" / f"metrics_{family}.jsonl").is_file()


def test_it_says_how_to_call_it(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "usage: bash benchmarks/train_on_gpu.sh UNET_DATASET RAD_DATASET" in result.stderr
