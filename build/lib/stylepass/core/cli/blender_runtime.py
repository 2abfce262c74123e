"""Find the Blender that runs an export and build its command line (Blender-free).

``--blender 4.5`` or ``5.2`` picks an environment that ``python build.py setup`` made
(``.blender/<version>/``: bpy from PyPI in a venv); anything else is a path to a Blender
executable, started with ``-b --factory-startup`` so that the user's add-ons and
preferences do not change the export.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

SUPPORTED_VERSIONS = ("4.5", "5.2")
DEFAULT_VERSION = "5.2"
ENVS_VARIABLE = "STYLEPASS_BLENDER_ENVS"


class BlenderNotFoundError(RuntimeError):
    """The requested Blender is not installed."""


@dataclass(frozen=True)
class BlenderCommand:
    """A command line that runs a script inside Blender, and its extra environment."""

    argv: list[str]
    env: dict[str, str]
    description: str


def addon_dir() -> Path:
    """The add-on's source folder, found without importing it (its package needs bpy)."""
    spec = find_spec("stylepass.blender_addon")
    if spec is None or not spec.submodule_search_locations:
        raise BlenderNotFoundError("the stylepass.blender_addon package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def envs_root() -> Path:
    """Where ``build.py setup`` puts the bpy environments (``$STYLEPASS_BLENDER_ENVS`` overrides)."""
    if os.environ.get(ENVS_VARIABLE):
        return Path(os.environ[ENVS_VARIABLE])
    return addon_dir().parent / ".blender"


def env_python(version: str) -> Path:
    """The Python of a bpy environment."""
    return envs_root() / version / "bin" / "python"


def installed_versions() -> list[str]:
    """Supported versions whose environment exists."""
    return [v for v in SUPPORTED_VERSIONS if env_python(v).exists()]


def blender_command(choice: str | None, script: Path, script_args: list[str]) -> BlenderCommand:
    """The command running ``script`` with ``script_args`` in the chosen Blender.

    ``choice`` is a supported version, a path to a Blender executable, or None for the
    newest installed environment.
    """
    if choice is None:
        installed = installed_versions()
        choice = DEFAULT_VERSION if DEFAULT_VERSION in installed or not installed else installed[-1]
    if choice in SUPPORTED_VERSIONS:
        python = env_python(choice)
        if not python.exists():
            raise BlenderNotFoundError(f"Blender {choice} is not set up ({python} is missing): "
                                       "run `python build.py setup`")
        user = envs_root() / choice / "user"
        return BlenderCommand([str(python), str(script), "--", *script_args],
                              {"BLENDER_USER_RESOURCES": str(user)}, f"Blender {choice} (bpy)")
    executable = shutil.which(choice) or choice
    if not Path(executable).is_file() or not os.access(executable, os.X_OK):
        raise BlenderNotFoundError(f"--blender {choice}: not {' or '.join(SUPPORTED_VERSIONS)} and not an "
                                   "executable Blender")
    argv = [executable, "-b", "--factory-startup", "--python-exit-code", "1",
            "--python", str(script), "--", *script_args]
    return BlenderCommand(argv, {}, f"Blender at {executable}")
