"""``stylepass train`` and ``stylepass export-model`` subcommands.

:func:`register` adds them to the main CLI; each handler returns an :class:`ExitCode`: 0 done,
1 the ONNX file differs from PyTorch, 2 bad input (message on stderr), 5 non-finite loss, 130
interrupted by Ctrl-C or SIGTERM (a checkpoint was written; continue with --resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

# Only the standard library (and the Blender-free contract) at import time: `stylepass --help`
# must not wait for torch. The handlers import the training code when they run.
from stylepass.blender_addon.contract.dataset_layout import DatasetError
from stylepass.blender_addon.contract.exit_codes import ExitCode


def input_errors() -> tuple[type[Exception], ...]:
    """Exception types that mean bad input (exit 2 with the message, no traceback)."""
    from stylepass.core.models.config import ConfigError
    from stylepass.core.models.serialization import ModelFileError
    from stylepass.training.data.image_io import ImageReadError
    from stylepass.training.loop.checkpoint import CheckpointError
    from stylepass.training.losses.perceptual import MissingWeightsError

    return (ConfigError, DatasetError, ModelFileError, CheckpointError, ImageReadError, MissingWeightsError)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``export-model`` subcommands (handler in ``args.handler``)."""
    train_parser = subparsers.add_parser(
        "train", help="train a styliser or enhancement model", description=run_train.__doc__
    )
    train_parser.add_argument("config", type=Path, help="training config (TOML)")
    train_parser.add_argument("--data", type=Path, required=True, help="paired dataset folder (pairs.jsonl)")
    train_parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs)")
    train_parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    train_parser.add_argument(
        "--device", help="cuda or cpu (default: cuda when a GPU is usable, else cpu)"
    )
    train_parser.add_argument("--steps", type=int, help="total steps (overrides train.steps)")
    train_parser.set_defaults(handler=run_train)

    export_parser = subparsers.add_parser(
        "export-model", help="write a run's model as a deployable model dir (optionally ONNX)",
        description=run_export.__doc__,
    )
    export_parser.add_argument(
        "run", type=Path, metavar="SOURCE", help="training run folder, or a model dir (e.g. presets/toon/model)"
    )
    export_parser.add_argument(
        "--out", type=Path, required=True, help="model dir to write (may be the SOURCE model dir itself)"
    )
    export_parser.add_argument(
        "--onnx", action="store_true",
        help="also write model.onnx for game engines, checked against PyTorch (see docs/onnx.md)",
    )
    export_parser.set_defaults(handler=run_export)


def run_train(args: argparse.Namespace) -> int:
    """Train a model from a TOML config on a paired dataset; Ctrl-C stops with a checkpoint."""
    import torch

    from stylepass.core.inference.predict import resolve_device
    from stylepass.core.models.config import ConfigError
    from stylepass.training.loop.config import load_config
    from stylepass.training.loop.run_control import NonFiniteLossError
    from stylepass.training.loop.run_log import read_metrics, throughput_summary
    from stylepass.training.loop.trainer import RESOLVED_CONFIG, train

    requested = args.device
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
        if requested == "cpu":
            print("note: no usable CUDA device, training on the CPU (slow; fine for small jobs)", file=sys.stderr)
    try:
        device = resolve_device(requested)
    except RuntimeError as error:
        return _fail(str(error))
    try:
        config = load_config(args.config)
        if args.steps is not None:
            if args.steps < 1:
                raise ConfigError(f"--steps must be >= 1, got {args.steps}")
            config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=args.steps))
        started = time.perf_counter()
        result = train(config, args.data, args.out, device, resume=args.resume)
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.DIVERGED
    except input_errors() as error:
        return _fail(str(error))
    elapsed = time.perf_counter() - started
    metrics = ", ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in result.validation.items())
    print(f"step {result.step} in {elapsed:.1f} s; checkpoint {result.checkpoint}"
          + (f"; val {metrics}" if metrics else ""))
    speed = throughput_summary(read_metrics(args.out))
    if "steps_per_s" in speed:
        memory = f", peak GPU memory {speed['peak_memory_mib']:.0f} MiB" if "peak_memory_mib" in speed else ""
        intervals = int(speed["log_intervals"])
        print(f"throughput: {speed['steps_per_s']:.3g} steps/s (median of {intervals} log "
              f"interval{'s' if intervals != 1 else ''}){memory}")
    if result.interrupted:
        print(f"interrupted: resume with --resume --out {args.out}", file=sys.stderr)
        return ExitCode.CANCELLED
    print(f"resolved config: {Path(args.out) / RESOLVED_CONFIG}")
    return ExitCode.OK


def run_export(args: argparse.Namespace) -> int:
    """Export the newest checkpoint of a run (or a model dir) as model.safetensors + config.json;
    with --onnx also model.onnx (dynamic size, checked in onnxruntime within 1e-3)."""
    from stylepass.core.inference.onnx_export import OnnxMismatchError, OnnxUnavailableError
    from stylepass.training.deploy.export import export_model

    refused: tuple[type[Exception], ...] = (OnnxUnavailableError, *input_errors())
    try:
        result = export_model(args.run, args.out, onnx=args.onnx)
    except refused as error:
        return _fail(str(error))
    except OnnxMismatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.FAILED
    print(f"model written to {result.out_dir}")
    if result.onnx_path is not None:
        print(f"ONNX model written to {result.onnx_path} (max |ONNX - PyTorch| {result.onnx_max_diff:.2g})")
    return ExitCode.OK


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return ExitCode.BAD_INPUT
