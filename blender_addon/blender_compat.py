"""Differences between Blender 4.5 LTS and 5.x that the add-on must bridge (bpy).

See ../shared/notes/blender.md for what was checked on each version.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy

_EEVEE_IDS = ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE")  # 4.2-4.5, then 5.x


def available_engines() -> list[str]:
    """Render engine ids this Blender offers."""
    prop = bpy.types.RenderSettings.bl_rna.properties["engine"]
    return [item.identifier for item in prop.enum_items]


def eevee_engine_id() -> str:
    """Eevee's engine id in this Blender (``BLENDER_EEVEE_NEXT`` in 4.5, ``BLENDER_EEVEE`` in 5.x)."""
    engines = available_engines()
    for engine in _EEVEE_IDS:
        if engine in engines:
            return engine
    raise RuntimeError(f"this Blender has no Eevee engine (engines: {', '.join(engines)})")


def engine_family(engine: str) -> str | None:
    """``"cycles"``, ``"eevee"``, or None for engines that cannot give G-buffers (Workbench)."""
    if engine == "CYCLES":
        return "cycles"
    if engine in _EEVEE_IDS:
        return "eevee"
    return None


def render_samples(scene: bpy.types.Scene) -> int:
    """Samples per pixel of the final render for Cycles or Eevee."""
    if scene.render.engine == "CYCLES":
        return int(scene.cycles.samples)
    return int(scene.eevee.taa_render_samples)


def set_render_samples(scene: bpy.types.Scene, samples: int) -> None:
    """Set the final render's samples per pixel for Cycles or Eevee."""
    if scene.render.engine == "CYCLES":
        scene.cycles.samples = samples
    else:
        scene.eevee.taa_render_samples = samples


@contextmanager
def multilayer_exr_output(scene: bpy.types.Scene) -> Iterator[None]:
    """Temporarily set the scene's output to multilayer EXR (half colour, lossless ZIP).

    Blender keeps data passes (depth, normal, vectors, Cryptomatte) in full float even in
    half mode. 5.x needs ``media_type`` set before the file format. The user's settings are
    restored afterwards.
    """
    settings = scene.render.image_settings
    has_media_type = hasattr(settings, "media_type")
    saved = {
        "media_type": settings.media_type if has_media_type else None,
        "file_format": settings.file_format,
        "color_depth": settings.color_depth,
        "exr_codec": settings.exr_codec,
    }
    try:
        if has_media_type:
            settings.media_type = "MULTI_LAYER_IMAGE"
        settings.file_format = "OPEN_EXR_MULTILAYER"
        settings.color_depth = "16"
        settings.exr_codec = "ZIP"
        yield
    finally:
        if has_media_type:
            settings.media_type = saved["media_type"]
        settings.file_format = saved["file_format"]
        if saved["color_depth"] in _enum_items(settings, "color_depth"):
            settings.color_depth = saved["color_depth"]
        if saved["exr_codec"] in _enum_items(settings, "exr_codec"):
            settings.exr_codec = saved["exr_codec"]


def _enum_items(owner: bpy.types.bpy_struct, prop: str) -> set[str]:
    return {item.identifier for item in owner.bl_rna.properties[prop].enum_items}
