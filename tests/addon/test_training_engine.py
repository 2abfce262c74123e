"""Install training engine in Blender: it refuses while online access is off and touches nothing;
Train style finds an installed engine."""

from __future__ import annotations

import importlib

import bpy
import pytest

from .conftest import EXTENSION


def test_install_refuses_without_online_access(addon):
    job = importlib.import_module(f"{EXTENSION}.live.stylise_job")
    system = bpy.context.preferences.system
    before = system.use_online_access
    system.use_online_access = False
    try:
        assert not bpy.app.online_access
        with pytest.raises(RuntimeError, match="Allow Online Access is off"):
            bpy.ops.stylepass.install_training_engine()
    finally:
        system.use_online_access = before
    assert bpy.context.window_manager.stylepass_engine.state == "FAILED"
    assert not job.engine_folder().exists() and not job.engine_folder().with_name("training_engine.partial").exists()


def test_train_style_uses_an_installed_engine(addon, tmp_path, monkeypatch):
    job = importlib.import_module(f"{EXTENSION}.live.stylise_job")
    engine = importlib.import_module(f"{EXTENSION}.live.training_engine")
    folder = tmp_path / "training_engine"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").write_text("")
    monkeypatch.setattr(job, "engine_folder", lambda: folder)
    assert job.training_python() != folder / "bin" / "python", "no marker yet: not an engine"
    (folder / engine.MARKER).write_text("{}")
    assert job.training_python() == folder / "bin" / "python"
