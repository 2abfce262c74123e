"""Fixtures for add-on tests. These run inside a bpy environment (`build.py test` runs
them once per supported Blender), with the add-on installed there as a user extension."""

from __future__ import annotations

import importlib
from types import ModuleType

import bpy  # first: it makes Blender's own modules (addon_utils) importable
import pytest

import addon_utils  # isort: skip - importable only once bpy is imported

EXTENSION = "bl_ext.user_default.stylepass"


@pytest.fixture(scope="session")
def addon() -> ModuleType:
    """The installed extension, enabled for the session and disabled after it."""
    bpy.ops.preferences.addon_enable(module=EXTENSION)
    for submodule in ("blender_compat", "ui.panel", "scene.passes", "scene.scene_loading"):
        importlib.import_module(f"{EXTENSION}.{submodule}")
    yield importlib.import_module(EXTENSION)
    bpy.ops.preferences.addon_disable(module=EXTENSION)


@pytest.fixture
def demo_scene(addon: ModuleType) -> bpy.types.Scene:
    """The built-in demo scene (Cycles, four materials, a camera), freshly built."""
    scene = addon.scene.scene_loading.build_demo_scene()
    assert addon_utils.check(EXTENSION)[1], "loading the scene must keep the add-on enabled"
    return scene


@pytest.fixture
def view_layer(demo_scene: bpy.types.Scene) -> bpy.types.ViewLayer:
    return bpy.context.view_layer
