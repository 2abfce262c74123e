"""Seeded procedural scenes for training datasets (bpy).

``build_procedural_scene(seed, settings)`` replaces the open file with a scene drawn from
``random.Random(seed)`` alone: primitives and real assets (.gltf/.glb/.blend) standing on a
ground plane, random Principled materials (some driven by noise, voronoi, checker or wave
textures), 0-2 back walls, sun/area/point lights, a plain sky colour and a camera that keeps
every subject inside the frame and in sight (not wholly hidden behind another). The same seed and settings give the same scene on Blender
4.5 and 5.x; ``describe_scene`` summarises it as JSON-able data to record and compare.

Layout: subjects stand in a disc around the origin. Walls, when drawn, close the "back" of a
room turned by a random yaw; the camera and the lights stay on the open side of it.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Matrix, Vector

from ..contract.headless_protocol import BadInputError
from .material_ids import scene_materials
from .scene_loading import frame_camera_on, missing_textures, new_empty_scene, world_bounds

LOG = logging.getLogger(__name__)

SCENE_KEY = "stylepass_procedural"  # scene property: JSON {"seed": int, "settings": {...}}
KIND_KEY = "stylepass_kind"         # object property: "cube", "asset:BoomBox.gltf", "ground", ...
ASSET_SUFFIXES = (".gltf", ".glb", ".blend")
MAX_OBJECTS = 50
SUBJECT_GAP = 0.15                  # clearance between subjects' bounding circles (m)
ZOOM_RANGE = (0.55, 1.1)            # camera distance relative to the bounding-sphere fit
TEXTURE_KINDS = ("noise", "voronoi", "checker", "wave")
TEXTURE_NODES = {"noise": ("ShaderNodeTexNoise", "Fac"), "voronoi": ("ShaderNodeTexVoronoi", "Distance"),
                 "checker": ("ShaderNodeTexChecker", "Fac"), "wave": ("ShaderNodeTexWave", "Fac")}


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


class SceneGenerationError(BadInputError):
    """The settings cannot give a scene (bad values, unreadable assets, no camera that frames it)."""


@dataclass(frozen=True)
class ProceduralSettings:
    """What a procedural scene is drawn from. Ranges are (low, high), both included."""

    assets: tuple[str, ...] = ()           # .gltf/.glb/.blend files to draw subjects from
    min_objects: int = 2                   # subjects per scene (ground and walls not counted)
    max_objects: int = 5
    asset_probability: float = 0.5         # chance that a subject is an asset, when assets are given
    walls: bool = True                     # ground plane always; 0-2 back walls when True
    texture_probability: float = 0.5      # chance that a material is driven by a procedural texture
    subject_size: tuple[float, float] = (0.6, 2.0)      # largest dimension of a subject (m)
    focal_length_mm: tuple[float, float] = (24.0, 85.0)  # on a 36 mm sensor
    elevation_deg: tuple[float, float] = (5.0, 45.0)    # camera height angle above the subjects
    frame_margin: float = 0.03             # fraction of the frame kept clear on each side
    camera_attempts: int = 30              # camera draws before giving up
    resolution: tuple[int, int] = (256, 256)  # render size the framing is checked for

    def problems(self) -> list[str]:
        """What is wrong with these settings, one sentence each (empty when they are usable)."""
        found = []
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            found.append(f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS} "
                         f"(got min_objects={self.min_objects}, max_objects={self.max_objects})")
        for name in ("asset_probability", "texture_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                found.append(f"{name} must be between 0 and 1 (got {getattr(self, name)})")
        for name, low, high in (("subject_size", 0.01, 100.0), ("focal_length_mm", 8.0, 500.0),
                                ("elevation_deg", 1.0, 85.0)):
            value = tuple(getattr(self, name))
            if len(value) != 2 or not low <= value[0] <= value[1] <= high:
                found.append(f"{name} must be (low, high) with {low} <= low <= high <= {high} (got {value})")
        if not 0.0 <= self.frame_margin < 0.5:
            found.append(f"frame_margin must be in [0, 0.5) (got {self.frame_margin})")
        if self.camera_attempts < 1:
            found.append(f"camera_attempts must be at least 1 (got {self.camera_attempts})")
        if len(self.resolution) != 2 or min(self.resolution) < 1:
            found.append(f"resolution must be two positive pixel counts (got {self.resolution})")
        return found + [problem for problem in map(_asset_problem, self.assets) if problem]


def _asset_problem(asset: str) -> str:
    path = Path(asset)
    if path.suffix.lower() not in ASSET_SUFFIXES:
        return f"asset {path}: expected a {', '.join(ASSET_SUFFIXES)} file"
    if not path.is_file():
        return f"asset {path}: file not found"
    return ""


@dataclass
class Subject:
    """One subject standing on the ground: its root object and the meshes that show it."""

    root: bpy.types.Object
    meshes: list[bpy.types.Object]
    stretchable: bool               # may be stretched along Z (boxes, cylinders, cones)
    radius: float = 0.0             # of its bounding circle on the ground, once scaled
    position: tuple[float, float] = (0.0, 0.0)  # centre of that circle


@dataclass(frozen=True)
class Room:
    """Walls behind the subjects: yaw of the room, its half-size, and which walls stand."""

    yaw: float           # radians; the back wall is at +Y of the turned frame
    half_size: float     # distance from the origin to each wall
    walls: int           # 0, 1 (back) or 2 (back and one side)
    side: int            # +1 or -1: the side wall is at +X or -X of the turned frame

    def open_azimuths(self) -> tuple[float, float]:
        """Azimuth range (degrees, for frame_camera_on) from which the room is open."""
        yaw = math.degrees(self.yaw)
        if self.walls == 0:
            return yaw - 180.0, yaw + 180.0
        if self.walls == 1:
            return yaw - 65.0, yaw + 65.0
        return (yaw - 75.0, yaw - 5.0) if self.side > 0 else (yaw + 5.0, yaw + 75.0)


def build_procedural_scene(seed: int, settings: ProceduralSettings = ProceduralSettings()) -> bpy.types.Scene:
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
    subjects = [_add_subject(scene, rng, settings, materials, index + 1)
                for index in range(rng.randint(settings.min_objects, settings.max_objects))]
    _place_subjects(subjects, rng)
    room = _add_ground_and_walls(scene, rng, subjects, settings.walls, materials)
    _add_lights(scene, rng, room)
    _add_sky(scene, rng)
    _add_camera(scene, rng, settings, room, [s.meshes for s in subjects])
    scene.frame_set(1)
    for path in missing_texture_files():
        LOG.warning("missing texture %s (rendered without it)", path)
    return scene


def missing_texture_files() -> list[str]:
    """The texture files that the scene's images should come from but that are not there, each
    once (an asset drawn twice has two copies of its images, named differently per version)."""
    return sorted(set(missing_textures().values()))


# Subjects ----------------------------------------------------------------------------------

def _add_subject(scene: bpy.types.Scene, rng: random.Random, settings: ProceduralSettings,
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


def _place_subjects(subjects: list[Subject], rng: random.Random) -> None:
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


# Ground, walls, lights, sky ------------------------------------------------------------------

def _add_ground_and_walls(scene: bpy.types.Scene, rng: random.Random, subjects: list[Subject],
                          walls: bool, materials: MaterialMaker) -> Room:
    """A ground plane under everything and, when ``walls``, 0-2 walls behind the subjects."""
    reach = max(math.hypot(*s.position) + s.radius for s in subjects)
    room = Room(yaw=rng.uniform(-math.pi, math.pi), half_size=reach + rng.uniform(0.5, 2.0),
                walls=rng.randint(0, 2) if walls else 0, side=rng.choice((-1, 1)))
    bpy.context.view_layer.update()
    tallest = max(world_bounds(s.meshes)[1].z for s in subjects)
    _add_plane(scene, "Proc Ground", "ground", size=8 * room.half_size + 40,
               matrix=Matrix.Identity(4), material=materials.new(subject_scale=False))
    wall_size = max(2 * room.half_size + 4, 2 * tallest)
    turn = Matrix.Rotation(room.yaw, 4, "Z")
    upright = Matrix.Rotation(math.pi / 2, 4, "X")
    placements = [Matrix.Translation((0.0, room.half_size, wall_size / 2)) @ upright,
                  Matrix.Translation((room.side * room.half_size, 0.0, wall_size / 2))
                  @ Matrix.Rotation(math.pi / 2, 4, "Z") @ upright][:room.walls]
    for number, placement in enumerate(placements, start=1):
        _add_plane(scene, f"Proc Wall {number}", "wall", size=wall_size,
                   matrix=turn @ placement, material=materials.new(subject_scale=False))
    return room


def _add_plane(scene: bpy.types.Scene, name: str, kind: str, size: float, matrix: Matrix,
               material: bpy.types.Material) -> bpy.types.Object:
    """A square plane of ``size`` metres placed by ``matrix`` (ground and walls)."""
    bpy.ops.mesh.primitive_plane_add(size=size, location=(0.0, 0.0, 0.0))
    obj = bpy.context.active_object
    obj.name = obj.data.name = name
    obj[KIND_KEY] = kind
    obj.matrix_world = matrix
    obj.data.materials.append(material)
    return obj


def _direction(azimuth_deg: float, elevation_deg: float) -> Vector:
    """Unit vector from the subjects towards a viewer at this azimuth/elevation (as frame_camera_on)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return Vector((math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)))


