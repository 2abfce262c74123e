"""DDP: the same training entry point under torchrun with two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stylepass.training.loop.checkpoint import latest_checkpoint
from stylepass.training.loop.run_log import read_metrics

CONFIG = """
[model]
family = "unet"
base_width = 8
depth = 3
gbuffer_passes = ["albedo"]

[train]
batch_size = 2
crop_size = 32
num_workers = 0
log_every = 5
val_every = 0
checkpoint_every = 10
lr_g = 2e-3

[discriminator]
base_width = 8
n_layers = 2
"""


def test_two_cpu_processes_train_one_model_with_gloo(paired_dataset: Path, cli_script: Path, tmp_path: Path) -> None:
    config, run = tmp_path / "config.toml", tmp_path / "run"
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(cli_script), "train", str(config), "--data", str(paired_dataset), "--out", str(run),
        "--device", "cpu", "--steps", "20",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = latest_checkpoint(run)
    assert checkpoint is not None and checkpoint.name == "step-00000020"
    assert json.loads((checkpoint / "state.json").read_text())["extra"] == {"world_size": 2}
    losses = [r for r in read_metrics(run) if "loss/l1" in r]
    assert [r["step"] for r in losses] == [5, 10, 15, 20]  # rank 0 alone writes logs
    assert losses[-1]["loss/l1"] < losses[0]["loss/l1"]
