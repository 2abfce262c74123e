"""Geometric augmentation for few-shot style training (painted keyframes).

One random similarity transform per patch (crop position, scale, quarter turns, mirror, a small
rotation) is applied identically to a frame's image, G-buffers, material ids and target, and
the camera-space vectors in the G-buffers are turned with it, so every augmented patch is a
frame a camera could have rendered: mirroring the image left-right negates the normal's x,
a quarter turn swaps and negates normal x and y, and so on.

Items are the dicts of :mod:`.paired_dataset` without a batch dim: ``image`` (3, H, W) and
``target`` (3, H, W) in the model range [0, 1), ``gbuffers`` (C, H, W) from
``stylepass.core.models.inputs.stack_gbuffers`` (valid mask last), ``material_id`` (H, W) long.
:func:`prepare_frame` groups a full-frame item's tensors once (on the training device),
:func:`cut_patch` cuts one transformed patch out of it, :func:`augmented_batch` a batch.

Sampling. Colours (image, target, albedo) are resampled bilinearly; geometry (normal, depth,
motion, valid mask) and material ids with the nearest sample, so no normal, depth or id is
blended across a silhouette. A share of patches (``exact_fraction``) is cut without
resampling (scale 1, no small rotation, pixel-aligned: its pixels are copied, turned or
mirrored), so the model also sees the painting's strokes at their painted sharpness.

Conventions: pixel (row i, column j) covers [j, j + 1) x [i, i + 1) in image coordinates
(x right, y down). Normals and motion vectors have +Y up (``stylepass.core.io.gbuffer``), so their
y component turns with the mirrored transform.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from stylepass.core.models.inputs import PASS_CHANNELS

# Passes whose channels hold screen-plane vectors (x, y pairs), and whether their length is in pixels.
_VECTOR_PASSES = {"normal": ((0, 1),), "motion": ((0, 1), (2, 3))}
_PIXEL_VECTOR_PASSES = {"motion"}
_BILINEAR_PASSES = {"albedo", "glossy_albedo"}


@dataclasses.dataclass(frozen=True)
class AugmentSettings:
    """What the random transforms may do."""

    patch: int = 96  # output patches are patch x patch pixels
    scale_min: float = 0.75  # source pixels per patch pixel, drawn log-uniformly in [min, max]
    scale_max: float = 1.33
    max_rotation_degrees: float = 10.0  # small rotation, uniform in [-max, max]
    quarter_turns: bool = True  # rotate by 0, 90, 180 or 270 degrees
    flips: bool = True  # mirror left-right half of the time (with quarter turns: every mirror)
    exact_fraction: float = 0.5  # share of patches cut without resampling (scale 1, no small rotation)

    def validate(self) -> None:
        """Raise ValueError on values out of range."""
        if self.patch < 8:
            raise ValueError(f"the patch size must be >= 8 pixels, got {self.patch}")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")
        if not 0 <= self.max_rotation_degrees <= 45:
            raise ValueError(f"max_rotation_degrees must be in [0, 45], got {self.max_rotation_degrees}")
        if not 0 <= self.exact_fraction <= 1:
            raise ValueError(f"exact_fraction must be in [0, 1], got {self.exact_fraction}")


@dataclasses.dataclass(frozen=True)
class PatchTransform:
    """Where a patch comes from: source point = centre + scale * matrix @ patch offset.

    centre: (x, y) in source pixels (image coordinates); matrix: orthogonal 2x2 (rotation, maybe
    mirrored) in image coordinates, row-major; scale: source pixels per patch pixel.
    """

    centre: tuple[float, float]
    scale: float
    matrix: tuple[float, float, float, float]


def _orthogonal(angle: float, quarter_turns: int, mirror: bool) -> torch.Tensor:
    """Rotation by `angle` + `quarter_turns` * 90 degrees, after an optional left-right mirror."""
    total = angle + quarter_turns * math.pi / 2
    c, s = math.cos(total), math.sin(total)
    rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    if mirror:
        rotation = rotation @ torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    return rotation.round(decimals=12)  # exact 0 / +-1 for quarter turns


def draw_transform(settings: AugmentSettings, height: int, width: int, generator: torch.Generator) -> PatchTransform:
    """A random transform for a patch from an (height, width) frame; a pure function of `generator`.

    The sampled square stays inside the frame: when the frame is too small for the drawn scale,
    the scale shrinks until it fits (small frames give upsampled patches).
    """
    u = torch.rand(7, generator=generator, dtype=torch.float64).tolist()
    exact = u[0] < settings.exact_fraction
    turns = int(u[1] * 4) % 4 if settings.quarter_turns else 0
    mirror = settings.flips and u[2] < 0.5
    if exact:
        angle, scale = 0.0, 1.0
    else:
        angle = math.radians((2 * u[3] - 1) * settings.max_rotation_degrees)
        scale = settings.scale_min * (settings.scale_max / settings.scale_min) ** u[4]
    spread = abs(math.cos(angle)) + abs(math.sin(angle))  # bounding box of the turned square, per side
    scale = min(scale, min(height, width) / (settings.patch * spread))
    half = scale * settings.patch * spread / 2
    centre_x = half + u[5] * (width - 2 * half)
    centre_y = half + u[6] * (height - 2 * half)
    if exact and scale == 1.0:  # pixel-aligned: every sample falls on a source pixel centre
        parity = (settings.patch % 2) / 2
        centre_x = min(max(round(centre_x - parity) + parity, half), width - half)
        centre_y = min(max(round(centre_y - parity) + parity, half), height - half)
    matrix = _orthogonal(angle, turns, mirror)
    return PatchTransform((centre_x, centre_y), scale, tuple(matrix.flatten().tolist()))


def _source_points(transform: PatchTransform, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source image coordinates (x, y), each float64 (patch, patch), of the patch's pixel centres."""
    offsets = torch.arange(patch, dtype=torch.float64) + 0.5 - patch / 2
    qy, qx = torch.meshgrid(offsets, offsets, indexing="ij")
    m = transform.matrix
    px = transform.centre[0] + transform.scale * (m[0] * qx + m[1] * qy)
    py = transform.centre[1] + transform.scale * (m[2] * qx + m[3] * qy)
    return px, py


