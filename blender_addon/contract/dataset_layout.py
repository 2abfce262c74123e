"""Where a dataset's files go, and its pair list: the one reader of pairs.jsonl (Blender-free).

    DATASET/
      dataset.json                     what made it: recipe, seed, size, count (shards must agree)
      pairs.jsonl                      one line per finished pair (the training set's index)
      scenes/<scene id>/               a G-buffer export folder (frame_*.exr/.json, manifest.jsonl)
      scenes/<scene id>/targets/       target_<frame>.png|.exr, pixel-aligned with the frame
      scenes/<scene id>/peers/         peer_<frame>.exr: the recipe's [peer] render (evaluation sets)
      scenes/<scene id>/scene.json     the generated scene's description (procedural scenes)

A pairs.jsonl line: ``{"input": "scenes/s/frame_000001.exr", "target": "scenes/s/targets/target_000001.png",
"split": "train"|"val", "scene": "s", "frame": 1}`` (paths relative to DATASET), and with a
[peer] render ``"peer": "scenes/s/peers/peer_000001.exr"`` and ``"seconds": {"input": 3.1, "peer": 4.0,
"target": 30.2}`` (each render's wall time; input and peer are the second of two renders, so
Eevee's shaders are compiled). Hand-made
datasets for ``stylepass train`` need only ``input``, ``target``, ``split`` and ``scene``
(``target`` may be left out for unpaired training).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic_files import is_torn_fragment, write_json_atomic
from .export_format import frame_stem
from .headless_protocol import BadInputError

IDENTITY_NAME = "dataset.json"
PAIRS_NAME = "pairs.jsonl"
SCENES_DIR = "scenes"
TARGETS_DIR = "targets"
PEERS_DIR = "peers"
SPLITS = ("train", "val")


class DatasetError(BadInputError):
    """A dataset folder, its pairs.jsonl or one of its files is missing, damaged, or does not match
    the others; the message says why (exit code BAD_INPUT)."""


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

    @property
    def peer(self) -> str:
        return f"{self.scene_dir}/{PEERS_DIR}/peer_{self.frame:06d}.exr"

    def row(self, split: str, seconds: dict[str, float | None] | None = None) -> dict[str, Any]:
        """The pairs.jsonl line of this pair; `seconds` (render times) come with a peer render."""
        row: dict[str, Any] = {"input": self.input, "target": self.target, "split": split, "scene": self.scene,
                               "frame": self.frame}
        if seconds is not None:
            row.update(peer=self.peer, seconds=seconds)
        return row


def procedural_scene_id(index: int) -> str:
    """Id of the procedural scene with 0-based ``index``."""
    return f"scene_{index:05d}"


def read_pairs(dataset: Path, require_target: bool = True, missing_ok: bool = False) -> list[dict[str, Any]]:
    """The rows of ``DATASET/pairs.jsonl`` in file order, each checked.

    A row is a JSON object with ``input``, ``split`` (one of :data:`SPLITS`), ``scene`` and, with
    `require_target`, ``target``; other keys are kept. Blank lines are skipped, and so are the
    fragments of writers killed mid-line (:func:`~.atomic_files.is_torn_fragment`): the pairs they
    were writing are made again by the next run.

    Raises:
        DatasetError: a row is not as above (naming the file and line), or there is no
            pairs.jsonl (with `missing_ok`, no rows instead).
    """
    path = Path(dataset) / PAIRS_NAME
    if not path.is_file():
        if missing_ok:
            return []
        raise DatasetError(f"{dataset} is not a paired dataset: {PAIRS_NAME} not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    required = ("input", "target", "split", "scene") if require_target else ("input", "split", "scene")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if is_torn_fragment(line):
                continue
            raise DatasetError(f"{path}:{number}: not JSON: {error}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object")
        missing = [key for key in required if key not in row]
        if missing:
            raise DatasetError(f"{path}:{number}: missing key(s) {', '.join(missing)}")
        if row["split"] not in SPLITS:
            raise DatasetError(f"{path}:{number}: split {row['split']!r}; allowed: {', '.join(SPLITS)}")
        rows.append(row)
    return rows


def finished_pairs(dataset: Path) -> set[tuple[str, int]]:
    """(scene, frame) of every pair recorded in the dataset's pairs.jsonl (none when it has none yet)."""
    return {(row["scene"], int(row["frame"])) for row in read_pairs(dataset, missing_ok=True)}


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
