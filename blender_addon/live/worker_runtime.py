"""Which Python runs the stylise worker, and with what on its path (Blender-free: standard library only).

Three places, first found wins:

1. **The Python chosen in the add-on preferences** (a developer's ``.venv``, or the training
   engine the user installed): it has stylepass itself installed.
2. **The extension's own runtime** (the zip from ``build.py package``): Blender's own Python
   (``sys.executable`` inside Blender) with the extension's ``runtime/`` folder (the worker's
   code) and Blender's ``site-packages`` folders on ``PYTHONPATH``; among them the one where
   Blender installed the extension's wheels (onnxruntime, OpenEXR, Pillow). The presets are the
   ones in the zip (``STYLEPASS_PRESETS``). Nothing to configure.
3. **The repository's ``.venv``**, when the add-on runs from a source checkout (a link to
   ``blender_addon/``) and ``build.py setup`` made it.

The worker is always a separate process: Blender's process never imports onnxruntime or torch.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..contract.headless_protocol import BadInputError
from ..contract.worker_protocol import PRESETS_ENV, has_model

RUNTIME_FOLDER = "runtime"  # the worker's code inside the extension
PRESETS_FOLDER = "presets"  # the presets inside the extension


@dataclass(frozen=True)
class WorkerRuntime:
    """A Python to start the worker in and the environment it needs (on top of Blender's own)."""

    python: Path
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""  # for people: "Blender's Python with the extension's ONNX Runtime"

    @property
    def key(self) -> str:
        """Tells runtimes apart (one running worker per runtime)."""
        return "\0".join([str(self.python), *(f"{k}={v}" for k, v in sorted(self.env.items()))])


def bundled_runtime(addon_dir: Path, python: str, sys_path: Sequence[str]) -> WorkerRuntime | None:
    """The extension's own runtime (see the module docstring), or None when `addon_dir` has none.

    python: Blender's ``sys.executable``; sys_path: Blender's ``sys.path`` (its site-packages
    folders go on the worker's ``PYTHONPATH``: Blender's numpy and the extension's wheels).
    """
    runtime = addon_dir / RUNTIME_FOLDER
    if not (runtime / "stylepass" / "core" / "inference" / "worker.py").is_file():
        return None
    if importlib.util.find_spec("onnxruntime") is None:  # looked up, not imported
        raise BadInputError(missing_wheels_message(addon_dir))
    packages = [entry for entry in sys_path if Path(entry).name in ("site-packages", "dist-packages")]
    return WorkerRuntime(
        Path(python),
        {"PYTHONPATH": os.pathsep.join([str(runtime), *packages]), PRESETS_ENV: str(addon_dir / PRESETS_FOLDER),
         "PYTHONNOUSERSITE": "1"},
        "Blender's Python with the extension's ONNX Runtime",
    )


def missing_wheels_message(addon_dir: Path) -> str:
    """Why the extension's runtime cannot run here: which Pythons and platforms its wheels are for,
    and what works without them."""
    tags = sorted({"-".join(wheel.name.split("-")[2:5:2]).removesuffix(".whl")
                   for wheel in (addon_dir / "wheels").glob("onnxruntime-*.whl")})
    here = f"Python {sys.version_info.major}.{sys.version_info.minor} on {sys.platform} {platform.machine()}"
    return (f"this Stylepass extension has no ONNX Runtime for {here} (its wheels: {', '.join(tags) or 'none'}): "
            "install the zip for this platform, or set a Python with stylepass in Preferences > Add-ons > Stylepass. "
            "Set up passes, Export G-buffers and painted keyframes work without it")


def repository_runtime(addon_dir: Path) -> WorkerRuntime | None:
    """The repository's ``.venv`` Python when the add-on is a link into a source checkout, else None."""
    root = Path(os.path.realpath(addon_dir)).parent
    for candidate in (root / ".venv" / "bin" / "python", root / ".venv" / "Scripts" / "python.exe"):
        if candidate.is_file():
            return WorkerRuntime(candidate, {PRESETS_ENV: str(root / PRESETS_FOLDER)},
                                 f"the repository's core Python ({candidate})")
    return None


def presets_folder(addon_dir: Path) -> Path | None:
    """The presets the worker sees by default: the extension's own, else the source checkout's."""
    for candidate in (addon_dir / PRESETS_FOLDER, Path(os.path.realpath(addon_dir)).parent / PRESETS_FOLDER):
        if candidate.is_dir():
            return candidate
    return None


def available_presets(folder: Path) -> list[Path]:
    """The preset folders in `folder` that hold a model (model.onnx, or model.safetensors + config.json)."""
    return sorted(preset for preset in folder.iterdir() if preset.is_dir() and has_model(preset / "model"))
