"""Seeded procedural scenes for training datasets (bpy).

``build_procedural_scene(seed, settings)`` replaces the open file with a scene drawn from
``random.Random(seed)`` alone: primitives and real assets (.gltf/.glb/.blend) standing on a
ground plane, random Principled materials (some driven by noise, voronoi, checker or wave
textures), 0-2 back walls, sun/area/point lights, a plain sky colour and a camera that keeps
every subject inside the frame and in sight (not wholly hidden behind another). The same seed and
settings give the same scene on Blender 4.5 and 5.x; ``describe_scene`` summarises it as JSON-able
data to record and compare.

Layout: subjects stand in a disc around the origin. Walls, when drawn, close the "back" of a
room turned by a random yaw; the camera and the lights stay on the open side of it.

This module draws the parts in a fixed order from the one generator (the order is part of what a
seed means): :mod:`.procedural_settings` (what is drawn from), :mod:`.procedural_subjects`,
:mod:`.procedural_materials`, :mod:`.procedural_room` (ground, walls, lights, sky) and
:mod:`.procedural_camera`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import bpy

from .material_ids import scene_materials
from .procedural_camera import add_camera
from .procedural_materials import MaterialMaker
from .procedural_room import add_ground_and_walls, add_lights, add_sky
from .procedural_settings import KIND_KEY, SCENE_KEY, ProceduralSettings, SceneGenerationError
from .procedural_subjects import add_subject, place_subjects
from .scene_loading import missing_textures, new_empty_scene

__all__ = ["ProceduralSettings", "SceneGenerationError", "build_procedural_scene", "describe_scene",
           "missing_texture_files"]

LOG = logging.getLogger(__name__)
DEFAULT_SETTINGS = ProceduralSettings()  # frozen, so one instance serves every call


def build_procedural_scene(seed: int, settings: ProceduralSettings = DEFAULT_SETTINGS) -> bpy.types.Scene:
    """Replace the open file with a new scene generated from ``seed`` and return it.

    The scene renders with Cycles at ``settings.resolution``, frame 1, through its camera.
    Missing asset textures are logged as warnings (and listed by ``describe_scene``), once per file.
    Raises SceneGenerationError for unusable settings (before the open file is touched) and
    when no camera draw frames every subject in sight.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SceneGenerationError(f"seed must be an integer (got {seed!r})")
    problems = settings.problems()
    if problems:
        raise SceneGenerationError("procedural scene settings: " + "; ".join(problems))
    rng = random.Random(seed)
    scene = new_empty_scene()
    scene.render.resolution_x, scene.render.resolution_y = settings.resolution
    scene.render.resolution_percentage = 100
    scene[SCENE_KEY] = json.dumps({"seed": seed, "settings": asdict(settings)}, sort_keys=True)
    materials = MaterialMaker(rng, settings.texture_probability)
    subjects = [add_subject(scene, rng, settings, materials, index + 1)
                for index in range(rng.randint(settings.min_objects, settings.max_objects))]
    place_subjects(subjects, rng)
    room = add_ground_and_walls(scene, rng, subjects, settings.walls, materials)
    add_lights(scene, rng, room)
    add_sky(scene, rng)
    add_camera(scene, rng, settings, room, [s.meshes for s in subjects])
    scene.frame_set(1)
    for path in missing_texture_files():
        LOG.warning("missing texture %s (rendered without it)", path)
    return scene


def missing_texture_files() -> list[str]:
    """The texture files that the scene's images should come from but that are not there, each
    once (an asset drawn twice has two copies of its images, named differently per version)."""
    return sorted(set(missing_textures().values()))


# Description ------------------------------------------------------------------------------

def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(v), 4) + 0.0 for v in values]  # + 0.0 turns -0.0 into 0.0


def describe_scene(scene: bpy.types.Scene) -> dict[str, Any]:
    """A JSON-able summary of a procedural scene: seed and settings, objects (kind, world
    transform, materials, polygon count), materials, lights, sky, camera and missing texture files.
    Floats are rounded to 1e-4."""
    bpy.context.view_layer.update()
    recipe = json.loads(scene.get(SCENE_KEY, '{"seed": null, "settings": null}'))
    objects = sorted(scene.objects, key=lambda o: o.name)
    return {
        "seed": recipe["seed"],
        "settings": recipe["settings"],
        "resolution": [scene.render.resolution_x, scene.render.resolution_y],
        "objects": [_describe_object(o) for o in objects if o.type in {"MESH", "EMPTY"}],
        "materials": [_describe_material(m) for m in scene_materials(scene)],
        "lights": [_describe_light(o) for o in objects if o.type == "LIGHT"],
        "sky": _describe_sky(scene.world),
        "camera": _describe_camera(scene.camera) if scene.camera else None,
        "missing_textures": missing_texture_files(),
    }


def _describe_transform(obj: bpy.types.Object) -> dict[str, Any]:
    location, rotation, scale = obj.matrix_world.decompose()
    return {"location": _rounded(location), "rotation": _rounded(rotation.to_euler()), "scale": _rounded(scale)}


def _describe_object(obj: bpy.types.Object) -> dict[str, Any]:
    summary = {"name": obj.name, "kind": obj.get(KIND_KEY, obj.type.lower()),
               "parent": obj.parent.name if obj.parent else None, **_describe_transform(obj)}
    if obj.type == "MESH":
        summary["polygons"] = len(obj.data.polygons)
        summary["dimensions"] = _rounded(obj.dimensions)
        summary["materials"] = [slot.material.name if slot.material else None for slot in obj.material_slots]
    return summary


def _describe_material(material: bpy.types.Material) -> dict[str, Any]:
    summary: dict[str, Any] = {"name": material.name}
    if material.node_tree is None:
        return summary
    nodes = material.node_tree.nodes
    summary["textures"] = sorted(n.type.lower() for n in nodes if n.type.startswith("TEX_"))
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is not None:
        summary["base_color"] = _rounded(bsdf.inputs["Base Color"].default_value)
        summary["roughness"] = round(bsdf.inputs["Roughness"].default_value, 4)
        summary["metallic"] = round(bsdf.inputs["Metallic"].default_value, 4)
        summary["driven"] = sorted(s.name for s in bsdf.inputs if s.is_linked)
    return summary


def _describe_light(obj: bpy.types.Object) -> dict[str, Any]:
    light = obj.data
    summary = {"name": obj.name, "kind": light.type.lower(), "energy": round(light.energy, 4),
               "color": _rounded(light.color), **_describe_transform(obj)}
    if light.type == "AREA":
        summary["size"] = round(light.size, 4)
    if light.type == "SUN":
        summary["angle"] = round(light.angle, 4)
    return summary


def _describe_sky(world: bpy.types.World | None) -> dict[str, Any] | None:
    if world is None or world.node_tree is None:
        return None
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    return {"color": _rounded(background.inputs["Color"].default_value),
            "strength": round(background.inputs["Strength"].default_value, 4)}


def _describe_camera(obj: bpy.types.Object) -> dict[str, Any]:
    camera = obj.data
    return {"name": obj.name, "lens": round(camera.lens, 4), "sensor_width": round(camera.sensor_width, 4),
            "clip": _rounded((camera.clip_start, camera.clip_end)), **_describe_transform(obj)}
