"""``stylepass train-preset``: rebuild a shipped preset from scratch (``python build.py train-preset``
runs set-up, then this command with the same arguments).

Standard library only, and no relative or ``stylepass`` import at module level: build.py loads this
file by its path, before anything is installed, to parse and document the same options. The handler
imports the training code when it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

HELP = "rebuild presets/NAME from scratch: dataset, training, export, card, thumbnail"


def add_arguments(parser: argparse.ArgumentParser, blender_versions: Sequence[str]) -> None:
    """The command's options; ``blender_versions``: the choices of ``--blender`` (default 5.2)."""
    parser.add_argument("name", help="preset folder name (enhance, toon, painterly, sketch)")
    parser.add_argument("--pairs", type=int, help="procedural scenes to render (default: 48 on cpu, 400 on cuda)")
    parser.add_argument("--steps", type=int, help="training steps (default: train.toml's on cpu, 20000 on cuda)")
    parser.add_argument("--resolution", help="WxH of the dataset frames (default: 128x128 on cpu, 256x256 on cuda)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    parser.add_argument("--blender", choices=list(blender_versions), default="5.2",
                        help="Blender that renders the dataset (default 5.2)")
    parser.add_argument("--presets-dir", help="folder that holds the presets (default: presets/)")
    parser.add_argument("--accept-worse", action="store_true",
                        help="install the model even when it misses a quality bar of presets/NAME/bars.toml "
                             "on the held-out real assets (by default it is kept out and the command fails)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train-preset`` subcommand (handler in ``args.handler``)."""
    from .blender_runtime import SUPPORTED_VERSIONS

    parser = subparsers.add_parser("train-preset", help=HELP, description=run_train_preset.__doc__)
    add_arguments(parser, SUPPORTED_VERSIONS)
    parser.set_defaults(handler=run_train_preset)


def run_train_preset(args: argparse.Namespace) -> int:
    """Rebuild presets/NAME from scratch: render its dataset (dataset.toml), train (train.toml), export
    onto presets/NAME/model/, score it on held-out real assets (real_assets.toml), write CARD.md and
    thumbnail.png. Work files go to .build/presets/NAME/; the same command again resumes every stage.
    A model that misses a bar of presets/NAME/bars.toml on the real assets is not installed (exit 6)
    unless --accept-worse is given. Exit codes: 0 done, 1 a stage failed, 2 no such preset or a bad
    option, train.toml or bars.toml, 4 not set up, 6 a bar missed."""
    from stylepass.training.presets.pipeline import PresetRequest, train_preset

    return train_preset(PresetRequest(
        name=args.name, pairs=args.pairs, steps=args.steps, resolution=args.resolution, device=args.device,
        blender=args.blender, presets_dir=Path(args.presets_dir) if args.presets_dir else None,
        accept_worse=args.accept_worse))
