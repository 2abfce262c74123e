"""Augmentation keeps a frame's passes consistent with each other (training.data.augment)."""

from __future__ import annotations

import math

import pytest
import torch

from stylepass.training.data.augment import (
    AugmentSettings,
    PatchTransform,
    augmented_batch,
    cut_patch,
    draw_transform,
    prepare_frame,
)

PASSES = ("albedo", "normal", "depth")
H, W = 40, 48


def height_field_item() -> dict[str, torch.Tensor]:
    """A frame whose depth is a smooth height field h(x, y) and whose normals are h's (camera space,
    +Y up): n ~ (-dh/dx, +dh/dy_down, 1). Image and target are ramps; three material ids."""
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float32) + 0.5, torch.arange(W, dtype=torch.float32) + 0.5,
                          indexing="ij")
    h = 0.004 * (x - 20) ** 2 + 0.006 * (y - 25) ** 2 + 0.2 * x
    normal = torch.stack([-(0.008 * (x - 20) + 0.2), 0.012 * (y - 25), torch.ones_like(x)])
    normal = normal / normal.norm(dim=0, keepdim=True)
    image = torch.stack([x / W, y / H, 0.5 * torch.ones_like(x)])
    albedo = torch.stack([y / H, x / W, 0.2 * torch.ones_like(x)])
    gbuffers = torch.cat([albedo, normal, h[None] / h.max(), torch.ones(1, H, W)])
    material = (x // 16).long() + 1
    return {"image": image, "target": 1 - image, "gbuffers": gbuffers, "material_id": material}


def test_mirroring_left_right_flips_every_pass_and_negates_the_normals_x():
    item = height_field_item()
    mirror = PatchTransform(centre=(20.0, 20.0), scale=1.0, matrix=(-1.0, 0.0, 0.0, 1.0))  # of the 40x40 crop
    out = cut_patch(prepare_frame({k: v[..., :, 4:44] for k, v in item.items()}, PASSES), mirror, 40)
    crop = {k: v[..., :, 4:44] for k, v in item.items()}
    assert torch.equal(out["image"], crop["image"].flip(-1))
    assert torch.equal(out["target"], crop["target"].flip(-1))
    assert torch.equal(out["material_id"], crop["material_id"].flip(-1))
    expected = crop["gbuffers"].flip(-1).clone()
    expected[3] = -expected[3]  # normal x
    assert torch.allclose(out["gbuffers"], expected, atol=1e-6)


def _normal_directions_from_depth(gbuffers: torch.Tensor, reach: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen-plane directions (2, h, w) of the normals stored in the patch, and of those the patch's own
    depth implies (central differences over +-reach pixels), on the patch interior."""
    depth = gbuffers[6]
    dx = (depth[reach:-reach, 2 * reach:] - depth[reach:-reach, : -2 * reach])
    dy = (depth[2 * reach:, reach:-reach] - depth[: -2 * reach, reach:-reach])
    from_depth = torch.stack([-dx, dy])
    stored = gbuffers[3:5, reach:-reach, reach:-reach]
    return stored / stored.norm(dim=0).clamp(min=1e-9), from_depth / from_depth.norm(dim=0).clamp(min=1e-9)


@pytest.mark.parametrize("quarter_turns, flips, rotation", [(False, False, 0.0), (True, True, 0.0), (True, True, 10.0)])
def test_turned_and_mirrored_normals_agree_with_the_turned_depth(quarter_turns, flips, rotation):
    item = prepare_frame(height_field_item(), PASSES)
    settings = AugmentSettings(patch=32, quarter_turns=quarter_turns, flips=flips, max_rotation_degrees=rotation,
                               exact_fraction=0.0 if rotation else 1.0)
    generator = torch.Generator().manual_seed(0)
    agreement = []
    for _ in range(24):
        transform = draw_transform(settings, H, W, generator)
        out = cut_patch(item, transform, settings.patch)
        stored, implied = _normal_directions_from_depth(out["gbuffers"])
        agreement.append(float((stored * implied).sum(0).mean()))
        assert torch.allclose(out["gbuffers"][3:6].norm(dim=0), torch.ones(32, 32), atol=1e-5), "normals stay unit"
        assert set(out["material_id"].unique().tolist()) <= {1, 2, 3}, "ids are never blended"
    assert min(agreement) > (0.999 if not rotation else 0.95), agreement


def test_exact_patches_copy_source_pixels_and_the_others_stay_inside_the_frame():
    item = height_field_item()
    settings = AugmentSettings(patch=16, exact_fraction=1.0, quarter_turns=False, flips=False)
    generator = torch.Generator().manual_seed(3)
    for _ in range(10):
        out = cut_patch(prepare_frame(item, PASSES), draw_transform(settings, H, W, generator), 16)
        # an unturned, unscaled patch is a plain crop: find where it came from
        top = int(round(float(out["image"][1, 0, 0]) * H - 0.5))
        left = int(round(float(out["image"][0, 0, 0]) * W - 0.5))
        assert torch.equal(out["image"], item["image"][:, top : top + 16, left : left + 16])
    wide = AugmentSettings(patch=32, scale_min=0.5, scale_max=2.0, max_rotation_degrees=30, exact_fraction=0.0)
    for _ in range(20):
        transform = draw_transform(wide, H, W, generator)
        half = transform.scale * 32 * (abs(transform.matrix[0]) + abs(transform.matrix[1])) / 2
        x, y = transform.centre
        assert half - 1e-6 <= x <= W - half + 1e-6 and half - 1e-6 <= y <= H - half + 1e-6
        assert transform.scale <= min(H, W) / 32 / (abs(transform.matrix[0]) + abs(transform.matrix[1])) + 1e-9


def test_a_batch_is_a_pure_function_of_the_generator_seed():
    items = [height_field_item(), {k: v.flip(-1) for k, v in height_field_item().items()}]
    frames = [prepare_frame(item, PASSES) for item in items]
    settings = AugmentSettings(patch=24)
    first = augmented_batch(frames, settings, 5, torch.Generator().manual_seed(7))
    again = augmented_batch(frames, settings, 5, torch.Generator().manual_seed(7))
    other = augmented_batch(frames, settings, 5, torch.Generator().manual_seed(8))
    assert first["gbuffers"].shape == (5, 8, 24, 24) and first["material_id"].shape == (5, 24, 24)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["image"], other["image"])
    assert math.isclose(float(first["gbuffers"][:, -1].min()), 1.0)
