"""The training engine: a Python environment with torch and Stylepass's training code, installed on
request from the add-on preferences, for Train style (Blender-free: standard library only).

The extension stylises with ONNX Runtime and needs no torch; training does. The install:

1. makes a venv with Blender's own Python in ``<folder>.partial``;
2. installs torch into it (``torch==2.13.0``: the CPU build from the PyTorch index, or the CUDA
   build from PyPI; ``STYLEPASS_TORCH`` and ``STYLEPASS_TORCH_INDEX`` override the requirement
   and the index, an empty index meaning pip's own configuration);
3. installs Stylepass (the wheel the extension carries in ``engine/``, or a source checkout);
4. checks that the training code imports, writes a marker, and renames the folder into place.

A failure, a cancel or a crash leaves no half-made engine: the ``.partial`` folder is removed (a
leftover one is removed by the next install) and only a folder with the marker counts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..contract.headless_protocol import JobCancelled, JobError
from .child_output import ChildOutput

MARKER = "stylepass-engine.json"  # written last: only a folder with it is an engine
TORCH_ENV, INDEX_ENV = "STYLEPASS_TORCH", "STYLEPASS_TORCH_INDEX"
ENGINE_WHEELS = "engine"  # the extension's folder with Stylepass's own wheel


@dataclass(frozen=True)
class TorchBuild:
    """A torch build to install: the index it comes from (None: pip's own) and its download size."""

    label: str
    index_url: str | None
    download_mb: int  # torch and its dependencies, about


BUILDS = {
    "cpu": TorchBuild("CPU", "https://download.pytorch.org/whl/cpu", 400),
    # PyPI's torch is CPU-only on Windows: the CUDA build comes from the PyTorch index everywhere
    "cuda": TorchBuild("NVIDIA CUDA", "https://download.pytorch.org/whl/cu130", 3500),
}
# What the last step checks: the training code imports, and the torch build is the one asked for.
CHECKS = {"cpu": "import torch, stylepass.training.loop.train_style",
          "cuda": "import torch, stylepass.training.loop.train_style; assert torch.version.cuda, 'not a CUDA build'"}
TORCH_REQUIREMENT = "torch==2.13.0"  # the version Stylepass is tested with


@dataclass(frozen=True)
class InstallProgress:
    """``done`` of ``total`` steps and what is happening now."""

    done: int
    total: int
    message: str


def engine_python(folder: Path) -> Path | None:
    """The engine's Python, if a complete engine is installed in `folder`."""
    if not (folder / MARKER).is_file():
        return None
    for candidate in (folder / "bin" / "python", folder / "Scripts" / "python.exe"):
        if candidate.is_file():
            return candidate
    return None


def stylepass_source(addon_dir: Path) -> Path:
    """What pip installs Stylepass's training code from: the extension's wheel, else the checkout."""
    wheels = sorted((addon_dir / ENGINE_WHEELS).glob("stylepass-*.whl"))
    if wheels:
        return wheels[-1]
    checkout = Path(os.path.realpath(addon_dir)).parent
    if (checkout / "pyproject.toml").is_file():
        return checkout
    raise JobError(f"{addon_dir} carries no Stylepass wheel in {ENGINE_WHEELS}/: reinstall the extension from its zip")


class EngineInstall:
    """One install of the engine into `folder`, driven step by step by :meth:`steps`."""

    def __init__(self, folder: Path, build: str, addon_dir: Path, base_python: Path | None = None) -> None:
        if build not in BUILDS:
            raise JobError(f"unknown torch build {build!r}; builds: {', '.join(BUILDS)}")
        self.folder = Path(folder)
        self.partial = self.folder.with_name(self.folder.name + ".partial")
        self.build = BUILDS[build]
        self.check = CHECKS[build]
        self.source = stylepass_source(addon_dir)
        self.base_python = Path(base_python or sys.executable)
        self._process: subprocess.Popen[str] | None = None
        self._cancelled = False

    def commands(self) -> list[tuple[str, list[str]]]:
        """(what it does, command line) of each step, in order."""
        python = str(self.partial / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
        index = os.environ.get(INDEX_ENV, self.build.index_url or "")
        torch_source = ["--index-url", index] if index else []
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
        return [
            ("making the environment", [str(self.base_python), "-m", "venv", str(self.partial)]),
            (f"downloading torch ({self.build.label}, about {self.build.download_mb} MB)",
             [*pip, *torch_source, os.environ.get(TORCH_ENV) or TORCH_REQUIREMENT]),
            ("installing Stylepass's training code", [*pip, str(self.source)]),
            ("checking the engine", [python, "-c", self.check]),
        ]

    def cancel(self) -> None:
        """Stop after the current command (it is terminated); nothing is left installed."""
        self._cancelled = True
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def steps(self) -> Iterator[InstallProgress]:
        """Yields progress while a command runs (never blocks); returns when the engine is in place.

        Raises JobError (a command failed: its last output lines), JobCancelled.
        """
        commands = self.commands()
        total = len(commands) + 1
        _running.add(self)
        shutil.rmtree(self.partial, ignore_errors=True)  # a crashed install's leftovers
        try:
            for done, (what, argv) in enumerate(commands):
                self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                                 errors="replace", env={**os.environ, "PIP_NO_INPUT": "1"})
                output = ChildOutput(self._process, lambda line: {"line": line})
                while self._process.poll() is None:
                    yield InstallProgress(done, total, what)
                output.join(timeout=5)
                if self._cancelled:
                    raise JobCancelled
                if self._process.returncode != 0:
                    lines = [m["line"] for m in _drain(output)][-6:] + list(output.stderr_tail)[-12:]
                    raise JobError(f"installing the training engine failed while {what} (exit code "
                                   f"{self._process.returncode}); nothing was installed:\n" + "\n".join(lines))
            (self.partial / MARKER).write_text(json.dumps({"torch": self.build.label, "source": str(self.source)}))
            replace_folder(self.partial, self.folder)
            yield InstallProgress(total, total, f"training engine installed in {self.folder}")
        finally:
            _running.discard(self)
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            shutil.rmtree(self.partial, ignore_errors=True)


_running: set[EngineInstall] = set()


def stop_all() -> None:
    """Cancel every install in progress (on unregister): pip is stopped; each install removes its
    ``.partial`` folder when its steps end."""
    for install in list(_running):
        install.cancel()


def replace_folder(new: Path, folder: Path) -> None:
    """Put `new` in place of `folder`: the old one is renamed aside first and deleted only once the
    new one is in place, so `folder` is at every moment a whole engine or absent."""
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def _drain(output: ChildOutput) -> list[dict[str, str]]:
    lines = []
    while not output.messages.empty():
        lines.append(output.messages.get_nowait())
    return lines
