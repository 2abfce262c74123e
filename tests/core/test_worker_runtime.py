"""Where the add-on's stylise worker runs (Blender-free part): the extension's own runtime in
Blender's Python, and a clear refusal when the zip has no ONNX Runtime for this Python."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from stylepass.blender_addon.contract.headless_protocol import BadInputError
from stylepass.blender_addon.live import worker_runtime


def extension(tmp_path: Path) -> Path:
    """An installed extension's folder: the worker's code in runtime/, wheels, presets."""
    addon = tmp_path / "stylepass"
    (addon / "runtime" / "stylepass" / "core" / "inference").mkdir(parents=True)
    (addon / "runtime" / "stylepass" / "core" / "inference" / "worker.py").write_text("")
    (addon / "wheels").mkdir()
    for name in ("onnxruntime-1.32.0-cp311-cp311-win_amd64.whl", "onnxruntime-1.32.0-cp313-cp313-win_amd64.whl"):
        (addon / "wheels" / name).write_text("")
    (addon / "presets" / "toon" / "model").mkdir(parents=True)
    (addon / "presets" / "toon" / "model" / "model.onnx").write_text("")
    (addon / "presets" / "empty").mkdir()
    return addon


def test_the_extension_runs_its_worker_in_blenders_python(tmp_path):
    addon = extension(tmp_path)
    sys_path = ["/blender/scripts/modules", "/blender/python/lib/python3.11/site-packages",
                "/user/extensions/.local/lib/python3.11/site-packages"]
    runtime = worker_runtime.bundled_runtime(addon, "/blender/python/bin/python3.11", sys_path)
    assert runtime is not None and runtime.python == Path("/blender/python/bin/python3.11")
    assert runtime.env["PYTHONPATH"].split(os.pathsep) == [str(addon / "runtime"), *sys_path[1:]]
    assert runtime.env["STYLEPASS_PRESETS"] == str(addon / "presets")
    assert worker_runtime.available_presets(worker_runtime.presets_folder(addon)) == [addon / "presets" / "toon"]
    assert worker_runtime.bundled_runtime(tmp_path / "source_checkout", "/python", sys_path) is None


def test_a_zip_without_onnxruntime_for_this_python_says_which_it_has(tmp_path, monkeypatch):
    addon = extension(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(BadInputError) as error:
        worker_runtime.bundled_runtime(addon, "/python", [])
    message = str(error.value)
    assert "has no ONNX Runtime for Python 3." in message
    assert "(its wheels: cp311-win_amd64, cp313-win_amd64)" in message
    assert "install the zip for this platform" in message and "work without it" in message