def _add_lights(scene: bpy.types.Scene, rng: random.Random, room: Room) -> None:
    """A key light (sun or area) and 0-2 weaker point/area fill lights, all from the open side."""
    kinds = [rng.choice(("SUN", "AREA"))] + [rng.choice(("POINT", "AREA")) for _ in range(rng.randint(0, 2))]
    for number, kind in enumerate(kinds, start=1):
        direction = _direction(rng.uniform(*room.open_azimuths()), rng.uniform(20.0, 70.0))
        distance = rng.uniform(0.5, 0.9) * room.half_size + 2.0
        strength = 1.0 if number == 1 else rng.uniform(0.2, 0.5)
        light = bpy.data.lights.new(f"Proc Light {number}", kind)
        light.color = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.25), 1.0)
        if kind == "SUN":
            light.energy = strength * rng.uniform(2.0, 5.0)
            light.angle = math.radians(rng.uniform(1.0, 10.0))
        else:
            light.energy = strength * rng.uniform(40.0, 100.0) * distance ** 2
            light.shadow_soft_size = rng.uniform(0.1, 0.5)
            if kind == "AREA":
                light.size = rng.uniform(0.5, 3.0)
        obj = bpy.data.objects.new(f"Proc Light {number}", light)
        obj[KIND_KEY] = kind.lower()
        obj.location = direction * distance + Vector((0.0, 0.0, 0.5))
        obj.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(obj)


