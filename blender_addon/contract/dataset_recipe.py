"""Dataset recipes: which scenes to render, how to render the input, what the target is
(Blender-free; read by the ``stylepass dataset`` CLI and by the job inside Blender).

A recipe is a TOML file (examples in ``presets/*/dataset.toml``)::

    [dataset]
    validation_fraction = 0.2      # share of scenes held out for validation (by scene); 1 = all
                                   # (an evaluation set, e.g. of real assets never trained on)
    resolution = [256, 256]        # default output size; --resolution overrides

    [scenes]
    source = "procedural"          # "procedural" (seeded generator) or "blend" (your file)
    count = 100                    # procedural: number of scenes; --count overrides
    assets = ["../assets"]         # procedural: .gltf/.glb/.blend files or folders (relative to the recipe)
    asset_probability = 0.5        # procedural: chance a subject is a real asset
    min_objects = 2
    max_objects = 5
    walls = true
    blend = "shot.blend"           # blend: the file; frames from --frames or the file's range

    [input]                        # the fast render exported as G-buffers
    engine = "cycles"              # "cycles" or "eevee"
    samples = 8
    indirect = false               # Cycles: no indirect light; Eevee: ray tracing off

    [peer]                         # optional (evaluation sets): what a user would render instead of
    engine = "eevee"               # running the model, at about the same cost, e.g. Eevee with its ray
    samples = 16                   # tracing on; rendered per pair beside the input and scored by
    indirect = true                # `stylepass evaluate` as the "peer". Same keys as [input].

    [target]
    kind = "enhance"               # "enhance", "toon", "painterly", "sketch" or "folder"
    # further keys are the target's parameters (see target_params.TARGET_PARAMS); for "folder":
    # path = "painted/"            # images matched to frames by the last number in their name
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .target_params import TARGET_KINDS, resolve_params

SOURCES = ("procedural", "blend")
ENGINES = ("cycles", "eevee")
RECIPE_TARGET_KINDS = (*TARGET_KINDS, "folder")  # folder targets are copied, not rendered
_TABLES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "dataset": {"validation_fraction": (int, float), "resolution": list},
    "scenes": {"source": str, "count": int, "assets": list, "asset_probability": (int, float),
               "min_objects": int, "max_objects": int, "walls": bool, "blend": str},
    "input": {"engine": str, "samples": int, "indirect": bool},
    "peer": {"engine": str, "samples": int, "indirect": bool},
}


@dataclass(frozen=True)
class PeerRender:
    """The ``[peer]`` render: the fast render's settings (as ``[input]``) a user would pick instead."""

    engine: str
    samples: int
    indirect: bool

    def as_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "samples": self.samples, "indirect": self.indirect}


class RecipeError(ValueError):
    """A recipe is malformed; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. Paths are absolute (resolved against the recipe's folder)."""

    path: Path
    validation_fraction: float = 0.2
    resolution: tuple[int, int] = (256, 256)
    source: str = "procedural"
    count: int = 16
    assets: tuple[str, ...] = ()
    asset_probability: float = 0.5
    min_objects: int = 2
    max_objects: int = 5
    walls: bool = True
    blend: str | None = None
    input_engine: str = "cycles"
    input_samples: int = 8
    input_indirect: bool = False
    target_kind: str = "enhance"
    target_params: dict[str, Any] = field(default_factory=dict)
    peer: PeerRender | None = None

    @property
    def target_suffix(self) -> str:
        """File type of the targets: linear EXR for ``enhance``, else what the kind writes."""
        return ".exr" if self.target_kind == "enhance" else ".png"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, recorded in the dataset so shards of another recipe are refused."""
        return {
            "dataset": {"validation_fraction": self.validation_fraction, "resolution": list(self.resolution)},
            "scenes": {"source": self.source, "count": self.count, "assets": list(self.assets),
                       "asset_probability": self.asset_probability, "min_objects": self.min_objects,
                       "max_objects": self.max_objects, "walls": self.walls, "blend": self.blend},
            "input": {"engine": self.input_engine, "samples": self.input_samples,
                      "indirect": self.input_indirect},
            "target": {"kind": self.target_kind, **self.target_params},
            **({"peer": self.peer.as_dict()} if self.peer else {}),
        }


def _check_keys(path: Path, table: str, values: dict[str, Any], allowed: dict[str, Any],
                context: str = "") -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) {', '.join(unknown)} in [{table}]{context}; "
                          f"allowed: {', '.join(sorted(allowed)) or 'none'}")
    for key, value in values.items():
        expected = allowed[key]
        if isinstance(value, bool) and expected is not bool and bool not in (
                expected if isinstance(expected, tuple) else (expected,)):
            raise RecipeError(f"{path}: [{table}] {key} = {value!r} should be a number")
        if not isinstance(value, expected):
            names = "/".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise RecipeError(f"{path}: [{table}] {key} = {value!r} should be a {names}")


def _choice(path: Path, where: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise RecipeError(f"{path}: {where} = {value!r} is not allowed; choose one of {', '.join(allowed)}")
    return value


def _resolve_assets(path: Path, entries: list[Any]) -> tuple[str, ...]:
    files: list[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise RecipeError(f"{path}: [scenes] assets should list paths, got {entry!r}")
        found = (path.parent / entry).resolve()
        if found.is_dir():
            matches = sorted(p for p in found.rglob("*") if p.suffix.lower() in (".gltf", ".glb", ".blend"))
            if not matches:
                raise RecipeError(f"{path}: [scenes] assets folder {found} holds no .gltf, .glb or .blend file")
            files += [str(p) for p in matches]
        elif found.is_file():
            files.append(str(found))
        else:
            raise RecipeError(f"{path}: [scenes] assets entry {entry!r} not found (looked at {found})")
    return tuple(files)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file.

    Raises:
        RecipeError: naming the file, the bad key or value, and what is allowed.
    """
    path = Path(path).resolve()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RecipeError(f"recipe not found: {path}") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: not a readable TOML recipe: {exc}") from exc
    unknown = sorted(set(data) - {*_TABLES, "target"})
    if unknown:
        raise RecipeError(f"{path}: unknown table(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join([*_TABLES, 'target'])}")
    for table, allowed in _TABLES.items():
        _check_keys(path, table, data.get(table, {}), allowed)
    dataset, scenes, render = data.get("dataset", {}), data.get("scenes", {}), data.get("input", {})
    peer = data.get("peer")
    target = dict(data.get("target", {}))
    kind = _choice(path, "[target] kind", target.pop("kind", "enhance"), RECIPE_TARGET_KINDS)
    if kind == "folder":
        _check_keys(path, "target", target, {"path": str}, context=" for kind 'folder'")
    else:
        try:
            resolve_params(kind, target)
        except ValueError as exc:
            raise RecipeError(f"{path}: [target] {exc}") from exc
    source = _choice(path, "[scenes] source", scenes.get("source", "procedural"), SOURCES)
    recipe = Recipe(
        path=path,
        validation_fraction=float(dataset.get("validation_fraction", 0.2)),
        resolution=_resolution(path, dataset.get("resolution", [256, 256])),
        source=source,
        count=scenes.get("count", 16),
        assets=_resolve_assets(path, scenes.get("assets", [])),
        asset_probability=float(scenes.get("asset_probability", 0.5)),
        min_objects=scenes.get("min_objects", 2),
        max_objects=scenes.get("max_objects", 5),
        walls=scenes.get("walls", True),
        blend=str((path.parent / scenes["blend"]).resolve()) if "blend" in scenes else None,
        input_engine=_choice(path, "[input] engine", render.get("engine", "cycles"), ENGINES),
        input_samples=render.get("samples", 8),
        input_indirect=render.get("indirect", False),
        target_kind=kind,
        target_params={**target, **({"path": str((path.parent / target["path"]).resolve())}
                                    if kind == "folder" and "path" in target else {})},
        peer=None if peer is None else PeerRender(
            engine=_choice(path, "[peer] engine", peer.get("engine", render.get("engine", "cycles")), ENGINES),
            samples=peer.get("samples", render.get("samples", 8)), indirect=peer.get("indirect", True)),
    )
    _check_values(recipe)
    return recipe


