"""The camera of a procedural scene (bpy): drawn from the room's open side until every subject is
inside the frame margin and none is wholly hidden behind another."""

from __future__ import annotations

import random
from collections.abc import Iterable

import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from .procedural_room import Room
from .procedural_settings import ProceduralSettings, SceneGenerationError
from .scene_loading import frame_camera_on, world_bounds

ZOOM_RANGE = (0.55, 1.1)  # camera distance relative to the bounding-sphere fit


def add_camera(scene: bpy.types.Scene, rng: random.Random, settings: ProceduralSettings,
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