def _pixel_indices(px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(rows, columns) when every point is a source pixel centre (a pixel-aligned patch), else None."""
    columns, rows = torch.round(px - 0.5), torch.round(py - 0.5)
    if (columns - (px - 0.5)).abs().max() > 1e-6 or (rows - (py - 0.5)).abs().max() > 1e-6:
        return None
    return rows.long(), columns.long()


def gbuffer_layout(passes: Sequence[str]) -> tuple[list[int], list[tuple[int, int, bool]]]:
    """For ``stack_gbuffers(frame, passes)``: the channels resampled bilinearly, and the (x, y)
    channel pairs of screen-plane vectors with whether their length is in pixels."""
    bilinear: list[int] = []
    vectors: list[tuple[int, int, bool]] = []
    offset = 0
    for name in passes:
        count = PASS_CHANNELS[name]
        if name in _BILINEAR_PASSES:
            bilinear += range(offset, offset + count)
        for x, y in _VECTOR_PASSES.get(name, ()):
            vectors.append((offset + x, offset + y, name in _PIXEL_VECTOR_PASSES))
        offset += count
    return bilinear, vectors


@dataclasses.dataclass(frozen=True)
class SampledFrame:
    """A full-frame item's tensors grouped by how they are resampled; built once per frame (on the
    training device) and cut into patches at every step."""

    colours: torch.Tensor  # (C_c, H, W) float: image, target (if any), the bilinear G-buffer channels
    geometry: torch.Tensor  # (C_g, H, W) float: the other G-buffer channels, then material ids
    colour_keys: tuple[str, ...]  # "image" and maybe "target", in `colours` order
    bilinear: tuple[int, ...]  # G-buffer channels in `colours`, after the images
    nearest: tuple[int, ...]  # G-buffer channels in `geometry`, before the ids
    vectors: tuple[tuple[int, int, bool], ...]  # see gbuffer_layout
    id_dtype: torch.dtype

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.colours.shape[-2], self.colours.shape[-1]


def prepare_frame(
    item: dict[str, torch.Tensor], passes: Sequence[str], device: torch.device | str = "cpu"
) -> SampledFrame:
    """Group a full-frame item's tensors for :func:`cut_patch`, on `device`."""
    gbuffers = item["gbuffers"]
    bilinear, vectors = gbuffer_layout(passes)
    nearest = [c for c in range(gbuffers.shape[0]) if c not in bilinear]
    colour_keys = tuple(key for key in ("image", "target") if key in item)
    colours = torch.cat([item[key] for key in colour_keys] + [gbuffers[bilinear]])
    geometry = torch.cat([gbuffers[nearest], item["material_id"][None].to(torch.float32)])
    return SampledFrame(colours.to(device), geometry.to(device), colour_keys, tuple(bilinear), tuple(nearest),
                        tuple(vectors), item["material_id"].dtype)


