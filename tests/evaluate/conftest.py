"""Fixtures: tiny paired datasets written as real files, for ``stylepass evaluate``.

Inputs are G-buffer exports in Blender's layouts (the training tests' writer: 5.x long pass
names; ``short_names`` gives 4.5's ``DiffCol``/``IndexMA``), targets real EXR (linear) or PNG
(sRGB) files, listed in pairs.jsonl with a dataset.json naming the target kind, as
``stylepass dataset`` writes them. Models are the stylise tests' tiny RAD model folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from tests.integration.conftest import blender  # noqa: F401 - the Blender versions under test
from tests.stylise.conftest import identity_model, rad_model  # noqa: F401 - the tiny RAD model dirs
from tests.training.conftest import linear_to_srgb8, make_frame, restyle, write_test_gbuffer

SHORT_NAMES = {"Diffuse Color": "DiffCol", "Material Index": "IndexMA"}  # Blender 4.5's layer names


def write_frame(path: Path, frame: SimpleNamespace, short_names: bool = False) -> Path:
    """An export EXR + sidecar; with `short_names`, the passes under 4.5's names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_test_gbuffer(path, frame)
    if short_names:
        part = OpenEXR.File(str(path), separate_channels=True).parts[0]
        channels = {}
        for name, channel in part.channels.items():
            for long, short in SHORT_NAMES.items():
                name = name.replace(f".{long}.", f".{short}.")
            channels[name] = channel.pixels
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        OpenEXR.File(header, channels).write(str(path))
    return path


def write_target(path: Path, linear: np.ndarray) -> Path:
    """A target: .exr as scene-linear float RGB, .png as 8-bit sRGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(linear_to_srgb8(linear)).save(path)
    else:
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        OpenEXR.File(header, {"RGB": np.ascontiguousarray(linear.transpose(1, 2, 0), dtype=np.float32)}).write(
            str(path))
    return path


def write_dataset(root: Path, pairs: list[dict], kind: str | None) -> Path:
    """A dataset folder. Each pair: ``frame``, ``target`` (linear (3, H, W)), ``split``, ``scene``,
    optional ``suffix`` (".exr" or ".png") and ``short_names``. `kind`: the recipe's target kind
    in dataset.json (None: no dataset.json, as for a hand-made dataset)."""
    rows = []
    for index, pair in enumerate(pairs, start=1):
        scene_dir = f"scenes/{pair['scene']}"
        exr = write_frame(root / scene_dir / f"frame_{index:06d}.exr", pair["frame"], pair.get("short_names", False))
        target = write_target(root / scene_dir / "targets" / f"target_{index:06d}{pair.get('suffix', '.exr')}",
                              pair["target"])
        rows.append({"input": exr.relative_to(root).as_posix(), "target": target.relative_to(root).as_posix(),
                     "split": pair["split"], "scene": pair["scene"], "frame": index})
    (root / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if kind is not None:
        (root / "dataset.json").write_text(json.dumps({"recipe": {"target": {"kind": kind}}, "seed": 0}))
    return root


@pytest.fixture(scope="session")
def toon_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five 40x48 pairs of the training tests' synthetic style: 2 train, 3 val (scenes a, a, b;
    one PNG target) (read-only for the tests)."""
    rng = np.random.default_rng(0)
    layout = [("train", "t", ".exr"), ("train", "t", ".png"), ("val", "a", ".exr"), ("val", "a", ".png"),
              ("val", "b", ".exr")]
    pairs = []
    for split, scene, suffix in layout:
        frame = make_frame(rng)
        pairs.append({"frame": frame, "target": restyle(frame.beauty), "split": split, "scene": scene,
                      "suffix": suffix})
    return write_dataset(tmp_path_factory.mktemp("toon"), pairs, "toon")
