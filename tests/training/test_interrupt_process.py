"""Ctrl-C on a real ``train`` process with data-loader workers: a checkpoint, exit code 130,
and a resume that carries on from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.training.loop.checkpoint import latest_checkpoint
from stylepass.training.loop.run_log import read_metrics

CONFIG = """
[model]
family = "unet"
base_width = 8
depth = 3

[train]
steps = 100000
batch_size = 2
crop_size = 32
num_workers = 2
val_every = 0
log_every = 2

[discriminator]
base_width = 8
n_layers = 2
"""


def test_ctrl_c_on_the_process_group_stops_with_a_checkpoint(paired_dataset: Path, cli_script: Path,
                                                             tmp_path: Path) -> None:
    config, run = tmp_path / "config.toml", tmp_path / "run"
    config.write_text(CONFIG)
    command = [sys.executable, str(cli_script), "train", str(config), "--data", str(paired_dataset),
               "--out", str(run), "--device", "cpu"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len([r for r in read_metrics(run) if "loss/l1" in r]) >= 2:  # at least 4 steps done
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _, err = process.communicate(timeout=120)
    assert process.returncode == ExitCode.CANCELLED, err[-2000:]
    assert "interrupted: resume with --resume" in err and err.count("stopping after this step") == 1
    checkpoint = latest_checkpoint(run)
    stopped_at = json.loads((checkpoint / "state.json").read_text())["step"]
    assert stopped_at >= 4 and checkpoint.name == f"step-{stopped_at:08d}"

    resume = [*command, "--steps", str(stopped_at + 2), "--resume"]
    done = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == ExitCode.OK, done.stderr[-2000:]
    assert latest_checkpoint(run).name == f"step-{stopped_at + 2:08d}"
