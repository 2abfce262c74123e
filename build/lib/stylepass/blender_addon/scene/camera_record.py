"""The camera part of a frame's sidecar: intrinsics and extrinsics (bpy)."""

from __future__ import annotations

import bpy
from mathutils import Matrix


def _rows(matrix: Matrix) -> list[list[float]]:
    return [[float(v) for v in row] for row in matrix]


def render_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """Output width and height in pixels (resolution times percentage)."""
    scale = scene.render.resolution_percentage / 100.0
    return int(scene.render.resolution_x * scale), int(scene.render.resolution_y * scale)


def camera_record(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> dict[str, object]:
    """Describe the scene camera for the current frame.

    - ``camera_to_world`` / ``world_to_camera``: 4x4 rigid transforms (scale removed) in
      Blender's camera convention (looks along -Z, +Y up, +X right).
    - ``projection_matrix``: Blender's 4x4 OpenGL-style projection for the output size.
    - ``intrinsics`` (perspective cameras): ``fx, fy, cx, cy`` in pixels, OpenCV convention
      (x right, y down, z forward; continuous pixel coordinates with (0, 0) at the top-left
      corner of the image, so pixel (i, j) has its centre at (i + 0.5, j + 0.5)).
    """
    cam_obj = scene.camera
    cam = cam_obj.data
    width, height = render_size(scene)
    projection = cam_obj.calc_matrix_camera(
        depsgraph, x=width, y=height,
        scale_x=scene.render.pixel_aspect_x, scale_y=scene.render.pixel_aspect_y,
    )
    location, rotation, _scale = cam_obj.matrix_world.decompose()
    camera_to_world = Matrix.LocRotScale(location, rotation, None)
    record: dict[str, object] = {
        "name": cam_obj.name,
        "type": cam.type,
        "lens_mm": float(cam.lens),
        "sensor_width_mm": float(cam.sensor_width),
        "sensor_height_mm": float(cam.sensor_height),
        "sensor_fit": cam.sensor_fit,
        "ortho_scale": float(cam.ortho_scale),
        "clip_start": float(cam.clip_start),
        "clip_end": float(cam.clip_end),
        "projection_matrix": _rows(projection),
        "camera_to_world": _rows(camera_to_world),
        "world_to_camera": _rows(camera_to_world.inverted()),
    }
    if cam.type == "PERSP":
        record["intrinsics"] = {
            "fx": width / 2.0 * projection[0][0],
            "fy": height / 2.0 * projection[1][1],
            "cx": width / 2.0 * (1.0 - projection[0][2]),
            "cy": height / 2.0 * (1.0 + projection[1][2]),
        }
    return record
