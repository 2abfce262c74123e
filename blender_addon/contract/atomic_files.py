"""Atomic file writes and the append-only manifest (Blender-free).

Every file of an export is first written under a temporary name in its final folder,
flushed to disk, then renamed into place, so a killed job never leaves a file that looks
finished but is not. Temporary names start with ``.`` and end with ``.partial``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"


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


def commit(temp: Path, final: Path) -> None:
    """Flush ``temp`` and rename it onto ``final`` (atomic on one filesystem)."""
    fsync_file(temp)
    os.replace(temp, final)


def write_bytes_atomic(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""
    temp = temp_path_for(final)
    try:
        temp.write_bytes(data)
        commit(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def copy_file_atomic(source: Path, final: Path, link: bool = False) -> None:
    """Copy ``source`` to ``final`` atomically; with ``link``, hard-link when the filesystem allows."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(final)
    try:
        try:
            if not link:
                raise OSError("copy asked for")
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        commit(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_json_atomic(final: Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON to ``final`` atomically."""
    write_bytes_atomic(final, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one JSON line to ``path`` with a single ``write`` on an O_APPEND descriptor.

    Farm tasks sharing an export folder append to the same manifest; one small write per
    line keeps their lines whole on local and POSIX network filesystems.
    """
    line = (json.dumps(obj, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping a torn last line left by a killed writer."""
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
