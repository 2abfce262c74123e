"""Paintings are never lost: every replaced or removed painting is kept under its own name, however
quickly the changes come; damaged sidecars are refused with a message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stylepass.blender_addon.contract.headless_protocol import BadInputError
from stylepass.blender_addon.contract.keyframes import add_keyframe, list_keyframes, remove_keyframe


def export_with_frames(folder: Path, *frames: int) -> Path:
    folder.mkdir()
    for frame in frames:
        (folder / f"frame_{frame:06d}.json").write_text(json.dumps({"resolution": [4, 3], "scene": "Scene"}))
    return folder


def test_quick_replacements_and_removals_keep_every_painting(tmp_path):
    export = export_with_frames(tmp_path / "export", 1, 2)
    paintings = []
    for version in range(3):  # the same frame replaced twice within one second
        painting = tmp_path / f"paint{version}.png"
        painting.write_bytes(f"painting {version}".encode())
        paintings.append(painting.read_bytes())
        add_keyframe(export, 1, painting, (4, 3), replace=version > 0)
    (tmp_path / "other.png").write_bytes(b"frame 2's painting")
    add_keyframe(export, 2, tmp_path / "other.png", (4, 3))
    remove_keyframe(export, 1)
    add_keyframe(export, 1, tmp_path / "paint0.png", (4, 3))
    remove_keyframe(export, 1)  # removed twice, with another painting registered in between
    kept = sorted(p.read_bytes() for p in (export / "keyframes" / "replaced").iterdir())
    assert kept == sorted([paintings[0], paintings[1], paintings[2], paintings[0]])
    assert [k.frame for k in list_keyframes(export)] == [2]


def test_a_duplicate_names_the_way_to_replace_and_bad_sidecars_are_refused(tmp_path):
    export = export_with_frames(tmp_path / "export", 1)
    (tmp_path / "paint.png").write_bytes(b"painting")
    add_keyframe(export, 1, tmp_path / "paint.png", (4, 3))
    with pytest.raises(BadInputError, match="--replace"):
        add_keyframe(export, 1, tmp_path / "paint.png", (4, 3))
    (export / "frame_000003.json").write_text("[1, 2]")
    with pytest.raises(BadInputError, match="is not an export's sidecar"):
        add_keyframe(export, 3, tmp_path / "paint.png", (4, 3))
    (export / "frame_000003.json").write_text("{broken")
    with pytest.raises(BadInputError, match="is not readable JSON"):
        add_keyframe(export, 3, tmp_path / "paint.png", (4, 3))