def _add_sky(scene: bpy.types.Scene, rng: random.Random) -> None:
    """A plain sky colour (no HDR image) of random hue, low saturation and strength."""
    world = bpy.data.worlds.new("Proc Sky")
    scene.world = world
    if world.node_tree is None:  # 4.5; in 5.x worlds always have nodes
        world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    colour = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.35), rng.uniform(0.3, 1.0))
    background.inputs["Color"].default_value = (*colour, 1.0)
    background.inputs["Strength"].default_value = rng.uniform(0.2, 1.0)


# Camera -----------------------------------------------------------------------------------

def _add_camera(scene: bpy.types.Scene, rng: random.Random, settings: ProceduralSettings,
                room: Room, subjects: list[list[bpy.types.Object]]) -> bpy.types.Object:
    """Draw cameras until one has every subject inside the frame margin and none wholly hidden
    behind another; raise after the last try. ``subjects`` holds each subject's meshes."""
    meshes = [mesh for subject in subjects for mesh in subject]
    for _ in range(settings.camera_attempts):
        camera = frame_camera_on(scene, meshes, azimuth_deg=rng.uniform(*room.open_azimuths()),
                                 elevation_deg=rng.uniform(*settings.elevation_deg),
                                 lens=rng.uniform(*settings.focal_length_mm))
        _zoom(camera, meshes, rng.uniform(*ZOOM_RANGE))
        if (subjects_in_frame(scene, camera, meshes, settings.frame_margin)
                and all(subject_seen(scene, camera, subject) for subject in subjects)):
            camera.name = camera.data.name = "Proc Camera"
            return camera
        camera_data = camera.data
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(camera_data)
    raise SceneGenerationError(
        f"cannot frame the {len(subjects)} subjects with frame_margin={settings.frame_margin}, each "
        f"in sight, in {settings.camera_attempts} camera draws: lower frame_margin or max_objects, "
        f"allow more camera_attempts, or widen focal_length_mm/elevation_deg")


def _zoom(camera: bpy.types.Object, meshes: list[bpy.types.Object], factor: float) -> None:
    """Move the camera along its line to the subjects' centre: ``factor`` < 1 comes closer."""
    low, high = world_bounds(meshes)
    centre = (low + high) / 2
    camera.location = centre + (camera.location - centre) * factor
    bpy.context.view_layer.update()


