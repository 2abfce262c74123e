"""Load what ``stylepass export`` is pointed at into Blender (bpy).

- ``.blend``: opened as it is.
- ``.gltf``/``.glb``: imported into an empty scene; its first camera is used if it has one,
  else a camera is framed on the asset's bounds; a sun and a grey sky light it.
- ``demo``: the built-in demo scene (a few primitives with distinct materials).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import bpy
from mathutils import Vector

from ..contract.headless_protocol import BadInputError

DEMO_SCENE = "demo"


class SceneLoadError(BadInputError):
    """The scene file is missing, of an unknown kind, or fails to load."""


def load_scene(source: str) -> tuple[bpy.types.Scene, list[str]]:
    """Load ``source`` and return the scene to export plus warnings for the user."""
    if source == DEMO_SCENE:
        return build_demo_scene(), []
    path = Path(source)
    if not path.is_file():
        raise SceneLoadError(f"scene file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".blend":
        try:
            bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
        except RuntimeError as exc:
            raise SceneLoadError(f"cannot open {path}: {exc}") from exc
        return bpy.context.scene, missing_texture_warnings()
    if suffix in (".gltf", ".glb"):
        return import_gltf_scene(path), missing_texture_warnings()
    raise SceneLoadError(f"{path}: expected a .blend, .gltf or .glb file (or '{DEMO_SCENE}')")


def new_empty_scene() -> bpy.types.Scene:
    """Replace the open file with an empty factory scene (Cycles, frame 1 only)."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.frame_start = scene.frame_end = 1
    scene.render.engine = "CYCLES"
    return scene


def import_gltf_scene(path: Path) -> bpy.types.Scene:
    """Import a glTF asset into a fresh scene with a camera and lights."""
    scene = new_empty_scene()
    try:
        bpy.ops.import_scene.gltf(filepath=str(path))
    except RuntimeError as exc:
        raise SceneLoadError(f"cannot import {path}: {exc}") from exc
    meshes = [o for o in scene.objects if o.type == "MESH"]
    if not meshes:
        raise SceneLoadError(f"{path} has no meshes to render")
    _use_animation_range(scene)
    cameras = [o for o in scene.objects if o.type == "CAMERA"]
    if cameras:
        scene.camera = sorted(cameras, key=lambda o: o.name)[0]
    else:
        frame_camera_on(scene, meshes)
    add_default_lighting(scene)
    return scene


def _use_animation_range(scene: bpy.types.Scene) -> None:
    ranges = [action.frame_range for action in bpy.data.actions]
    if ranges:
        scene.frame_start = int(math.floor(min(r[0] for r in ranges)))
        scene.frame_end = int(math.ceil(max(r[1] for r in ranges)))


def world_bounds(objects: list[bpy.types.Object]) -> tuple[Vector, Vector]:
    """Axis-aligned world-space bounds (min, max) of the objects' bounding boxes."""
    corners = [obj.matrix_world @ Vector(corner) for obj in objects for corner in obj.bound_box]
    low = Vector(tuple(min(c[i] for c in corners) for i in range(3)))
    high = Vector(tuple(max(c[i] for c in corners) for i in range(3)))
    return low, high


def frame_camera_on(scene: bpy.types.Scene, objects: list[bpy.types.Object],
                    azimuth_deg: float = 30.0, elevation_deg: float = 15.0,
                    lens: float = 50.0) -> bpy.types.Object:
    """Add a perspective camera (focal length ``lens`` mm) that sees the objects' bounding
    sphere whole, and make it active."""
    bpy.context.view_layer.update()
    low, high = world_bounds(objects)
    centre = (low + high) / 2
    radius = max((high - low).length / 2, 1e-3)
    cam = bpy.data.cameras.new("Stylepass Camera")
    cam.lens = lens
    cam_obj = bpy.data.objects.new("Stylepass Camera", cam)
    scene.collection.objects.link(cam_obj)
    half_fov = min(cam.angle_x, cam.angle_y) / 2
    distance = radius / math.sin(half_fov) * 1.05
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    direction = Vector((math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)))
    cam_obj.location = centre + direction * distance
    cam_obj.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    cam.clip_start = max(distance - radius, 1e-3) * 0.1
    cam.clip_end = (distance + radius) * 10
    scene.camera = cam_obj
    return cam_obj


