"""Painted keyframes: an artist's paintings over exported frames, registered as targets
(Blender-free; the panel and the ``stylepass keyframe`` CLI are thin layers over it).

A painting is copied into ``EXPORT/keyframes/keyframe_NNNNNN.<ext>``. The artist's file is
never changed, and a registered painting is never overwritten: replacing one moves the
old copy to ``keyframes/replaced/``. The export folder then holds ``pairs.jsonl`` and
``dataset.json``, so it is a dataset that ``stylepass train`` reads, with every painted
frame in the training split.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic_files import copy_file_atomic, write_bytes_atomic, write_json_atomic
from .dataset_layout import IDENTITY_NAME, PAIRS_NAME
from .export_format import frame_stem
from .headless_protocol import BadInputError

KEYFRAMES_DIR = "keyframes"
REPLACED_DIR = "replaced"
PAINTING_SUFFIXES = (".png", ".exr", ".jpg", ".jpeg", ".tif", ".tiff")
_KEYFRAME_NAME = re.compile(r"^keyframe_(\d{6})(\.[a-z]+)$")


@dataclass(frozen=True)
class Keyframe:
    """A registered painting."""

    frame: int
    painting: Path  # the copy inside the export folder


def _sidecar(export_dir: Path, frame: int) -> dict:
    path = export_dir / f"{frame_stem(frame)}.json"
    try:
        sidecar = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BadInputError(f"frame {frame} is not exported in {export_dir}: export it first "
                            "(Stylepass > Export G-buffers, or `stylepass export`)") from exc
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path} is not readable JSON ({exc}): export frame {frame} again") from exc
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("resolution"), list):
        raise BadInputError(f"{path} is not an export's sidecar (no resolution): export frame {frame} again")
    return sidecar


def list_keyframes(export_dir: Path) -> list[Keyframe]:
    """Registered keyframes of an export folder, by frame."""
    folder = Path(export_dir) / KEYFRAMES_DIR
    found = []
    for path in sorted(folder.glob("keyframe_*")) if folder.is_dir() else []:
        match = _KEYFRAME_NAME.match(path.name)
        if match:
            found.append(Keyframe(int(match.group(1)), path))
    return found


def add_keyframe(export_dir: Path, frame: int, painting: Path, painting_size: tuple[int, int],
                 replace: bool = False) -> Keyframe:
    """Register ``painting`` (of ``painting_size`` = (width, height)) as the target of ``frame``.

    Raises:
        BadInputError: the frame is not exported, the painting is missing, of another type
            or size, or the frame has a painting already and ``replace`` is False.
    """
    export_dir, painting = Path(export_dir), Path(painting)
    sidecar = _sidecar(export_dir, frame)
    if not painting.is_file():
        raise BadInputError(f"painting not found: {painting}")
    suffix = painting.suffix.lower()
    if suffix not in PAINTING_SUFFIXES:
        raise BadInputError(f"{painting}: paintings must be {', '.join(PAINTING_SUFFIXES)}")
    width, height = sidecar["resolution"]
    if tuple(painting_size) != (width, height):
        raise BadInputError(f"{painting} is {painting_size[0]}x{painting_size[1]} but frame {frame} was rendered at "
                            f"{width}x{height}: paint over an image of the render's size")
    existing = [k for k in list_keyframes(export_dir) if k.frame == frame]
    if existing and not replace:
        raise BadInputError(f"frame {frame} has a painting already ({existing[0].painting}); replace it explicitly "
                            "(`stylepass keyframe add ... --replace`, or Replace in Blender's Add painted keyframe): "
                            "the old one is kept in keyframes/replaced/")
    for old in existing:
        keep_aside(old.painting)
    copy = export_dir / KEYFRAMES_DIR / f"keyframe_{frame:06d}{suffix}"
    copy_file_atomic(painting, copy)
    write_pairs(export_dir)
    return Keyframe(frame, copy)


def remove_keyframe(export_dir: Path, frame: int) -> Path:
    """Unregister ``frame``'s painting; the copy moves to keyframes/replaced/ (nothing is deleted)."""
    export_dir = Path(export_dir)
    matches = [k for k in list_keyframes(export_dir) if k.frame == frame]
    if not matches:
        raise BadInputError(f"frame {frame} has no painted keyframe in {export_dir}")
    keep = keep_aside(matches[0].painting)
    write_pairs(export_dir)
    return keep


def keep_aside(painting: Path) -> Path:
    """Move a registered painting to keyframes/replaced/ under a name no earlier painting has
    (``<stem>-<date>-<time>[-N]<suffix>``); never overwrites. Returns where it went."""
    folder = painting.parent / REPLACED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in itertools.count(1):
        keep = folder / f"{painting.stem}-{stamp}{'' if attempt == 1 else f'-{attempt}'}{painting.suffix}"
        try:
            os.link(painting, keep)  # fails if `keep` exists: an earlier painting is never replaced
        except FileExistsError:
            continue
        painting.unlink()
        return keep
    raise AssertionError("unreachable")


def write_pairs(export_dir: Path) -> None:
    """Rewrite the export folder's pairs.jsonl and dataset.json from its registered keyframes."""
    rows = []
    for keyframe in list_keyframes(export_dir):
        sidecar = _sidecar(export_dir, keyframe.frame)
        rows.append({"input": f"{frame_stem(keyframe.frame)}.exr",
                     "target": f"{KEYFRAMES_DIR}/{keyframe.painting.name}",
                     "split": "train", "scene": sidecar.get("scene", "scene"), "frame": keyframe.frame})
    write_bytes_atomic(export_dir / PAIRS_NAME, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    if not (export_dir / IDENTITY_NAME).exists():
        write_json_atomic(export_dir / IDENTITY_NAME, {"keyframes": True, "recipe": {"target": {"kind": "painted"}}})
