"""`python build.py train-preset` and `stylepass train-preset`: one command, two entry points.

build.py takes the options from core/cli/train_preset_command.py (standard library only, so they
work before set-up), runs set-up, then passes its arguments on to `stylepass train-preset`. These
checks are fast: nothing is rendered or trained (the end-to-end run is tests/presets/).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

STYLEPASS = Path(sys.executable).parent / "stylepass"
HELP_ENV = {**os.environ, "COLUMNS": "100"}  # the same line width for both entry points


def options_help(text: str) -> str:
    """The part of a --help text after the usage and description: the arguments and their help."""
    return text[text.index("positional arguments:"):]


def test_stylepass_train_preset_help() -> None:
    done = subprocess.run([str(STYLEPASS), "train-preset", "--help"], capture_output=True, text=True, check=False,
                          env=HELP_ENV, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: stylepass train-preset")
    for option in ("name", "--pairs", "--steps", "--resolution", "--device {cpu,cuda}", "--blender {4.5,5.2}",
                   "--presets-dir"):
        assert option in done.stdout


def test_build_py_train_preset_help_needs_only_the_standard_library(build_module: ModuleType) -> None:
    # The base Python without site-packages: nothing of stylepass (or anything else) is installed there.
    script = build_module.ROOT / "build.py"
    build = subprocess.run([str(build_module.base_python()), "-I", "-S", str(script), "train-preset", "--help"],
                           capture_output=True, text=True, check=False, env=HELP_ENV, timeout=60)
    assert build.returncode == 0, build.stderr
    assert build.stdout.startswith("usage: build.py train-preset")
    stylepass = subprocess.run([str(STYLEPASS), "train-preset", "--help"], capture_output=True, text=True, check=False,
                               env=HELP_ENV, timeout=60)
    assert options_help(build.stdout) == options_help(stylepass.stdout)


def test_build_py_train_preset_sets_up_then_forwards_its_arguments(
        build_module: ModuleType, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    set_up: list[str] = []
    monkeypatch.setattr(build_module, "setup_core_env", lambda: set_up.append("core"))
    monkeypatch.setattr(build_module, "setup_blender_env", lambda target: set_up.append(target.version))
    arguments = ["train-preset", "nope", "--blender", "4.5", "--presets-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["build.py", *arguments])

    code = build_module.main()
    forwarded = capfd.readouterr()
    direct = subprocess.run([str(STYLEPASS), *arguments], capture_output=True, text=True, check=False, timeout=120)

    assert set_up == ["core", "4.5"]  # .venv and the Blender that would render the dataset
    message = f"[build] preset nope: {tmp_path / 'nope' / 'dataset.toml'} not found\n"
    assert (code, forwarded.out) == (direct.returncode, direct.stdout) == (2, message)


def test_a_bad_option_is_refused_before_set_up(build_module: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    set_up: list[str] = []
    monkeypatch.setattr(build_module, "setup_core_env", lambda: set_up.append("core"))
    monkeypatch.setattr(sys, "argv", ["build.py", "train-preset", "toon", "--device", "tpu"])
    with pytest.raises(SystemExit) as exit_info:
        build_module.main()
    assert exit_info.value.code == 2 and not set_up
    assert "build.py train-preset: error: argument --device: invalid choice: 'tpu'" in capsys.readouterr().err
