"""Unit tests of the G-buffer reader (stylepass.core.io.gbuffer) on synthetic exports.

The EXRs written here mirror what Blender really writes (checked against exports of
Blender 4.5 and 5.2): 4.5 writes one interleaved part with short layer names
(``ViewLayer.DiffCol``, ``ViewLayer.IndexMA``); 5.x writes one part per pass, named after
the layer, with long names (``ViewLayer.Diffuse Color``, ``ViewLayer.Material Index``).
Colour passes are half float, data passes float32. Eevee has no material index; it writes
Cryptomatte (``ViewLayer.CryptoMaterial00..02.r/g/b/a``) with the manifest in the first
part's header.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
import torch

from stylepass.blender_addon.contract.export_format import MANIFEST_NAME, SCHEMA_VERSION
from stylepass.core.io.gbuffer import (
    GBufferError,
    GBufferWarning,
    MissingPassError,
    exported_frames,
    iter_export,
    read_gbuffer,
)

H, W = 6, 8
CLIP_END = 100.0
BACKGROUND = 1e10  # what Cycles (4.5 and 5.x) and Eevee 5.x write where nothing was hit
MATERIALS = [{"id": 1, "name": "GlassPlasticMat"}, {"id": 2, "name": "HoseMat"},
             {"id": 7, "name": "RubberWoodMat"}]

# Blender's layer names by version: (4.5, 5.x)
LAYER_NAMES = {
    "beauty": ("Combined", "Combined"),
    "albedo": ("DiffCol", "Diffuse Color"),
    "glossy_albedo": ("GlossCol", "Glossy Color"),
    "normal": ("Normal", "Normal"),
    "depth": ("Depth", "Depth"),
    "material_index": ("IndexMA", "Material Index"),
    "motion": ("Vector", "Vector"),
    "noisy": ("Noisy Image", "Noisy Image"),
}
SUFFIXES = {
    "beauty": "RGBA", "albedo": "RGB", "glossy_albedo": "RGB", "normal": "XYZ", "depth": "Z",
    "material_index": "X", "motion": "XYZW", "noisy": "RGBA",
}
HALF = {"beauty", "albedo", "glossy_albedo", "noisy"}
# the part order of a real Blender 5.2 Cycles export
PART_ORDER = ("beauty", "depth", "normal", "motion", "material_index", "albedo", "glossy_albedo", "noisy")
LAYOUTS = ("4.5", "5.x")


# ---------------------------------------------------------------------------------------
# helpers: sidecars and EXRs as Blender writes them


def rotation_x(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def rotation_z(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def world_to_camera_matrix(rotation: np.ndarray, translation=(0.3, -1.2, -4.0)) -> list[list[float]]:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix.tolist()


def make_sidecar(width: int = W, height: int = H, *, frame: int = 1,
                 world_to_camera: list[list[float]] | None = None, clip_end: float = CLIP_END,
                 materials: list[dict] | None = None, engine: str = "CYCLES",
                 exr_bytes: int = 0, passes: tuple[str, ...] | None = None) -> dict:
    """A sidecar with the key structure of a real one (Blender 5.2 export)."""
    w2c = world_to_camera if world_to_camera is not None else np.eye(4).tolist()
    c2w = np.linalg.inv(np.asarray(w2c)).tolist()
    stem = f"frame_{frame:06d}"
    return {
        "blend_file": None,
        "blender_version": "5.2.3 LTS",
        "camera": {
            "camera_to_world": c2w,
            "clip_end": clip_end,
            "clip_start": 0.1,
            "intrinsics": {"cx": width / 2, "cy": height / 2, "fx": 1.39 * width, "fy": 1.39 * width},
            "lens_mm": 50.0,
            "name": "Stylepass Camera",
            "ortho_scale": 6.0,
            "projection_matrix": [[2.78, 0, 0, 0], [0, 2.78, 0, 0], [0, 0, -1.0, -0.2], [0, 0, -1, 0]],
            "sensor_fit": "AUTO",
            "sensor_height_mm": 24.0,
            "sensor_width_mm": 36.0,
            "type": "PERSP",
            "world_to_camera": w2c,
        },
        "engine": engine,
        "exr": {"bytes": exr_bytes, "file": f"{stem}.exr"},
        "fps": 24.0,
        "frame": frame,
        "materials": MATERIALS if materials is None else materials,
        "passes": list(passes or ("beauty", "albedo", "glossy_albedo", "normal", "depth", "material_index",
                                  "motion")),
        "pixel_aspect": [1.0, 1.0],
        "resolution": [width, height],
        "samples": 4,
        "scene": "Scene",
        "schema_version": SCHEMA_VERSION,
        "seed": 0,
        "view_layer": "ViewLayer",
        "view_transform": {"display_device": "sRGB", "exposure": 0.0, "gamma": 1.0,
                           "look": "None", "view_transform": "AgX"},
    }


def make_passes(height: int = H, width: int = W, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible pass data, (C,H,W) float32: the right-most column is background."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(3, height, width))
    normal /= np.linalg.norm(normal, axis=0)
    beauty = np.concatenate([rng.uniform(0, 2, (3, height, width)), np.ones((1, height, width))])
    depth = rng.uniform(1.0, 50.0, (1, height, width))
    index = rng.integers(1, 3, (1, height, width)).astype(np.float64)
    index[0, :, 3] = 7
    depth[0, :, -1] = BACKGROUND
    index[0, :, -1] = 0
    normal[:, :, -1] = 0
    return {
        "beauty": beauty.astype(np.float32),
        "albedo": rng.uniform(0, 1, (3, height, width)).astype(np.float32),
        "glossy_albedo": rng.uniform(0, 1, (3, height, width)).astype(np.float32),
        "normal": normal.astype(np.float32),
        "depth": depth.astype(np.float32),
        "material_index": index.astype(np.float32),
        "motion": rng.normal(0, 3, (4, height, width)).astype(np.float32),
        "noisy": beauty.astype(np.float32),
    }


def blender_channels(passes: dict[str, np.ndarray], layout: str) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {full channel name: (H,W) array}} with Blender's names and dtypes."""
    version = LAYOUTS.index(layout)
    layers = {}
    for name in PART_ORDER:
        if name not in passes:
            continue
        layer = f"ViewLayer.{LAYER_NAMES[name][version]}"
        dtype = np.float16 if name in HALF else np.float32
        layers[layer] = {f"{layer}.{suffix}": np.ascontiguousarray(passes[name][i], dtype=dtype)
                         for i, suffix in enumerate(SUFFIXES[name])}
    return layers


