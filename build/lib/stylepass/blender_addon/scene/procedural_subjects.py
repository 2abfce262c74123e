"""The subjects of a procedural scene (bpy): mesh primitives or real assets (.gltf/.glb/.blend),
scaled to a random size, turned, and spread on the ground without touching."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from mathutils import Matrix, Vector

from .procedural_materials import MaterialMaker
from .procedural_settings import KIND_KEY, ProceduralSettings, SceneGenerationError
from .scene_loading import world_bounds

SUBJECT_GAP = 0.15  # clearance between subjects' bounding circles (m)


@dataclass(frozen=True)
class Primitive:
    """A mesh primitive: the operator that adds it (about 2 m across) and its arguments."""

    kind: str
    operator: str
    arguments: tuple[tuple[str, Any], ...]
    smooth: bool
    stretchable: bool  # may be stretched along Z (boxes, cylinders, cones)


PRIMITIVES = (
    Primitive("cube", "primitive_cube_add", (("size", 2.0),), False, True),
    Primitive("uv_sphere", "primitive_uv_sphere_add", (("segments", 32), ("ring_count", 16)), True, False),
    Primitive("ico_sphere", "primitive_ico_sphere_add", (("subdivisions", 2),), False, False),
    Primitive("cylinder", "primitive_cylinder_add", (("vertices", 32), ("depth", 2.0)), False, True),
    Primitive("cone", "primitive_cone_add", (("vertices", 32), ("depth", 2.0)), False, True),
    Primitive("torus", "primitive_torus_add", (("major_segments", 48), ("minor_segments", 12),
                                                ("major_radius", 0.75), ("minor_radius", 0.25)), True, False),
    Primitive("suzanne", "primitive_monkey_add", (("size", 2.0),), True, False),
)


@dataclass
class Subject:
    """One subject standing on the ground: its root object and the meshes that show it."""

    root: bpy.types.Object
    meshes: list[bpy.types.Object]
    stretchable: bool               # may be stretched along Z (boxes, cylinders, cones)
    radius: float = 0.0             # of its bounding circle on the ground, once scaled
    position: tuple[float, float] = (0.0, 0.0)  # centre of that circle


def add_subject(scene: bpy.types.Scene, rng: random.Random, settings: ProceduralSettings,
                materials: MaterialMaker, number: int) -> Subject:
    """Add subject ``number`` (a primitive or an asset) at the origin, scaled to a random size."""
    name = f"Proc Subject {number:02d}"
    if settings.assets and rng.random() < settings.asset_probability:
        subject = _add_asset(scene, Path(rng.choice(sorted(settings.assets))), name)
    else:
        subject = _add_primitive(rng.choice(PRIMITIVES), name, materials.new(subject_scale=True))
    _normalise_subject(subject, rng, settings.subject_size)
    return subject


def _add_primitive(primitive: Primitive, name: str, material: bpy.types.Material) -> Subject:
    """Add the primitive at the origin as a mesh object named ``name`` with ``material``."""
    getattr(bpy.ops.mesh, primitive.operator)(location=(0.0, 0.0, 0.0), **dict(primitive.arguments))
    obj = bpy.context.active_object
    obj.name = obj.data.name = name
    obj[KIND_KEY] = primitive.kind
    obj.data.materials.append(material)
    if primitive.smooth:
        obj.data.polygons.foreach_set("use_smooth", [True] * len(obj.data.polygons))
    return Subject(obj, [obj], primitive.stretchable)


def _add_asset(scene: bpy.types.Scene, path: Path, name: str) -> Subject:
    """Bring the asset's meshes in under an empty named ``name`` (its root)."""
    before = set(scene.objects)
    if path.suffix.lower() == ".blend":
        _append_blend_meshes(scene, path)
    else:
        try:
            bpy.ops.import_scene.gltf(filepath=str(path))
        except RuntimeError as exc:
            raise SceneGenerationError(f"cannot import asset {path}: {exc}") from exc
    added = sorted(set(scene.objects) - before, key=lambda o: o.name)
    for obj in [o for o in added if o.type in {"CAMERA", "LIGHT"}]:  # the generator brings its own
        added.remove(obj)
        bpy.data.objects.remove(obj)
    meshes = [o for o in added if o.type == "MESH"]
    if not meshes:
        raise SceneGenerationError(f"asset {path} has no meshes: remove it from the assets")
    root = bpy.data.objects.new(name, None)
    root[KIND_KEY] = f"asset:{path.name}"
    scene.collection.objects.link(root)
    for obj in added:
        if obj.parent is None:
            obj.parent = root
    return Subject(root, meshes, stretchable=False)


def _append_blend_meshes(scene: bpy.types.Scene, path: Path) -> None:
    """Append the mesh objects of a .blend file, unparented, keeping their world placement."""
    try:
        with bpy.data.libraries.load(str(path), link=False) as (source, target):
            target.objects = list(source.objects)
    except OSError as exc:
        raise SceneGenerationError(f"cannot read asset {path}: {exc}") from exc
    appended = [o for o in target.objects if o is not None]
    meshes = [o for o in appended if o.type == "MESH"]
    placements = {o.name: o.matrix_world.copy() for o in meshes}
    for obj in meshes:
        scene.collection.objects.link(obj)
        if obj.parent is not None and obj.parent.type != "MESH":
            obj.parent = None
            obj.matrix_world = placements[obj.name]
    for obj in appended:
        if obj.type != "MESH":
            bpy.data.objects.remove(obj)


def _normalise_subject(subject: Subject, rng: random.Random, size_range: tuple[float, float]) -> None:
    """Scale the subject to a random size, turn it about Z and stand it on the ground at the origin."""
    bpy.context.view_layer.update()
    low, high = world_bounds(subject.meshes)
    extent = high - low
    scale = rng.uniform(*size_range) / max(max(extent), 1e-6)
    stretch = rng.uniform(0.6, 1.6) if subject.stretchable else 1.0
    anchor = Vector(((low.x + high.x) / 2, (low.y + high.y) / 2, low.z))
    subject.root.scale = (scale, scale, scale * stretch)
    subject.root.rotation_euler = (0.0, 0.0, rng.uniform(-math.pi, math.pi))
    subject.root.location = -(_turn_and_scale(subject.root) @ anchor)
    subject.radius = scale * math.hypot(extent.x, extent.y) / 2


def _turn_and_scale(obj: bpy.types.Object) -> Matrix:
    """The object's rotation and scale as a 3x3 matrix (its transform without location)."""
    return obj.rotation_euler.to_matrix() @ Matrix.Diagonal(obj.scale)


def place_subjects(subjects: list[Subject], rng: random.Random) -> None:
    """Move subjects apart on the ground: their bounding circles keep SUBJECT_GAP between them.

    Candidates are drawn in a disc that widens after every 20 misses, so this always ends.
    """
    placed: list[tuple[float, float, float]] = []
    spread = max(s.radius for s in subjects)
    for subject in subjects:
        misses = 0
        while True:
            angle, distance = rng.uniform(-math.pi, math.pi), spread * math.sqrt(rng.random())
            x, y = distance * math.cos(angle), distance * math.sin(angle)
            if all(math.hypot(x - px, y - py) >= subject.radius + pr + SUBJECT_GAP for px, py, pr in placed):
                break
            misses += 1
            if misses % 20 == 0:
                spread *= 1.2
        placed.append((x, y, subject.radius))
        subject.position = (x, y)
        subject.root.location.x += x
        subject.root.location.y += y
