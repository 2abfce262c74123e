"""Atomic file and folder writes, and the append-only JSON-lines files (Blender-free).

Every file Stylepass writes (exports, datasets, models, checkpoints, reports, images) goes
through :func:`write_atomic`: it is written under a temporary name in its final folder,
flushed to disk, then renamed into place, so a killed job never leaves a file that looks
finished but is not. A folder that must appear whole (a checkpoint, a model dir) is built in a
temporary folder beside it, flushed, then renamed into place (:func:`write_folder_atomic`).
Temporary names start with ``.`` and end with ``.partial``.

Standard library only (the add-on uses it inside Blender): writers that need torch, Pillow,
safetensors, OpenEXR or bpy are passed in as a callback that writes the path it is given.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

PARTIAL_SUFFIX = ".partial"

T = TypeVar("T")


def temp_path_for(final: Path) -> Path:
    """A temporary sibling of ``final``, unique to this host and process.

    The name keeps ``final``'s extension before ``.partial`` so tools that pick a format
    by extension (Blender's image writer) still see it.
    """
    tag = f"{socket.gethostname()}-{os.getpid()}"
    return final.with_name(f".{final.stem}.{tag}{final.suffix}{PARTIAL_SUFFIX}")


def partials_of(final: Path) -> list[Path]:
    """Leftover temporary files of ``final`` from any earlier (killed) writer."""
    return sorted(final.parent.glob(f".{final.stem}.*{final.suffix}{PARTIAL_SUFFIX}"))


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(final: Path, write: Callable[[Path], T]) -> T:
    """Write the file ``final`` atomically with ``write``; returns what ``write`` returned.

    ``write(temp)`` writes the whole file at :func:`temp_path_for` ``(final)``; that file is
    then flushed to disk and renamed onto ``final`` (atomic on one filesystem). On any error
    (or Ctrl-C) the temporary file is removed and an older ``final`` is left as it was.
    ``final``'s folder is created if needed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(final)
    try:
        result = write(temp)
        fsync_file(temp)
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return result


def write_folder_atomic(final: Path, build: Callable[[Path], T]) -> T:
    """Build the folder ``final`` atomically with ``build``; returns what ``build`` returned.

    ``build(temp)`` fills an empty temporary folder beside ``final`` (named like
    :func:`temp_path_for`); its files are then flushed to disk and the folder renamed onto
    ``final``. An older ``final`` is renamed aside first and removed after, so ``final`` is
    always either the old folder or the new one, whole. On any error (or Ctrl-C) the temporary
    folder is removed and an older ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(final)
    shutil.rmtree(temp, ignore_errors=True)  # left by an earlier process with this pid
    temp.mkdir()
    try:
        result = build(temp)
        for path in sorted(temp.rglob("*")):
            if path.is_file():
                fsync_file(path)
        _rename_folder_onto(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return result


def _rename_folder_onto(temp: Path, final: Path) -> None:
    """Rename the folder ``temp`` to ``final``, replacing an existing ``final`` with two renames."""
    if not final.exists():
        os.replace(temp, final)
        return
    old = temp.with_name(temp.name.removesuffix(PARTIAL_SUFFIX) + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(final, old)
    try:
        os.replace(temp, final)
    except BaseException:
        os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_bytes_atomic(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""
    write_atomic(final, lambda temp: temp.write_bytes(data))


def copy_file_atomic(source: Path, final: Path, link: bool = False) -> None:
    """Copy ``source`` to ``final`` atomically; with ``link``, hard-link when the filesystem allows."""

    def copy(temp: Path) -> None:
        if link:
            try:
                os.link(source, temp)
                return
            except OSError:
                pass
        shutil.copyfile(source, temp)

    write_atomic(final, copy)


def write_json_atomic(final: Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON (keys sorted, ending in a newline) to ``final`` atomically."""
    write_bytes_atomic(final, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one JSON line to ``path`` with a single ``write`` on an O_APPEND descriptor.

    Farm tasks sharing an export folder append to the same manifest; one small write per
    line keeps their lines whole on local and POSIX network filesystems. When the file ends in a
    line a killed writer left without its newline (a torn fragment, never ending in ``}``), the new
    line starts on a line of its own, so it is never glued to the fragment; readers skip fragments.
    """
    line = (json.dumps(obj, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def is_torn_fragment(line: str) -> bool:
    """Whether a JSON line that does not parse is what a killed writer left: the start of an object
    that never reached its closing ``}`` (see :func:`append_jsonl`)."""
    stripped = line.strip()
    return stripped.startswith("{") and not stripped.endswith("}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping every line that is not JSON (torn lines of killed writers among
    them; :func:`~.dataset_layout.read_pairs` is the strict reader that refuses other damage)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
