"""Export the shared real glTF assets with `stylepass export` and read them back with core."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from stylepass.blender_addon.contract.export_format import MANIFEST_NAME, SIDECAR_KEYS
from stylepass.core.io.gbuffer import exported_frames, read_gbuffer

from .conftest import ExportRun, stylepass_export


def only_frame(run: ExportRun):
    frames = exported_frames(run.out)
    assert len(frames) == 1
    return read_gbuffer(frames[0])


@pytest.mark.parametrize("asset", ["BoomBox", "FlightHelmet", "WaterBottle"])
def test_every_pass_has_documented_shape_and_range(asset_exports, blender, asset):
    frame = only_frame(asset_exports[asset])
    assert frame.size == (128, 128)
    for image in (frame.beauty, frame.albedo, frame.normal):
        assert image.shape == (3, 128, 128) and image.dtype == np.float32
        assert np.isfinite(image).all()
    assert frame.depth.shape == frame.valid.shape == frame.material_id.shape == (128, 128)
    assert frame.material_id.dtype == np.int32 and frame.valid.dtype == np.bool_
    assert frame.beauty.min() >= 0 and frame.beauty[:, frame.valid].mean() > 0.01
    assert 0 <= frame.albedo.min() and frame.albedo.max() <= 1
    # Background is present and masked: no 1e10 depth, no normal, no material there.
    assert 0.05 < frame.valid.mean() < 0.98
    assert frame.depth.max() < 1e3 and (frame.depth[frame.valid] > 0).all()
    assert (frame.depth[~frame.valid] == 0).all() and (frame.material_id[~frame.valid] == 0).all()
    lengths = np.linalg.norm(frame.normal, axis=0)
    np.testing.assert_allclose(lengths[frame.valid], 1.0, atol=1e-4)
    assert (lengths[~frame.valid] == 0).all()
    # Camera-space normals of visible surfaces face the camera (+Z) on average.
    assert frame.normal[2][frame.valid].mean() > 0.3
    assert frame.motion is not None and frame.motion.shape == (4, 128, 128)
    assert frame.glossy_albedo is not None and frame.glossy_albedo.shape == (3, 128, 128)
    assert 0 <= frame.glossy_albedo.min() and frame.glossy_albedo.max() <= 1


def test_metal_gets_its_colour_from_the_glossy_pass(asset_exports, blender):
    """The BoomBox is metal: its Diffuse Color is black, the glossy colour holds its grey body."""
    frame = only_frame(asset_exports["BoomBox"])
    on = frame.valid
    assert frame.albedo[:, on].mean() < 0.02
    assert frame.glossy_albedo[:, on].mean() > 0.1


@pytest.mark.parametrize("asset", ["BoomBox", "FlightHelmet", "WaterBottle"])
def test_sidecar_and_manifest_describe_the_frame(asset_exports, blender, asset):
    run = asset_exports[asset]
    sidecar = json.loads((run.out / "frame_000001.json").read_text())
    assert set(SIDECAR_KEYS) <= set(sidecar)
    assert sidecar["blender_version"].startswith(blender)
    assert sidecar["engine"] == "CYCLES" and sidecar["samples"] == 4
    assert sidecar["resolution"] == [128, 128]
    assert sidecar["exr"] == {"file": "frame_000001.exr", "bytes": (run.out / "frame_000001.exr").stat().st_size}
    intrinsics = sidecar["camera"]["intrinsics"]
    assert intrinsics["fx"] > 0 and intrinsics["cx"] == pytest.approx(64)
    assert set(sidecar["passes"]) >= {"beauty", "albedo", "glossy_albedo", "normal", "depth", "material_index",
                                      "motion"}
    manifest = [json.loads(line) for line in (run.out / MANIFEST_NAME).read_text().splitlines()]
    assert manifest == [{"frame": 1, "exr": "frame_000001.exr", "sidecar": "frame_000001.json"}]


def test_flight_helmet_materials_get_six_distinct_ids(asset_exports, blender):
    frame = only_frame(asset_exports["FlightHelmet"])
    table = frame.meta["materials"]
    assert len(table) == 6
    assert sorted(row["id"] for row in table) == [1, 2, 3, 4, 5, 6]
    # Ids are given in name order, so the same asset always gets the same ids.
    assert [row["name"] for row in sorted(table, key=lambda r: r["id"])] == sorted(r["name"] for r in table)
    visible = set(np.unique(frame.material_id[frame.valid]).tolist())
    assert visible <= {1, 2, 3, 4, 5, 6} and len(visible) >= 4


def test_missing_textures_warn_and_the_export_goes_on(asset_exports, blender):
    output = asset_exports["FlightHelmet"].output
    assert "warning: missing texture" in output and "LeatherPartsMat" in output


def test_eevee_export_of_a_real_asset_matches_cycles(blender, assets, tmp_path):
    """Eevee has no Material Index pass: ids come from Cryptomatte and must agree with Cycles'."""
    helmet = assets / "FlightHelmet" / "FlightHelmet.gltf"
    options = ("--resolution", "64x64", "--samples", "1")
    eevee = stylepass_export(helmet, tmp_path / "eevee", blender, "--engine", "eevee", *options)
    assert eevee.returncode == 0, eevee.output[-4000:]
    cycles = stylepass_export(helmet, tmp_path / "cycles", blender, "--engine", "cycles", *options)
    assert cycles.returncode == 0, cycles.output[-4000:]
    frame_e, frame_c = only_frame(eevee), only_frame(cycles)
    assert frame_e.meta["engine"].startswith("BLENDER_EEVEE")
    assert "material_cryptomatte" in frame_e.meta["passes"]
    assert frame_e.meta["materials"] == frame_c.meta["materials"]
    visible = set(np.unique(frame_e.material_id[frame_e.valid]).tolist()) - {0}
    assert visible <= {1, 2, 3, 4, 5, 6} and len(visible) >= 4
    both = frame_e.valid & frame_c.valid
    assert both.sum() > 0.9 * frame_c.valid.sum(), "Eevee and Cycles see the same silhouette"
    # Eevee leaves some transparent surfaces (the helmet's visor) out of its Cryptomatte:
    # those pixels keep id 0. Everywhere Eevee names a material, it is Cycles' material.
    named = both & (frame_e.material_id > 0)
    assert named.sum() > 0.9 * both.sum()
    assert (frame_e.material_id[named] == frame_c.material_id[named]).mean() > 0.95
    relative = np.abs(frame_e.depth[both] - frame_c.depth[both]) / frame_c.depth[both]
    assert np.median(relative) < 0.005 and np.percentile(relative, 95) < 0.03  # edges and glass differ
    assert (frame_e.normal[:, both] * frame_c.normal[:, both]).sum(axis=0).mean() > 0.95
    # Eevee writes the glossy colour too (its UI calls it Specular Color), close to Cycles' on the helmet
    glossy_gap = np.abs(frame_e.glossy_albedo[:, both] - frame_c.glossy_albedo[:, both]).mean()
    assert frame_e.glossy_albedo[:, both].mean() > 0.02 and glossy_gap < 0.1


def test_a_damaged_texture_warns_and_the_export_goes_on(blender, assets, tmp_path):
    copy = tmp_path / "BoomBox"
    shutil.copytree(assets / "BoomBox", copy)
    damaged = sorted(copy.glob("*.png"))[0]
    damaged.write_bytes(b"\\x89PNG\\r\\n\\x1a\\n" + b"not an image" * 20)
    run = stylepass_export(copy / "BoomBox.gltf", tmp_path / "out", blender, "--resolution", "32x32", "--samples", "1")
    assert run.returncode == 0, run.output[-3000:]
    assert "warning: unreadable texture" in run.output and damaged.name in run.output