def subjects_in_frame(scene: bpy.types.Scene, camera: bpy.types.Object,
                      objects: Iterable[bpy.types.Object], margin: float) -> bool:
    """Whether every bounding-box corner of ``objects`` projects in front of the camera and
    inside the frame, at least ``margin`` (a fraction of the frame) from each edge."""
    for obj in objects:
        for corner in obj.bound_box:
            view = world_to_camera_view(scene, camera, obj.matrix_world @ Vector(corner))
            if not (margin <= view.x <= 1 - margin and margin <= view.y <= 1 - margin
                    and view.z > camera.data.clip_start):
                return False
    return True


def subject_seen(scene: bpy.types.Scene, camera: bpy.types.Object, meshes: list[bpy.types.Object]) -> bool:
    """Whether a ray from the camera towards some point of the subject's bounding boxes (the
    centre, or a corner pulled halfway in) hits the subject first."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    origin = camera.matrix_world.translation
    names = {mesh.name for mesh in meshes}
    for mesh in meshes:
        corners = [mesh.matrix_world @ Vector(corner) for corner in mesh.bound_box]
        centre = sum(corners, Vector()) / len(corners)
        for target in [centre] + [(corner + centre) / 2 for corner in corners]:
            hit, _, _, _, obj, _ = scene.ray_cast(depsgraph, origin, (target - origin).normalized())
            if hit and obj.name in names:
                return True
    return False


# Materials --------------------------------------------------------------------------------

class MaterialMaker:
    """Random Principled BSDF materials named "Proc Material 01", "Proc Material 02", ..."""

    def __init__(self, rng: random.Random, texture_probability: float) -> None:
        self.rng = rng
        self.texture_probability = texture_probability
        self.count = 0

    def new(self, subject_scale: bool) -> bpy.types.Material:
        """A new material; ``subject_scale`` sizes its texture for a ~2 m object, else for a floor."""
        rng = self.rng
        self.count += 1
        material = bpy.data.materials.new(f"Proc Material {self.count:02d}")
        if material.node_tree is None:  # 4.5; in 5.x materials always have nodes
            material.use_nodes = True
        bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
        colour = self._colour()
        roughness = rng.uniform(0.05, 0.95)
        bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
        bsdf.inputs["Roughness"].default_value = roughness
        bsdf.inputs["Metallic"].default_value = 1.0 if rng.random() < 0.25 else 0.0
        if rng.random() < self.texture_probability:
            scale = rng.uniform(1.5, 8.0) if subject_scale else rng.uniform(0.2, 1.5)
            self._add_texture(material, bsdf, rng.choice(TEXTURE_KINDS), scale, colour, roughness)
        return material

    def _colour(self) -> tuple[float, float, float]:
        return colorsys.hsv_to_rgb(self.rng.uniform(0.0, 1.0), self.rng.uniform(0.0, 0.9),
                                   self.rng.uniform(0.05, 0.9))

    def _add_texture(self, material: bpy.types.Material, bsdf: bpy.types.Node, kind: str, scale: float,
                     colour: tuple[float, float, float], roughness: float) -> None:
        """A texture in object coordinates drives the base colour (between two colours) and,
        by chance, the roughness and a bump."""
        rng = self.rng
        nodes, links = material.node_tree.nodes, material.node_tree.links
        node_type, output = TEXTURE_NODES[kind]
        texture = nodes.new(node_type)
        texture.inputs["Scale"].default_value = scale
        links.new(nodes.new("ShaderNodeTexCoord").outputs["Object"], texture.inputs["Vector"])
        value = texture.outputs[output]
        links.new(_ramp(nodes, links, value, colour, self._colour()).outputs["Color"], bsdf.inputs["Base Color"])
        if rng.random() < 0.5:
            other = rng.uniform(0.05, 0.95)
            ramp = _ramp(nodes, links, value, (roughness,) * 3, (other,) * 3)
            links.new(ramp.outputs["Color"], bsdf.inputs["Roughness"])
        if rng.random() < 0.5:
            bump = nodes.new("ShaderNodeBump")
            bump.inputs["Strength"].default_value = rng.uniform(0.1, 0.6)
            links.new(value, bump.inputs["Height"])
            links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])


def _ramp(nodes: bpy.types.Nodes, links: bpy.types.NodeLinks, value: bpy.types.NodeSocket,
          low: tuple[float, float, float], high: tuple[float, float, float]) -> bpy.types.Node:
    """A colour ramp from ``low`` to ``high`` fed by ``value``."""
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*low, 1.0)
    ramp.color_ramp.elements[1].color = (*high, 1.0)
    links.new(value, ramp.inputs["Fac"])
    return ramp


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
