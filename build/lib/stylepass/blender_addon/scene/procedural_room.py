"""The surroundings of a procedural scene (bpy): a ground plane, 0-2 back walls of a room turned by
a random yaw, sun/area/point lights from the room's open side and a plain sky colour."""

from __future__ import annotations

import colorsys
import math
import random
from dataclasses import dataclass

import bpy
from mathutils import Matrix, Vector

from .procedural_materials import MaterialMaker
from .procedural_settings import KIND_KEY
from .procedural_subjects import Subject
from .scene_loading import world_bounds


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


def add_ground_and_walls(scene: bpy.types.Scene, rng: random.Random, subjects: list[Subject],
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


def add_lights(scene: bpy.types.Scene, rng: random.Random, room: Room) -> None:
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


def add_sky(scene: bpy.types.Scene, rng: random.Random) -> None:
    """A plain sky colour (no HDR image) of random hue, low saturation and strength."""
    world = bpy.data.worlds.new("Proc Sky")
    scene.world = world
    if world.node_tree is None:  # 4.5; in 5.x worlds always have nodes
        world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    colour = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.35), rng.uniform(0.3, 1.0))
    background.inputs["Color"].default_value = (*colour, 1.0)
    background.inputs["Strength"].default_value = rng.uniform(0.2, 1.0)
