"""A small ray-cast scene exported as Stylepass G-buffers, and a synthetic 'painting' of it.

The scene: a ground plane, a back wall and three spheres that move from frame to frame, seen by
a pinhole camera at the origin looking down -Z (camera space = world space, +Y up, as Blender's
camera). Beauty is Lambert shading of a sun plus sky light, scene-linear.

The painting is what an artist might do over a render, as a pure function of the frame, so it
gives the ground truth for frames nobody painted:
- a strong colour grade: luminance in four bands mapped through a teal-to-cream ramp, tinted by
  the albedo;
- hatching that follows the shading: dark strokes along the surfaces' depth contours, thicker
  where the surface is darker;
- ink outlines on depth and normal discontinuities.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from stylepass.blender_addon.contract.atomic_files import append_jsonl
from stylepass.blender_addon.contract.export_format import MANIFEST_NAME, frame_stem
from tests.training.conftest import write_test_gbuffer

ALBEDOS = np.array([[0.0, 0.0, 0.0], [0.55, 0.55, 0.5], [0.6, 0.45, 0.3], [0.7, 0.1, 0.1],
                    [0.1, 0.5, 0.15], [0.15, 0.2, 0.7]], np.float32)  # by material id; 0 = none
SUN = np.array([-0.5, 0.7, 0.5]) / np.linalg.norm([-0.5, 0.7, 0.5])
FOCAL = 1.2  # focal length in units of the frame width


def render_frame(frame: int, size: int) -> SimpleNamespace:
    """Ray-cast frame `frame` (any int; the spheres move with it) at size x size pixels."""
    t = 0.35 * frame
    spheres = [((-1.2 + 0.5 * np.sin(t), -0.4, -5.0 + 0.4 * np.cos(t)), 0.6, 3),
               ((0.9 - 0.4 * np.sin(t), -0.2 + 0.25 * np.cos(1.3 * t), -6.0), 0.8, 4),
               ((0.2 * np.cos(t), 0.8, -7.0 + 0.6 * np.sin(t)), 0.5, 5)]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    rays = np.stack([(xx + 0.5 - size / 2) / (FOCAL * size), -(yy + 0.5 - size / 2) / (FOCAL * size),
                     -np.ones_like(xx)])
    rays /= np.linalg.norm(rays, axis=0)
    hit = np.full((size, size), np.inf)
    normal = np.zeros((3, size, size))
    material = np.zeros((size, size), np.int32)

    def keep(distance: np.ndarray, surface_normal: np.ndarray, material_id: int) -> None:
        closer = (distance > 0) & (distance < hit)
        hit[closer] = distance[closer]
        normal[:, closer] = surface_normal[:, closer]
        material[closer] = material_id

    floor = np.where(rays[1] < -1e-6, -1.0 / np.minimum(rays[1], -1e-6), np.inf)  # plane y = -1
    keep(floor, np.broadcast_to(np.array([0.0, 1.0, 0.0])[:, None, None], rays.shape), 1)
    wall = np.where(rays[2] < -1e-6, -9.0 / np.minimum(rays[2], -1e-6), np.inf)  # plane z = -9
    keep(wall, np.broadcast_to(np.array([0.0, 0.0, 1.0])[:, None, None], rays.shape), 2)
    for centre, radius, material_id in spheres:
        c = np.array(centre)[:, None, None]
        b = (rays * c).sum(0)
        disc = b * b - (c * c).sum(0) + radius * radius
        distance = np.where(disc > 0, b - np.sqrt(np.maximum(disc, 0)), np.inf)
        keep(distance, (rays * distance - c) / radius, material_id)
    valid = np.isfinite(hit) & (hit < 30)
    albedo = ALBEDOS[material].transpose(2, 0, 1)
    light = 0.15 + 2.2 * np.maximum((normal * SUN[:, None, None]).sum(0), 0.0)
    beauty = np.where(valid, albedo * light, np.array([0.4, 0.5, 0.7])[:, None, None])
    return SimpleNamespace(beauty=beauty.astype(np.float32), albedo=albedo.astype(np.float32),
                           normal=np.where(valid, normal, 0).astype(np.float32),
                           depth=np.where(valid, hit, 0).astype(np.float32), valid=valid,
                           material_id=np.where(valid, material, 0).astype(np.int32), motion=None, meta={})


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1] (clipped)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def display(frame: SimpleNamespace) -> np.ndarray:
    """The render as an artist sees it: sRGB 8-bit (H, W, 3) of the Reinhard-mapped beauty, as
    ``stylepass keyframe template`` writes it."""
    mapped = frame.beauty / (1.0 + frame.beauty)
    return (to_srgb(mapped) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def paint(frame: SimpleNamespace) -> np.ndarray:
    """The synthetic painting of a frame: sRGB 8-bit (H, W, 3); see the module docstring."""
    shown = display(frame).astype(np.float64) / 255.0
    luminance = shown @ np.array([0.2126, 0.7152, 0.0722])
    bands = np.clip(np.floor(luminance * 4) / 3, 0, 1)
    ramp = np.array([[0.05, 0.25, 0.3], [0.45, 0.35, 0.3], [0.95, 0.55, 0.25], [1.0, 0.95, 0.8]])
    graded = np.stack([np.interp(bands, np.linspace(0, 1, 4), ramp[:, c]) for c in range(3)], -1)
    tint = to_srgb(frame.albedo).transpose(1, 2, 0)
    out = 0.7 * graded + 0.3 * tint * (0.4 + 0.6 * bands[..., None])
    contour = (frame.depth * 3.0) % 1.0  # depth contours: rings on spheres, bands on the floor
    stroke = frame.valid & (contour < np.clip(0.6 - luminance, 0.0, 0.6))
    out = np.where(stroke[..., None], out * 0.3, out)
    depth = np.where(frame.valid, frame.depth, 40.0)
    edge = np.zeros(depth.shape, bool)
    for axis in (0, 1):
        jump = np.abs(np.diff(depth, axis=axis)) / np.minimum(depth[:-1] if axis == 0 else depth[:, :-1],
                                                              depth[1:] if axis == 0 else depth[:, 1:])
        turn = 1 - (np.take(frame.normal, range(depth.shape[axis] - 1), axis=axis + 1)
                    * np.take(frame.normal, range(1, depth.shape[axis]), axis=axis + 1)).sum(0)
        line = (jump > 0.08) | (turn > 0.3)
        if axis == 0:
            edge[:-1] |= line
            edge[1:] |= line
        else:
            edge[:, :-1] |= line
            edge[:, 1:] |= line
    out = np.where(edge[..., None], 0.04, out)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_scene_export(folder: Path, frames: range, size: int) -> dict[int, SimpleNamespace]:
    """Export `frames` of the scene to `folder` as the add-on does (EXR + sidecar + manifest)."""
    folder.mkdir(parents=True, exist_ok=True)
    rendered = {}
    for number in frames:
        frame = rendered[number] = render_frame(number, size)
        exr = folder / f"{frame_stem(number)}.exr"
        write_test_gbuffer(exr, frame, ("albedo",))
        append_jsonl(folder / MANIFEST_NAME, {"frame": number, "exr": exr.name,
                                              "sidecar": exr.with_suffix(".json").name})
    return rendered


def save_png(path: Path, rgb8: np.ndarray) -> Path:
    Image.fromarray(rgb8).save(path)
    return path
