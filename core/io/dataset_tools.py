"""Datasets after they are made: merge farm shards, summarise, draw a contact sheet (Blender-free)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stylepass.blender_addon.contract.atomic_files import append_jsonl, copy_file_atomic, write_json_atomic
from stylepass.blender_addon.contract.dataset_layout import IDENTITY_NAME, PAIRS_NAME, DatasetError, read_pairs
from stylepass.blender_addon.contract.export_format import MANIFEST_NAME

from . import preview_images
from .atomic_image import save_png_atomic
from .gbuffer import read_gbuffer, sidecar_path

EVALUATIONS_FOLDER = "evaluation"  # `stylepass evaluate` writes DATASET/evaluation/<model>/ by default


def made_pairs(dataset: Path) -> list[dict]:
    """The pair rows of a folder made by ``stylepass dataset`` (none yet is no error); DatasetError if
    it is not one."""
    if not (dataset / IDENTITY_NAME).is_file():
        raise DatasetError(f"{dataset} is not a Stylepass dataset (no {IDENTITY_NAME})")
    return read_pairs(dataset, missing_ok=True)


def _identity(dataset: Path) -> dict:
    return json.loads((dataset / IDENTITY_NAME).read_text())


def _same_file(a: Path, b: Path) -> bool:
    return b.exists() and a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


@dataclass
class MergeReport:
    """What ``merge_datasets`` did."""

    merged: int = 0
    already_present: int = 0
    shards: list[str] = field(default_factory=list)


def merge_datasets(out: Path, shards: list[Path]) -> MergeReport:
    """Merge shard datasets into ``out``: every pair once, files linked or copied atomically.

    Re-running resumes (pairs already in ``out`` are skipped). Shards made with another
    recipe, seed, size or count, or two shards disagreeing on a pair's files, are refused.
    """
    if not shards:
        raise DatasetError("name at least one shard folder to merge")
    identities = {str(shard): _identity(shard) if (shard / IDENTITY_NAME).is_file() else None for shard in shards}
    for shard_name, identity in identities.items():
        if identity is None:
            raise DatasetError(f"{shard_name} is not a Stylepass dataset (no {IDENTITY_NAME})")
    reference = next(iter(identities.values()))
    for shard_name, identity in identities.items():
        if identity != reference:
            raise DatasetError(f"{shard_name} was made with other settings than {shards[0]}: only shards of one "
                               "`stylepass dataset` command (same recipe, seed and options) can be merged")
    out.mkdir(parents=True, exist_ok=True)
    if (out / IDENTITY_NAME).exists() and _identity(out) != reference:
        raise DatasetError(f"{out} holds a dataset made with other settings: merge into a new folder")
    write_json_atomic(out / IDENTITY_NAME, reference)
    present = {(row["scene"], row["frame"]) for row in read_pairs(out, missing_ok=True)}
    report = MergeReport(shards=[str(s) for s in shards])
    for shard in shards:
        for row in read_pairs(shard, missing_ok=True):
            key = (row["scene"], row["frame"])
            if key in present:
                report.already_present += 1
                _check_agrees(shard, out, row)
                continue
            for relative in (row["input"], str(Path(row["input"]).with_suffix(".json")), row["target"]):
                source, destination = shard / relative, out / relative
                if not source.is_file():
                    raise DatasetError(f"{source} is listed in {shard / PAIRS_NAME} but missing: re-run that "
                                       "shard's command to finish it, then merge again")
                if destination.exists() and not _same_file(source, destination):
                    raise DatasetError(f"{destination} differs from {source}: the shards disagree")
                if not destination.exists():
                    copy_file_atomic(source, destination, link=True)
            scene_dir = (out / row["input"]).parent
            append_jsonl(scene_dir / MANIFEST_NAME, {"frame": row["frame"], "exr": Path(row["input"]).name,
                                                     "sidecar": Path(row["input"]).with_suffix(".json").name})
            scene_json = (shard / row["input"]).parent / "scene.json"
            if scene_json.is_file() and not (scene_dir / "scene.json").exists():
                copy_file_atomic(scene_json, scene_dir / "scene.json", link=True)
            append_jsonl(out / PAIRS_NAME, row)
            present.add(key)
            report.merged += 1
    return report


def _check_agrees(shard: Path, out: Path, row: dict) -> None:
    for relative in (row["input"], row["target"]):
        if not _same_file(shard / relative, out / relative):
            raise DatasetError(f"{shard / relative} differs from {out / relative}: the same pair was made twice "
                               "with different results; remove one shard's copy")


@dataclass
class DatasetSummary:
    """Counts and sizes of a dataset."""

    pairs: int
    train: int
    val: int
    scenes: int
    resolutions: list[tuple[int, int]]
    bytes_on_disk: int  # the dataset's own files (evaluations left out)
    recipe: dict
    evaluation_bytes: int = 0  # what `stylepass evaluate` wrote into DATASET/evaluation/

    def lines(self) -> list[str]:
        size = ", ".join(f"{w}x{h}" for w, h in self.resolutions) or "none"
        lines = [
            f"pairs: {self.pairs} ({self.train} train, {self.val} validation) from {self.scenes} scene(s)",
            f"target: {self.recipe.get('target', {}).get('kind', '?')}, input engine: "
            f"{self.recipe.get('input', {}).get('engine', '?')}, resolution: {size}",
            f"on disk: {self.bytes_on_disk / 2**20:.1f} MiB",
        ]
        if self.evaluation_bytes:
            lines.append(f"evaluations: {self.evaluation_bytes / 2**20:.1f} MiB in {EVALUATIONS_FOLDER}/ "
                         "(stylepass evaluate's reports, not counted above)")
        return lines


def summarise(dataset: Path) -> DatasetSummary:
    """Count a dataset's pairs, splits, scenes, sizes and bytes."""
    rows = made_pairs(dataset)
    resolutions = sorted({tuple(json.loads(sidecar_path(dataset / r["input"]).read_text())["resolution"])
                          for r in rows})
    return DatasetSummary(
        pairs=len(rows),
        train=sum(r["split"] == "train" for r in rows),
        val=sum(r["split"] == "val" for r in rows),
        scenes=len({r["scene"] for r in rows}),
        resolutions=[(int(w), int(h)) for w, h in resolutions],
        bytes_on_disk=_bytes_in(dataset, skip=dataset / EVALUATIONS_FOLDER),
        recipe=_identity(dataset).get("recipe", {}),
        evaluation_bytes=_bytes_in(dataset / EVALUATIONS_FOLDER),
    )


