"""The scene's Stylepass settings, shown in the panel (bpy)."""

from __future__ import annotations

import bpy


class StylepassSceneSettings(bpy.types.PropertyGroup):
    """Per-scene settings: ``scene.stylepass``."""

    output_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Export folder",
        description="Folder for G-buffer exports (EXR + JSON per frame); // is relative to the .blend",
        default="//stylepass_export/",
        subtype="DIR_PATH",
        options={"PATH_SUPPORTS_BLEND_RELATIVE"},
    )
