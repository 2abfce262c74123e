"""`stylepass keyframe`: paint over exported frames and register the paintings as targets."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from .conftest import BLENDERS, STYLEPASS, stylepass_export


def stylepass(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(STYLEPASS), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("keyframes") / "export"
    run = stylepass_export("demo", out, BLENDERS[0], "--resolution", "48x27", "--samples", "1", "--frames", "1-3")
    assert run.returncode == 0, run.output[-3000:]
    return out


def pairs(export):
    return [json.loads(line) for line in (export / "pairs.jsonl").read_text().splitlines()]


def test_paint_over_a_template_register_replace_and_remove(export, tmp_path):
    done = stylepass("keyframe", "template", str(export), "--frame", "2", "--out", str(tmp_path / "paint.png"))
    assert done.returncode == 0, done.stderr
    template = np.asarray(Image.open(tmp_path / "paint.png"))
    assert template.shape == (27, 48, 3) and template.std() > 5
    painted = template.copy()
    painted[..., 2] = 255 - painted[..., 2]  # a bold grade, as an artist might
    painted[::4] = 20                        # and a stroke pattern
    Image.fromarray(painted).save(tmp_path / "paint.png")
    original = (tmp_path / "paint.png").read_bytes()

    done = stylepass("keyframe", "add", str(export), str(tmp_path / "paint.png"), "--frame", "2")
    assert done.returncode == 0, done.stderr
    assert pairs(export) == [{"input": "frame_000002.exr", "target": "keyframes/keyframe_000002.png",
                              "split": "train", "scene": "Scene", "frame": 2}]
    assert (export / "keyframes" / "keyframe_000002.png").read_bytes() == original

    again = stylepass("keyframe", "add", str(export), str(tmp_path / "paint.png"), "--frame", "2")
    assert again.returncode == 2 and "has a painting already" in again.stderr
    replaced = stylepass("keyframe", "add", str(export), str(tmp_path / "paint.png"), "--frame", "2", "--replace")
    assert replaced.returncode == 0 and len(list((export / "keyframes" / "replaced").iterdir())) == 1

    from stylepass.training.data.paired_dataset import PairedDataset

    item = PairedDataset(export, "train", passes=("albedo", "normal"))[0]
    assert item["target"].shape == (3, 27, 48)

    listed = stylepass("keyframe", "list", str(export))
    assert "frame 2:" in listed.stderr and "1 painted keyframe(s)" in listed.stderr
    removed = stylepass("keyframe", "remove", str(export), "--frame", "2")
    assert removed.returncode == 0 and pairs(export) == []
    assert len(list((export / "keyframes" / "replaced").iterdir())) == 2, "removing never deletes a painting"
    assert (tmp_path / "paint.png").read_bytes() == original, "the artist's file is never changed"


@pytest.mark.parametrize("frame, size, message", [
    ("1", (64, 64), "is 64x64 but frame 1 was rendered at 48x27"),
    ("9", (48, 27), "frame 9 is not exported"),
])
def test_a_painting_of_the_wrong_size_or_frame_is_refused(export, tmp_path, frame, size, message):
    Image.new("RGB", size).save(tmp_path / "paint.png")
    done = stylepass("keyframe", "add", str(export), str(tmp_path / "paint.png"), "--frame", frame)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (export / "keyframes" / f"keyframe_{int(frame):06d}.png").exists()
