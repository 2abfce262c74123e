"""Register and unregister the add-on's classes and properties (bpy)."""

from __future__ import annotations

import bpy

from . import operators, panel, properties

_CLASSES = (properties.StylepassSceneSettings, *operators.CLASSES, *panel.CLASSES)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.stylepass = bpy.props.PointerProperty(type=properties.StylepassSceneSettings)


def unregister() -> None:
    del bpy.types.Scene.stylepass
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