def cryptomatte_layers(hashes: np.ndarray, second: np.ndarray | None = None,
                       coverage: float = 0.8) -> dict[str, dict[str, np.ndarray]]:
    """Eevee's CryptoMaterial00..02: r/g = rank-0 hash bits/coverage, b/a = rank 1."""
    height, width = hashes.shape
    zeros = np.zeros((height, width), np.float32)
    second = np.zeros_like(hashes) if second is None else second
    rank0 = np.ascontiguousarray(hashes, dtype=np.uint32).view(np.float32)
    rank1 = np.ascontiguousarray(second, dtype=np.uint32).view(np.float32)
    layers = {}
    for level in range(3):
        layer = f"ViewLayer.CryptoMaterial{level:02d}"
        if level == 0:
            values = {"r": rank0, "g": np.where(hashes != 0, coverage, 0).astype(np.float32),
                      "b": rank1, "a": np.where(second != 0, 1 - coverage, 0).astype(np.float32)}
        else:
            values = dict.fromkeys("rgba", zeros)
        layers[layer] = {f"{layer}.{c}": np.ascontiguousarray(values[c]) for c in "rgba"}
    return layers


def cryptomatte_header(manifest: dict[str, str]) -> dict[str, str]:
    return {
        "cryptomatte/c7dbf5e/conversion": "uint32_to_float32",
        "cryptomatte/c7dbf5e/hash": "MurmurHash3_32",
        "cryptomatte/c7dbf5e/manifest": json.dumps(manifest, separators=(",", ":")),
        "cryptomatte/c7dbf5e/name": "ViewLayer.CryptoMaterial",
    }


