"""What an export folder's frames were rendered with, so that a re-run with other settings never
keeps frames made from something else (Blender-free: standard library only).

The export job writes ``export_settings.json`` into its folder before its first frame: the scene
(its path and, for a file, the digest of its bytes), the engine, the output size, the samples
and the seed. A later run into the same folder (a resume, or another shard of the same job) must
have the same settings; with others it is refused with exit 2, naming what differs, and nothing
in the folder is touched.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .atomic_files import write_json_atomic
from .headless_protocol import BadInputError

SETTINGS_NAME = "export_settings.json"


def scene_identity(scene: str) -> dict[str, str]:
    """The scene an export comes from: its path, and the sha256 of the file's bytes ("demo": none)."""
    path = Path(scene)
    if not path.is_file():
        return {"scene": scene}
    with path.open("rb") as handle:
        return {"scene": str(path.resolve()), "scene_sha256": hashlib.file_digest(handle, "sha256").hexdigest()}


def check_or_record(out_dir: Path, settings: dict[str, Any]) -> None:
    """Record `settings` in `out_dir`, or check them against the ones recorded there.

    Raises BadInputError naming each setting that differs, when the folder's frames were
    exported with others.
    """
    path = Path(out_dir) / SETTINGS_NAME
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, settings)
        return
    except ValueError as error:
        raise BadInputError(f"{path} is damaged ({error}): export into another folder, or remove the folder's "
                            "frames and that file to start over") from None
    if not isinstance(recorded, dict):
        recorded = {}
    differences = [f"{key} {recorded.get(key)!r} -> {settings.get(key)!r}"
                   for key in sorted(set(recorded) | set(settings)) if recorded.get(key) != settings.get(key)]
    if differences:
        raise BadInputError(f"{out_dir} holds frames exported with other settings ({'; '.join(differences)}): "
                            "export into another folder, or remove this one to start over; its frames are kept")