def cut_patch(frame: SampledFrame, transform: PatchTransform, patch: int) -> dict[str, torch.Tensor]:
    """Cut the patch `transform` describes out of a frame (see the module docstring).

    Returns the item keys (``image``, ``target`` if the frame has one, ``gbuffers``,
    ``material_id``) with spatial size (patch, patch), on the frame's device. Nearest samples of
    unit normals turned by an orthogonal matrix stay unit length; pixel-sized vectors (motion)
    are divided by the scale.
    """
    height, width = frame.size
    device = frame.colours.device
    px, py = _source_points(transform, patch)
    indices = _pixel_indices(px, py) if transform.scale == 1.0 else None
    if indices is not None:  # a crop, maybe turned or mirrored: copy the pixels
        rows, columns = indices[0].to(device), indices[1].to(device)
        colours, geometry = frame.colours[:, rows, columns], frame.geometry[:, rows, columns]
    else:
        grid = torch.stack([2 * px / width - 1, 2 * py / height - 1], dim=-1)[None].to(device, frame.colours.dtype)
        colours = F.grid_sample(frame.colours[None], grid, "bilinear", "border", align_corners=False)[0]
        geometry = F.grid_sample(frame.geometry[None], grid, "nearest", "border", align_corners=False)[0]

    out: dict[str, torch.Tensor] = {}
    for index, key in enumerate(frame.colour_keys):
        out[key] = colours[3 * index : 3 * index + 3]
    gbuffers = torch.empty((len(frame.bilinear) + len(frame.nearest), patch, patch), dtype=colours.dtype, device=device)
    gbuffers[list(frame.bilinear)] = colours[3 * len(frame.colour_keys) :]
    gbuffers[list(frame.nearest)] = geometry[:-1]
    out["material_id"] = geometry[-1].round().to(frame.id_dtype)

    # Content moves by matrix^-1 = matrix^T (image coordinates, y down); vectors have y up: D M^T D.
    m = transform.matrix
    turn = torch.tensor([[m[0], -m[2]], [-m[1], m[3]]], dtype=gbuffers.dtype, device=device)
    for x, y, in_pixels in frame.vectors:
        xy = torch.einsum("ij,jhw->ihw", turn, gbuffers[[x, y]])
        gbuffers[[x, y]] = xy / transform.scale if in_pixels else xy
    out["gbuffers"] = gbuffers
    return out


def augmented_batch(
    frames: Sequence[SampledFrame], settings: AugmentSettings, batch_size: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A batch of `batch_size` augmented patches drawn from `frames`, stacked with a batch dim, on
    the frames' device; a pure function of the frames and `generator` (a CPU generator)."""
    picks = torch.randint(len(frames), (batch_size,), generator=generator).tolist()
    patches = []
    for index in picks:
        height, width = frames[index].size
        transform = draw_transform(settings, height, width, generator)
        patches.append(cut_patch(frames[index], transform, settings.patch))
    return {key: torch.stack([p[key] for p in patches]) for key in patches[0]}