def _resolution(path: Path, value: list[Any]) -> tuple[int, int]:
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise RecipeError(f"{path}: [dataset] resolution = {value!r} should be [width, height], positive integers")
    return value[0], value[1]


def _check_values(recipe: Recipe) -> None:
    path = recipe.path
    if not 0.0 <= recipe.validation_fraction <= 1.0:
        raise RecipeError(f"{path}: [dataset] validation_fraction must be in [0, 1]")
    if recipe.count < 1:
        raise RecipeError(f"{path}: [scenes] count must be at least 1")
    if not 0.0 <= recipe.asset_probability <= 1.0:
        raise RecipeError(f"{path}: [scenes] asset_probability must be in [0, 1]")
    if not 1 <= recipe.min_objects <= recipe.max_objects:
        raise RecipeError(f"{path}: [scenes] needs 1 <= min_objects <= max_objects")
    if recipe.input_samples < 1:
        raise RecipeError(f"{path}: [input] samples must be at least 1")
    if recipe.peer is not None:
        if recipe.peer.samples < 1:
            raise RecipeError(f"{path}: [peer] samples must be at least 1")
        if recipe.target_kind != "enhance":
            raise RecipeError(f"{path}: [peer] is for enhance recipes (a render to compare with the model's "
                              f"output); target kind {recipe.target_kind!r} has none")
    if recipe.source == "blend":
        if not recipe.blend:
            raise RecipeError(f"{path}: [scenes] source = 'blend' needs blend = 'path/to/file.blend'")
        if not Path(recipe.blend).is_file():
            raise RecipeError(f"{path}: [scenes] blend file not found: {recipe.blend}")
    if recipe.target_kind == "folder":
        folder = recipe.target_params.get("path")
        if not folder or not Path(folder).is_dir():
            raise RecipeError(f"{path}: [target] kind = 'folder' needs path = an existing folder of images")
        if recipe.source != "blend":
            raise RecipeError(f"{path}: folder targets are matched to frames: use [scenes] source = 'blend'")


FRAME_BLOCK = 10  # frames of one .blend are split in blocks, so neighbours share a split


def validation_split(index: int, fraction: float) -> str:
    """Split of the scene (or frame block) with 0-based ``index``: every k-th is ``"val"``,
    k = round(1 / fraction), so splits are exact for any count and the same in every shard;
    fraction 1 holds every scene out."""
    if fraction <= 0:
        return "train"
    if fraction >= 1:
        return "val"
    period = max(2, round(1 / fraction))
    return "val" if index % period == period - 1 else "train"


def frame_split(frame: int, first_frame: int, fraction: float) -> str:
    """Split of a frame of a .blend source: by blocks of FRAME_BLOCK frames (less leakage
    between neighbouring, near-identical frames than a per-frame split)."""
    return validation_split((frame - first_frame) // FRAME_BLOCK, fraction)