def add_default_lighting(scene: bpy.types.Scene) -> None:
    """A sun from the upper left and a plain grey sky (no HDR image)."""
    sun = bpy.data.lights.new("Stylepass Sun", "SUN")
    sun.energy = 3.0
    sun.angle = math.radians(5)
    sun_obj = bpy.data.objects.new("Stylepass Sun", sun)
    sun_obj.rotation_euler = (math.radians(50), 0, math.radians(-40))
    scene.collection.objects.link(sun_obj)
    world = scene.world or bpy.data.worlds.new("Stylepass Sky")
    scene.world = world
    if world.node_tree is None:  # 4.5; in 5.x worlds always have nodes
        world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (0.4, 0.45, 0.5, 1.0)
    background.inputs["Strength"].default_value = 0.6


def missing_textures() -> dict[str, str]:
    """``{image name: file}`` for each image that should come from a file that is not there."""
    missing = {}
    for image in bpy.data.images:
        if image.source not in {"FILE", "SEQUENCE", "TILED"} or image.packed_file is not None:
            continue
        path = bpy.path.abspath(image.filepath, library=image.library)
        if path and not os.path.exists(path):
            missing[image.name] = path
    return missing


def unreadable_textures(skip: set[str]) -> dict[str, str]:
    """``{image name: file or "packed"}`` for each image whose data Blender cannot decode (a damaged
    PNG or JPEG, on disk or packed into a .glb); images named in `skip` are not looked at."""
    unreadable = {}
    for image in bpy.data.images:
        if image.name in skip or image.source not in {"FILE", "TILED"}:
            continue
        if tuple(image.size) == (0, 0):  # asking for the size decodes the image
            packed = image.packed_file is not None
            unreadable[image.name] = "packed" if packed else bpy.path.abspath(image.filepath, library=image.library)
    return unreadable


def missing_texture_warnings() -> list[str]:
    """One warning per image that should come from a file that is not there, or cannot be decoded."""
    missing = missing_textures()
    return ([f"missing texture '{name}': {path} (rendered without it)" for name, path in missing.items()]
            + [f"unreadable texture '{name}': {where} is damaged (rendered without it)"
               for name, where in unreadable_textures(set(missing)).items()])


def _principled(name: str, colour: tuple[float, float, float], roughness: float,
                metallic: float) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # 4.5; in 5.x materials always have nodes
        material.use_nodes = True
    bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    return material


DEMO_FRAMES = 12


def build_demo_scene() -> bpy.types.Scene:
    """A small fixed scene: floor, cube, sphere and cone in four materials, a sun and a sky.

    The cube turns a quarter turn over frames 1-12, so animations and motion vectors
    have something to show.
    """
    scene = new_empty_scene()
    shapes = [
        ("Floor", bpy.ops.mesh.primitive_plane_add, {"size": 8}, (0, 0, 0),
         _principled("Floor", (0.55, 0.52, 0.48), 0.8, 0.0)),
        ("Cube", bpy.ops.mesh.primitive_cube_add, {"size": 1.2}, (-1.3, 0.2, 0.6),
         _principled("Painted Red", (0.7, 0.08, 0.05), 0.4, 0.0)),
        ("Sphere", bpy.ops.mesh.primitive_uv_sphere_add, {"radius": 0.7, "segments": 48,
                                                          "ring_count": 24}, (0.4, -0.2, 0.7),
         _principled("Brushed Metal", (0.9, 0.8, 0.6), 0.3, 1.0)),
        ("Cone", bpy.ops.mesh.primitive_cone_add, {"radius1": 0.5, "depth": 1.4}, (1.7, 0.8, 0.7),
         _principled("Teal Plastic", (0.05, 0.45, 0.45), 0.25, 0.0)),
    ]
    objects = []
    for name, add, kwargs, location, material in shapes:
        add(location=location, **kwargs)
        obj = bpy.context.active_object
        obj.name = name
        obj.data.materials.append(material)
        if name == "Sphere":
            for polygon in obj.data.polygons:
                polygon.use_smooth = True
        objects.append(obj)
    cube = objects[1]
    for frame, angle in ((1, 0.0), (DEMO_FRAMES, math.pi / 2)):
        cube.rotation_euler = (0.0, 0.0, angle)
        cube.keyframe_insert("rotation_euler", frame=frame)
    scene.frame_end = DEMO_FRAMES
    frame_camera_on(scene, objects[1:], azimuth_deg=20.0, elevation_deg=25.0)
    add_default_lighting(scene)
    scene.eevee.use_raytracing = True  # rendered in Eevee: its reflections on, the render enhance learnt
    return scene
