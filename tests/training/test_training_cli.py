"""``stylepass train`` / ``export-model`` through argparse, as the main CLI wires them."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.core.cli.train_command import register
from stylepass.core.models import load_model
from stylepass.core.models.config import build_generator
from stylepass.core.models.serialization import load_tensors
from stylepass.training.loop.checkpoint import latest_checkpoint

CONFIG = """
[model]
family = "rad"
widths = [8, 8]
blocks = [1, 1]
gbuffer_widths = [4, 4]
gbuffer_passes = ["albedo", "normal"]

[train]
steps = 100
batch_size = 2
crop_size = 32
num_workers = 0
val_every = 0

[loss]
adversarial = 0.0
"""


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stylepass")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)


@pytest.fixture()
def cli_env(tmp_path: Path, paired_dataset: Path):
    """A config file and the dataset."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    return config, paired_dataset


def test_train_then_export_a_deployable_model(cli_env, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config, data = cli_env
    run, model_dir = tmp_path / "run", tmp_path / "model"
    train = ("train", str(config), "--data", str(data), "--out", str(run), "--device", "cpu")
    assert run_cli(*train, "--steps", "5") == ExitCode.OK
    out = capsys.readouterr().out
    assert "step 5" in out and "steps/s (median of 1 log interval)" in out and "GPU memory" not in out
    assert run_cli(*train, "--steps", "8", "--resume") == ExitCode.OK
    assert latest_checkpoint(run).name == "step-00000008"
    assert run_cli("export-model", str(run), "--out", str(model_dir)) == ExitCode.OK
    model, model_config = load_model(model_dir)
    reference = build_generator(model_config).eval()
    reference.load_state_dict(load_tensors(latest_checkpoint(run) / "generator.safetensors"))
    x = (torch.rand(1, 3, 13, 21), torch.rand(1, 7, 13, 21), torch.randint(0, 5, (1, 13, 21)))
    with torch.no_grad():
        assert torch.equal(model(*x), reference(*x))


def test_bad_inputs_exit_with_a_message(cli_env, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config, data = cli_env
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--device", "cpu", "--steps", "2"]

    def fails_with(messages: str | tuple[str, ...], *argv: str) -> None:
        assert run_cli(*argv) == ExitCode.BAD_INPUT
        err = capsys.readouterr().err
        for message in (messages,) if isinstance(messages, str) else messages:
            assert message in err

    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[train]\nstepz = 3\n")
    fails_with("unknown key(s) in [train]: stepz; allowed: steps", "train", str(bad_config), *common)
    fails_with("nothing to resume", "train", str(config), *common, "--resume")
    assert run_cli("train", str(config), *common) == ExitCode.OK
    fails_with("already holds a run with checkpoints: pass --resume", "train", str(config), *common)
    fails_with("already at step 2, past train.steps = 1", "train", str(config), *common[:-1], "1", "--resume")
    assert "steps = 2\n" in (run / "config.toml").read_text()  # a refused resume leaves the run as it was
    changed = tmp_path / "changed.toml"
    changed.write_text(CONFIG.replace("widths = [8, 8]", "widths = [8, 16]"))
    fails_with(("differs from the one", "in: model.widths;"), "train", str(changed), *common, "--resume")
    fails_with("not a paired dataset",
               "train", str(config), "--data", str(tmp_path), "--out", str(tmp_path / "r2"), "--device", "cpu")
    fails_with("--steps must be >= 1", "train", str(config), *common[:-1], "0")
    no_weights = tmp_path / "no_weights.toml"
    no_weights.write_text(CONFIG + f'\n[metrics]\nkid_weights = "{tmp_path / "vgg16.safetensors"}"\n')
    fails_with(("VGG16 weights not found", "never downloads"),
               "train", str(no_weights), *common[:2], "--out", str(tmp_path / "r3"), *common[4:])
    fails_with("is not a training run", "export-model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"))
    if not torch.cuda.is_available():
        fails_with("CUDA is not available",
                   "train", str(config), "--data", str(data), "--out", str(run), "--device", "cuda")


def test_registering_the_subcommands_does_not_import_torch() -> None:
    """`stylepass --help` stays fast: torch is imported by the handlers, not by register()."""
    import subprocess
    import sys

    code = (
        "import argparse, sys; from stylepass.core.cli.train_command import register; "
        "register(argparse.ArgumentParser().add_subparsers()); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_an_error_in_a_data_loader_worker_ends_the_command(cli_env, tmp_path: Path) -> None:
    # the worker's exception kept the loader (and its worker process) alive through interpreter
    # exit, where multiprocessing waited for it forever: the command printed the error and hung
    config, data = cli_env
    too_big = tmp_path / "crop.toml"
    too_big.write_text(CONFIG.replace("crop_size = 32", "crop_size = 64").replace("num_workers = 0", "num_workers = 1"))
    done = subprocess.run([sys.executable, "-m", "stylepass.core.cli", "train", str(too_big), "--data", str(data),
                           "--out", str(tmp_path / "run"), "--device", "cpu", "--steps", "2"],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr[-2000:]
    assert "smaller than the crop size 64; lower train.crop_size" in done.stderr