def _bytes_in(folder: Path, skip: Path | None = None) -> int:
    """Bytes of the files below `folder`, those below `skip` left out."""
    return sum(path.stat().st_size for path in folder.rglob("*")
               if path.is_file() and (skip is None or not path.is_relative_to(skip)))


SHEET_COLUMNS = ("input", "albedo", "glossy colour", "normal", "depth", "material id", "target")


def contact_sheet(dataset: Path, destination: Path, count: int = 4) -> Path:
    """Write a PNG with one row per pair (a spread of ``count`` pairs): input, passes, target
    (the columns of :data:`SHEET_COLUMNS`)."""
    rows = made_pairs(dataset)
    if not rows:
        raise DatasetError(f"{dataset} has no finished pairs yet")
    picks = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, min(count, len(rows))).round()]
    tiles = []
    for row in picks:
        frame = read_gbuffer(dataset / row["input"])
        tiles.append([
            preview_images.linear_to_srgb8(frame.beauty),
            preview_images.albedo_to_rgb8(frame.albedo),
            # black for exports made before the glossy colour was exported
            preview_images.albedo_to_rgb8(frame.glossy_albedo if frame.glossy_albedo is not None
                                          else np.zeros_like(frame.albedo)),
            preview_images.normal_to_rgb8(frame.normal),
            preview_images.depth_to_rgb8(frame.depth, frame.valid),
            preview_images.ids_to_rgb8(frame.material_id),
            preview_images.load_target_rgb8(dataset / row["target"]),
        ])
    labels = [f"{row['scene']} f{row['frame']} {row['split']}" for row in picks]
    return save_png_atomic(destination, preview_images.tile_grid(tiles, list(SHEET_COLUMNS), labels))