def write_exr(path: Path, layers: dict[str, dict[str, np.ndarray]], layout: str,
              extra_header: dict | None = None) -> Path:
    """4.5: one part with every channel; 5.x: one part per layer (metadata on the first)."""
    base = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
            "BlenderMultiChannel": "Blender V2.55.1 and newer", "Frame": "1", "Scene": "Scene"}
    metadata = dict(extra_header or {})
    if layout == "4.5":
        channels = {name: pixels for layer in layers.values() for name, pixels in layer.items()}
        OpenEXR.File({**base, **metadata}, channels).write(str(path))
    else:
        parts = []
        for i, (layer, channels) in enumerate(layers.items()):
            header = {**base, "Software": "Blender 5.2.3 LTS", **(metadata if i == 0 else {})}
            parts.append(OpenEXR.Part(header, channels, layer))
        OpenEXR.File(parts).write(str(path))
    return path


def write_frame(folder: Path, passes: dict[str, np.ndarray], layout: str, *, frame: int = 1,
                sidecar: dict | None = None, extra_layers: dict | None = None,
                extra_header: dict | None = None) -> Path:
    """An EXR plus its sidecar (with the true byte size) as the exporter leaves them."""
    stem = f"frame_{frame:06d}"
    height, width = passes["normal" if "normal" in passes else "beauty"].shape[1:]
    layers = blender_channels(passes, layout)
    layers.update(extra_layers or {})
    exr = write_exr(folder / f"{stem}.exr", layers, layout, extra_header)
    meta = sidecar if sidecar is not None else make_sidecar(width, height, frame=frame)
    meta = {**meta, "frame": frame, "exr": {"bytes": exr.stat().st_size, "file": exr.name}}
    (folder / f"{stem}.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return exr


def read_quietly(path: Path):
    """read_gbuffer, failing the test on any GBufferWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", GBufferWarning)
        return read_gbuffer(path)


# ---------------------------------------------------------------------------------------
# both layouts


@pytest.mark.parametrize("layout", LAYOUTS)
def test_written_files_mirror_blenders_layout(tmp_path, layout):
    """Guard for the helpers: part count, names and dtypes as Blender writes them."""
    exr = write_frame(tmp_path, make_passes(), layout)
    parts = OpenEXR.File(str(exr), separate_channels=True).parts
    channels = {name: c.pixels.dtype for part in parts for name, c in part.channels.items()}
    if layout == "4.5":
        assert len(parts) == 1
        assert "ViewLayer.DiffCol.R" in channels and "ViewLayer.IndexMA.X" in channels
    else:
        assert [part.name() for part in parts][:3] == ["ViewLayer.Combined", "ViewLayer.Depth",
                                                       "ViewLayer.Normal"]
        assert "ViewLayer.Diffuse Color.R" in channels and "ViewLayer.Material Index.X" in channels
    assert channels["ViewLayer.Combined.R"] == np.float16
    assert channels["ViewLayer.Depth.Z"] == np.float32


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reads_documented_shapes_dtypes_and_values(tmp_path, layout):
    passes = make_passes()
    frame = read_quietly(write_frame(tmp_path, passes, layout))

    assert frame.size == (H, W)
    expected = {"beauty": ((3, H, W), np.float32), "albedo": ((3, H, W), np.float32),
                "normal": ((3, H, W), np.float32), "depth": ((H, W), np.float32),
                "valid": ((H, W), np.bool_), "material_id": ((H, W), np.int32),
                "motion": ((4, H, W), np.float32), "glossy_albedo": ((3, H, W), np.float32)}
    for name, (shape, dtype) in expected.items():
        array = getattr(frame, name)
        assert array.shape == shape, name
        assert array.dtype == dtype, name
    hit = np.ones((H, W), bool)
    hit[:, -1] = False
    np.testing.assert_array_equal(frame.valid, hit)
    # colour passes went through half float, data passes are exact
    half = passes["beauty"][:3].astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(frame.beauty, half)
    np.testing.assert_array_equal(frame.albedo, passes["albedo"].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(frame.depth[hit], passes["depth"][0][hit])
    np.testing.assert_array_equal(frame.material_id, np.where(hit, passes["material_index"][0], 0))
    assert set(np.unique(frame.material_id[hit])) <= {1, 2, 7}
    np.testing.assert_array_equal(frame.motion, passes["motion"])
    np.testing.assert_array_equal(frame.glossy_albedo, passes["glossy_albedo"].astype(np.float16).astype(np.float32))
    assert frame.repaired == {}
    assert frame.meta["frame"] == 1 and frame.path.name == "frame_000001.exr"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("optional", ["motion", "glossy_albedo"])
def test_optional_pass_is_none_when_not_exported(tmp_path, layout, optional):
    passes = make_passes()
    del passes[optional]
    frame = read_quietly(write_frame(tmp_path, passes, layout))
    assert getattr(frame, optional) is None
    assert optional not in frame.to_tensors()
    other = {"motion": "glossy_albedo", "glossy_albedo": "motion"}[optional]
    assert getattr(frame, other) is not None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_non_finite_glossy_colour_is_zeroed_without_masking(tmp_path, layout):
    """Few models read the glossy colour: a hole in it must not mask pixels for the others."""
    passes = make_passes()
    passes["glossy_albedo"][0, 1, 2], passes["glossy_albedo"][1, 4, 5] = np.nan, np.inf
    frame = read_quietly(write_frame(tmp_path, passes, layout))
    assert frame.valid[1, 2] and frame.valid[4, 5] and frame.repaired == {}
    assert frame.glossy_albedo[0, 1, 2] == 0.0 and frame.glossy_albedo[1, 4, 5] == 1.0
    assert np.isfinite(frame.glossy_albedo).all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_glossy_colour_is_clipped_like_albedo(tmp_path, layout):
    """A glossy colour above 1 (a light-emitting coat) or below 0 is clipped to [0, 1]."""
    passes = make_passes()
    passes["glossy_albedo"][0, 0, 0], passes["glossy_albedo"][2, 1, 1] = 3.5, -0.25
    frame = read_quietly(write_frame(tmp_path, passes, layout))
    assert frame.glossy_albedo[0, 0, 0] == 1.0 and frame.glossy_albedo[2, 1, 1] == 0.0


# ---------------------------------------------------------------------------------------
# background and depth


@pytest.mark.parametrize("layout", LAYOUTS)
def test_background_depth_1e10_is_masked(tmp_path, layout):
    passes = make_passes()
    passes["depth"][0, 2, 2] = BACKGROUND  # a background pixel inside the image
    passes["material_index"][0, 2, 2] = 2  # even if some pass claims a material there
    frame = read_quietly(write_frame(tmp_path, passes, layout))

    for y, x in [(2, 2), (0, W - 1), (H - 1, W - 1)]:
        assert not frame.valid[y, x]
        assert frame.depth[y, x] == 0
        assert frame.material_id[y, x] == 0
        assert np.all(frame.normal[:, y, x] == 0)
    assert frame.depth.max() < 1e9
    assert frame.valid.sum() == H * (W - 1) - 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_eevee_45_background_at_clip_end_is_masked(tmp_path, layout):
    """Eevee 4.5 writes (nearly) clip_end, not 1e10, where nothing was hit."""
    passes = make_passes()
    passes["depth"][0, :, -1] = 99.99771  # the value of a real Eevee 4.5 render, clip_end 100
    passes["depth"][0, 0, 0] = CLIP_END
    passes["depth"][0, 1, 0] = 97.0  # far geometry, but geometry
    frame = read_quietly(write_frame(tmp_path, passes, layout,
                                     sidecar=make_sidecar(clip_end=CLIP_END, engine="BLENDER_EEVEE")))

    assert not frame.valid[:, -1].any()
    assert not frame.valid[0, 0]
    assert np.all(frame.depth[:, -1] == 0) and frame.depth[0, 0] == 0
    assert np.all(frame.material_id[:, -1] == 0) and frame.material_id[0, 0] == 0
    assert frame.valid[1, 0] and frame.depth[1, 0] == pytest.approx(97.0)


def test_depth_never_holds_huge_values_even_with_huge_clip_end(tmp_path):
    passes = make_passes()
    passes["depth"][0, 0, 0] = 5e9
    frame = read_quietly(write_frame(tmp_path, passes, "5.x", sidecar=make_sidecar(clip_end=1e12)))
    assert frame.depth.max() < 1e9
    assert not frame.valid[0, 0]


# ---------------------------------------------------------------------------------------
# normals


@pytest.mark.parametrize("layout", LAYOUTS)
def test_normals_are_rotated_to_camera_space(tmp_path, layout):
    rotation = rotation_x(90) @ rotation_z(30)  # world -> camera
    passes = make_passes()
    towards_camera = rotation.T @ np.array([0.0, 0.0, 1.0])  # world vector that faces the viewer
    passes["normal"][:, 0, 0] = towards_camera
    passes["normal"][:, 0, 1] = [0.0, 0.0, 1.0]  # world up
    passes["normal"][:, 0, 2] = [0.0, 0.0, 0.5]  # not unit length (filtered / interpolated)
    sidecar = make_sidecar(world_to_camera=world_to_camera_matrix(rotation))
    frame = read_quietly(write_frame(tmp_path, passes, layout, sidecar=sidecar))

    np.testing.assert_allclose(frame.normal[:, 0, 0], [0, 0, 1], atol=1e-6)
    # world +Z seen by a camera rotated 90 degrees about X: camera -Y
    np.testing.assert_allclose(frame.normal[:, 0, 1], [0, -1, 0], atol=1e-6)
    np.testing.assert_allclose(frame.normal[:, 0, 2], [0, -1, 0], atol=1e-6)
    valid = frame.valid
    expected = np.einsum("ij,jn->in", rotation, passes["normal"][:, valid])
    np.testing.assert_allclose(frame.normal[:, valid],
                               expected / np.linalg.norm(expected, axis=0), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(frame.normal, axis=0)[valid], 1.0, atol=1e-5)
    assert np.all(frame.normal[:, ~valid] == 0)


# ---------------------------------------------------------------------------------------
# ranges


@pytest.mark.parametrize("layout", LAYOUTS)
def test_hdr_beauty_survives_and_albedo_is_clipped(tmp_path, layout):
    passes = make_passes()
    passes["beauty"][:3, 1, 1] = 500.0
    passes["beauty"][0, 1, 2] = 20000.0
    passes["beauty"][1, 2, 2] = -0.25  # denoiser undershoot
    passes["albedo"][:, 3, 3] = [1.7, -0.2, 0.5]
    frame = read_quietly(write_frame(tmp_path, passes, layout))

    np.testing.assert_array_equal(frame.beauty[:, 1, 1], [500.0, 500.0, 500.0])
    assert frame.beauty[0, 1, 2] == 20000.0
    assert frame.beauty[1, 2, 2] == 0.0 and frame.beauty.min() >= 0.0
    np.testing.assert_allclose(frame.albedo[:, 3, 3], [1.0, 0.0, 0.5])
    assert frame.albedo.min() >= 0.0 and frame.albedo.max() <= 1.0
    assert frame.valid[1, 1] and frame.valid[3, 3]


# ---------------------------------------------------------------------------------------
# non-finite values


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pass_name", ["beauty", "albedo", "normal", "depth", "material_index", "motion"])
def test_non_finite_values_are_zeroed_masked_and_reported(tmp_path, layout, pass_name):
    passes = make_passes()
    passes[pass_name][0, 1, 2] = np.nan
    last = min(passes[pass_name].shape[0], 3) - 1  # beauty's alpha is not read
    passes[pass_name][last, 4, 5] = np.inf
    passes[pass_name][0, 3, 0] = -np.inf
    with pytest.warns(GBufferWarning) as record:
        frame = read_gbuffer(write_frame(tmp_path, passes, layout))

    message = " ".join(str(w.message) for w in record)
    assert f"{pass_name}: 3 px" in message
    assert "frame_000001.exr" in message
    assert frame.repaired == {pass_name: 3}
    for y, x in [(1, 2), (4, 5), (3, 0)]:
        assert not frame.valid[y, x]
        assert frame.depth[y, x] == 0 and frame.material_id[y, x] == 0
        assert np.all(frame.normal[:, y, x] == 0)
    assert frame.valid.sum() == H * (W - 1) - 3
    arrays = [frame.beauty, frame.albedo, frame.glossy_albedo, frame.normal, frame.depth, frame.motion]
    assert all(np.isfinite(a).all() for a in arrays)
    if pass_name in ("beauty", "albedo", "motion"):
        array = getattr(frame, pass_name)
        assert array[0, 1, 2] == 0 and array[last, 4, 5] == 0 and array[0, 3, 0] == 0


# ---------------------------------------------------------------------------------------
# Cryptomatte (Eevee)

# Cryptomatte stores 32-bit name hashes as float bits; the manifest maps names to hex.
CRYPTO_MANIFEST = {"GlassPlasticMat": "3913209d", "RubberWoodMat": "4a8b2c11",
                   "NotInSidecar": "5c0ffee5", "HoseMat": "2e1f0a77"}


def crypto_hash(name: str) -> int:
    return int(CRYPTO_MANIFEST[name], 16)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cryptomatte_material_ids_through_manifest_and_sidecar(tmp_path, layout):
    passes = make_passes()
    del passes["material_index"]  # Eevee: no material index pass
    hashes = np.zeros((H, W), np.uint32)  # 0 = background, not in the manifest
    hashes[:, :3] = crypto_hash("GlassPlasticMat")
    hashes[:, 3:5] = crypto_hash("RubberWoodMat")
    hashes[:, 5] = crypto_hash("NotInSidecar")
    hashes[:, 6] = crypto_hash("GlassPlasticMat")
    hashes[0, 6] = 0xDEADBEEF  # a hash the manifest does not know
    second = np.full((H, W), crypto_hash("HoseMat"), np.uint32)  # rank 1 must be ignored
    exr = write_frame(tmp_path, passes, layout, extra_layers=cryptomatte_layers(hashes, second),
                      extra_header=cryptomatte_header(CRYPTO_MANIFEST),
                      sidecar=make_sidecar(engine="BLENDER_EEVEE_NEXT"))
    assert np.float32(np.array([0x3913209D], np.uint32).view(np.float32)[0]) == pytest.approx(1.4031e-4, rel=1e-3)
    frame = read_quietly(exr)

    expected = np.zeros((H, W), np.int32)
    expected[:, :3] = 1
    expected[:, 3:5] = 7
    expected[:, 6] = 1
    expected[0, 6] = 0
    expected[:, -1] = 0  # background depth
    np.testing.assert_array_equal(frame.material_id, expected)
    assert frame.material_id.dtype == np.int32


def test_cryptomatte_background_is_zero_even_where_depth_is_valid(tmp_path):
    passes = make_passes()
    del passes["material_index"]
    hashes = np.zeros((H, W), np.uint32)
    hashes[:2] = crypto_hash("HoseMat")
    frame = read_quietly(write_frame(tmp_path, passes, "4.5", extra_layers=cryptomatte_layers(hashes),
                                     extra_header=cryptomatte_header(CRYPTO_MANIFEST)))
    assert np.all(frame.material_id[:2, :-1] == 2)
    assert np.all(frame.material_id[2:] == 0)


def test_material_index_wins_over_cryptomatte(tmp_path):
    passes = make_passes()
    hashes = np.full((H, W), crypto_hash("RubberWoodMat"), np.uint32)
    frame = read_quietly(write_frame(tmp_path, passes, "5.x", extra_layers=cryptomatte_layers(hashes),
                                     extra_header=cryptomatte_header(CRYPTO_MANIFEST)))
    hit = frame.valid
    np.testing.assert_array_equal(frame.material_id[hit], passes["material_index"][0][hit])


def test_no_material_pass_at_all_is_a_missing_pass(tmp_path):
    passes = make_passes()
    del passes["material_index"]
    exr = write_frame(tmp_path, passes, "5.x")
    with pytest.raises(MissingPassError, match="Material Index.*Cryptomatte") as info:
        read_gbuffer(exr)
    assert str(exr) in str(info.value) and "Set up passes" in str(info.value)


# ---------------------------------------------------------------------------------------
# errors


def test_missing_exr_with_sidecar(tmp_path):
    exr = write_frame(tmp_path, make_passes(), "5.x")
    exr.unlink()
    with pytest.raises(GBufferError, match="export the frame again") as info:
        read_gbuffer(exr)
    assert str(exr) in str(info.value) and "not found" in str(info.value)


def test_missing_exr_and_sidecar_names_the_exr(tmp_path):
    exr = tmp_path / "frame_000042.exr"
    with pytest.raises(GBufferError, match="not found") as info:
        read_gbuffer(exr)
    assert str(exr) in str(info.value)


def test_corrupt_exr(tmp_path):
    exr = write_frame(tmp_path, make_passes(), "5.x")
    exr.write_bytes(b"this is not an EXR at all \x00\xff" * 40)
    with pytest.raises(GBufferError, match="export the frame again") as info:
        read_gbuffer(exr)
    assert str(exr) in str(info.value) and "not a readable EXR" in str(info.value)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("keep", [0.6, 0.97, -8])
def test_truncated_exr(tmp_path, layout, keep):
    """The first part of a real-size file (a copy that stopped early), cut at several places."""
    passes = make_passes(96, 96)  # big enough for several chunks per part
    exr = write_frame(tmp_path, passes, layout, sidecar=make_sidecar(96, 96))
    data = exr.read_bytes()
    cut = int(len(data) * keep) if keep > 0 else len(data) + keep
    exr.write_bytes(data[:cut])
    with pytest.raises(GBufferError, match="export the frame again") as info:
        read_gbuffer(exr)
    assert not isinstance(info.value, MissingPassError), "a truncated file is not a missing pass"
    assert str(exr) in str(info.value)
    assert re.search(r"damaged|incomplete|truncated", str(info.value))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pass_name,layer", [("beauty", "Combined"), ("albedo", "Diffuse Color"),
                                             ("normal", "Normal"), ("depth", "Depth")])
def test_exr_without_a_required_pass(tmp_path, layout, pass_name, layer):
    passes = make_passes()
    del passes[pass_name]
    exr = write_frame(tmp_path, passes, layout)
    with pytest.raises(MissingPassError) as info:
        read_gbuffer(exr)
    message = str(info.value)
    assert f"no {pass_name} pass" in message
    assert f"'ViewLayer.{layer}'" in message
    assert str(exr) in message and "Set up passes" in message


def test_missing_sidecar(tmp_path):
    exr = write_frame(tmp_path, make_passes(), "4.5")
    exr.with_suffix(".json").unlink()
    with pytest.raises(GBufferError, match="export it again") as info:
        read_gbuffer(exr)
    assert str(exr.with_suffix(".json")) in str(info.value)


def test_sidecar_that_is_not_json(tmp_path):
    exr = write_frame(tmp_path, make_passes(), "4.5")
    exr.with_suffix(".json").write_text('{"schema_version": 1, "fra')
    with pytest.raises(GBufferError, match="not readable JSON") as info:
        read_gbuffer(exr)
    assert str(exr.with_suffix(".json")) in str(info.value)


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 0, "1", None])
def test_sidecar_with_wrong_schema_version(tmp_path, version):
    sidecar = make_sidecar()
    if version is None:
        del sidecar["schema_version"]
    else:
        sidecar["schema_version"] = version
    exr = write_frame(tmp_path, make_passes(), "5.x", sidecar=sidecar)
    with pytest.raises(GBufferError, match="schema version") as info:
        read_gbuffer(exr)
    message = str(info.value)
    assert str(exr.with_suffix(".json")) in message and "export again" in message
    assert repr(version) in message


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sidecar_resolution_must_match_the_exr(tmp_path, layout):
    exr = write_frame(tmp_path, make_passes(), layout, sidecar=make_sidecar(W, H + 1))
    with pytest.raises(GBufferError, match="export the frame again") as info:
        read_gbuffer(exr)
    message = str(info.value)
    assert str(exr) in message and f"{W}x{H}" in message and f"{W}x{H + 1}" in message


def test_transposed_resolution_is_refused(tmp_path):
    exr = write_frame(tmp_path, make_passes(), "4.5", sidecar=make_sidecar(H, W))
    with pytest.raises(GBufferError, match=f"{W}x{H} but its sidecar says {H}x{W}"):
        read_gbuffer(exr)


# ---------------------------------------------------------------------------------------
# tensors


def test_to_tensors_shapes_and_dtypes(tmp_path):
    frame = read_quietly(write_frame(tmp_path, make_passes(), "5.x"))
    tensors = frame.to_tensors()
    expected = {"beauty": ((3, H, W), torch.float32), "albedo": ((3, H, W), torch.float32),
                "normal": ((3, H, W), torch.float32), "depth": ((1, H, W), torch.float32),
                "valid": ((1, H, W), torch.bool), "material_id": ((H, W), torch.int64),
                "motion": ((4, H, W), torch.float32), "glossy_albedo": ((3, H, W), torch.float32)}
    assert set(tensors) == set(expected)
    for name, (shape, dtype) in expected.items():
        assert tuple(tensors[name].shape) == shape, name
        assert tensors[name].dtype == dtype, name
        assert tensors[name].device.type == "cpu"
    assert torch.equal(tensors["depth"][0], torch.from_numpy(frame.depth))
    assert torch.equal(tensors["material_id"], torch.from_numpy(frame.material_id).long())


# ---------------------------------------------------------------------------------------
# export folders


def manifest_row(frame: int) -> str:
    stem = f"frame_{frame:06d}"
    return json.dumps({"exr": f"{stem}.exr", "frame": frame, "sidecar": f"{stem}.json"}, sort_keys=True)


def test_exported_frames_in_frame_order_despite_torn_last_line(tmp_path):
    frames = [12, 3, 7, 100]  # the order shards finished in
    for frame in frames:
        write_frame(tmp_path, make_passes(seed=frame), "5.x", frame=frame)
    torn = manifest_row(55)[:17]  # a writer killed mid-line
    (tmp_path / MANIFEST_NAME).write_text("\n".join(manifest_row(f) for f in frames) + "\n" + torn)

    paths = exported_frames(tmp_path)
    assert paths == [tmp_path / f"frame_{f:06d}.exr" for f in sorted(frames)]
    read = list(iter_export(tmp_path))
    assert [frame.meta["frame"] for frame in read] == sorted(frames)
    assert [frame.path for frame in read] == paths


def test_exported_frames_lists_a_re_exported_frame_once(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text("\n".join(manifest_row(f) for f in [2, 1, 2]) + "\n")
    assert exported_frames(tmp_path) == [tmp_path / "frame_000001.exr", tmp_path / "frame_000002.exr"]


def test_folder_without_manifest_is_refused(tmp_path):
    write_frame(tmp_path, make_passes(), "5.x")
    with pytest.raises(GBufferError, match=MANIFEST_NAME) as info:
        exported_frames(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(GBufferError):
        next(iter_export(tmp_path))


def test_a_sidecar_that_is_not_an_object_is_refused(tmp_path):
    from stylepass.core.io.gbuffer import GBufferError, read_sidecar

    (tmp_path / "frame_000001.json").write_text("[1, 2]")
    with pytest.raises(GBufferError, match="holds a JSON list, not the object an export writes"):
        read_sidecar(tmp_path / "frame_000001.json")


@pytest.mark.parametrize("name", ["../outside/frame_000001.exr", "/etc/frame_000001.exr", "sub/frame_000001.exr"])
def test_an_export_manifest_never_leads_out_of_its_folder(tmp_path, name):
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"frame": 1, "exr": name}) + "\n")
    with pytest.raises(GBufferError, match="never a path elsewhere"):
        exported_frames(tmp_path)
