"""Options of a dataset job, shared by the `stylepass dataset` CLI and the job inside Blender
(Blender-free), so bad arguments fail before Blender starts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from .dataset_recipe import Recipe, load_recipe
from .export_options import add_cycles_device_argument, parse_resolution
from .frame_selection import Shard, parse_frame_range, parse_shard


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options both sides understand."""
    parser.add_argument("recipe", help="dataset recipe (TOML), e.g. presets/enhance/dataset.toml")
    parser.add_argument("--out", required=True, help="dataset folder (created if missing)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--count", type=int, help="procedural scenes to make (default: the recipe's)")
    amount.add_argument("--frames", help="A-B: frames of the recipe's .blend (default: its range)")
    parser.add_argument("--shard", help="I/N: this task makes every N-th scene or frame starting at the I-th")
    parser.add_argument("--resolution", help="WxH (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the procedural scenes (default 0)")
    add_cycles_device_argument(parser)


@dataclass(frozen=True)
class DatasetOptions:
    """Validated dataset options; ``recipe`` has the --count and --resolution overrides applied."""

    recipe: Recipe
    out: str
    frames: tuple[int, int] | None
    shard: Shard | None
    seed: int
    cycles_device: str = "CPU"

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> DatasetOptions:
        """Load the recipe and check the options against it; raises ValueError (RecipeError) naming the problem."""
        recipe = load_recipe(ns.recipe)
        if ns.resolution:
            recipe = replace(recipe, resolution=parse_resolution(ns.resolution))
        if ns.count is not None:
            if recipe.source != "procedural" or ns.count < 1:
                raise ValueError("--count is for procedural recipes and must be at least 1")
            recipe = replace(recipe, count=ns.count)
        if ns.frames and recipe.source != "blend":
            raise ValueError("--frames is for recipes with [scenes] source = 'blend'")
        return cls(recipe=recipe, out=ns.out, frames=parse_frame_range(ns.frames) if ns.frames else None,
                   shard=parse_shard(ns.shard) if ns.shard else None, seed=ns.seed,
                   cycles_device=ns.cycles_device)
