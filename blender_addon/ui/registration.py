"""Register and unregister the add-on's classes and properties (bpy)."""

from __future__ import annotations

import bpy

from ..live import stylise_job, stylise_on_render, train_style_job, training_engine
from . import engine_operators, operators, panel, properties, style_browser, stylise_operators, train_style_operators

_CLASSES = (properties.StylepassSceneSettings, properties.StylepassJobStatus, properties.StylepassPreferences,
            *operators.CLASSES, *stylise_operators.CLASSES, *style_browser.CLASSES, *train_style_operators.CLASSES,
            *engine_operators.CLASSES, *panel.CLASSES)


def register() -> None:
    style_browser.register_icons()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.stylepass = bpy.props.PointerProperty(type=properties.StylepassSceneSettings)
    bpy.types.WindowManager.stylepass_job = bpy.props.PointerProperty(type=properties.StylepassJobStatus)
    bpy.types.WindowManager.stylepass_train = bpy.props.PointerProperty(type=properties.StylepassJobStatus)
    bpy.types.WindowManager.stylepass_engine = bpy.props.PointerProperty(type=properties.StylepassJobStatus)
    stylise_on_render.register()


def unregister() -> None:
    stylise_on_render.unregister()
    stylise_job.stop_workers()
    train_style_job.stop_all()
    training_engine.stop_all()
    del bpy.types.WindowManager.stylepass_engine
    del bpy.types.WindowManager.stylepass_train
    del bpy.types.WindowManager.stylepass_job
    del bpy.types.Scene.stylepass
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    style_browser.unregister_icons()
