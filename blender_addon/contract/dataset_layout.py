"""Where a dataset's files go, and its pair list (Blender-free).

    DATASET/
      dataset.json                     what made it: recipe, seed, size, count (shards must agree)
      pairs.jsonl                      one line per finished pair (the training set's index)
      scenes/<scene id>/               a G-buffer export folder (frame_*.exr/.json, manifest.jsonl)
      scenes/<scene id>/targets/       target_<frame>.png|.exr, pixel-aligned with the frame
      scenes/<scene id>/scene.json     the generated scene's description (procedural scenes)

A pairs.jsonl line: ``{"input": "scenes/s/frame_000001.exr", "target": "scenes/s/targets/target_000001.png",
"split": "train"|"val", "scene": "s", "frame": 1}`` (paths relative to DATASET).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic_files import read_jsonl, write_json_atomic
from .export_format import frame_stem
from .headless_protocol import BadInputError

IDENTITY_NAME = "dataset.json"
PAIRS_NAME = "pairs.jsonl"
SCENES_DIR = "scenes"
TARGETS_DIR = "targets"


@dataclass(frozen=True)
class PairPaths:
    """Paths of one pair, relative to the dataset folder."""

    scene: str
    frame: int
    target_suffix: str

    @property
    def scene_dir(self) -> str:
        return f"{SCENES_DIR}/{self.scene}"

    @property
    def input(self) -> str:
        return f"{self.scene_dir}/{frame_stem(self.frame)}.exr"

    @property
    def target(self) -> str:
        return f"{self.scene_dir}/{TARGETS_DIR}/target_{self.frame:06d}{self.target_suffix}"

    def row(self, split: str) -> dict[str, Any]:
        """The pairs.jsonl line of this pair."""
        return {"input": self.input, "target": self.target, "split": split, "scene": self.scene,
                "frame": self.frame}


def procedural_scene_id(index: int) -> str:
    """Id of the procedural scene with 0-based ``index``."""
    return f"scene_{index:05d}"


def finished_pairs(dataset: Path) -> set[tuple[str, int]]:
    """(scene, frame) of every pair recorded in the dataset's pairs.jsonl."""
    return {(row["scene"], int(row["frame"])) for row in read_jsonl(dataset / PAIRS_NAME)}


def claim_identity(dataset: Path, identity: dict[str, Any]) -> None:
    """Record what makes the dataset, or check it matches what is recorded.

    Raises:
        BadInputError: the folder holds a dataset made otherwise (another recipe, seed,
            size or count): mixing them would corrupt both.
    """
    path = dataset / IDENTITY_NAME
    if path.exists():
        recorded = json.loads(path.read_text())
        if recorded != identity:
            differing = sorted(k for k in set(recorded) | set(identity) if recorded.get(k) != identity.get(k))
            raise BadInputError(f"{dataset} holds a dataset made with other settings ({', '.join(differing)} "
                                "differ): use a new folder, or the same recipe and options to resume")
        return
    write_json_atomic(path, identity)
