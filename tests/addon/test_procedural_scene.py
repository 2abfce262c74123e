"""The seeded procedural scene generator, inside bpy: determinism, framing, materials, assets,
placement, a tiny render and bad settings."""

from __future__ import annotations

import importlib
import itertools
import random
from pathlib import Path
from types import ModuleType

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from mathutils.bvhtree import BVHTree

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets" / "gltf"
TEXTURES = {"tex_noise", "tex_voronoi", "tex_checker", "tex_wave"}
SEEDS = range(8)


@pytest.fixture(scope="module")
def procedural(addon: ModuleType) -> ModuleType:
    return importlib.import_module("bl_ext.user_default.stylepass.scene.procedural_scene")


@pytest.fixture(scope="module")
def gltf_assets() -> tuple[str, ...]:
    found = tuple(sorted(str(p) for p in ASSETS.glob("*/*.gltf")))
    if len(found) != 3:
        pytest.fail(f"the shared glTF assets are missing: {ASSETS}")
    return found


def subject_roots(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return sorted((o for o in scene.objects if o.name.startswith("Proc Subject")), key=lambda o: o.name)


def subject_meshes(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The meshes that show a subject: the root itself, or an asset's meshes under it."""
    family = [root, *root.children_recursive]
    return [o for o in family if o.type == "MESH"]


def frame_coordinates(scene: bpy.types.Scene, obj: bpy.types.Object) -> list[Vector]:
    return [world_to_camera_view(scene, scene.camera, obj.matrix_world @ Vector(c)) for c in obj.bound_box]


def test_same_seed_gives_the_same_scene(procedural, gltf_assets):
    settings = procedural.ProceduralSettings(assets=gltf_assets)
    first = procedural.describe_scene(procedural.build_procedural_scene(7, settings))
    random.seed(12345)  # the generator must not depend on Python's global RNG ...
    bpy.ops.mesh.primitive_cube_add()  # ... nor on what the open file held
    second = procedural.describe_scene(procedural.build_procedural_scene(7, settings))
    assert first == second
    assert first["seed"] == 7 and first["camera"]["name"] == "Proc Camera"


def test_different_seeds_give_visibly_different_scenes(procedural):
    descriptions = [procedural.describe_scene(procedural.build_procedural_scene(seed)) for seed in SEEDS]
    for a, b in itertools.combinations(descriptions, 2):
        assert a["camera"]["location"] != b["camera"]["location"]
        assert [o["location"] for o in a["objects"]] != [o["location"] for o in b["objects"]]
        assert [m["base_color"] for m in a["materials"]] != [m["base_color"] for m in b["materials"]]
    kinds = {o["kind"] for d in descriptions for o in d["objects"]}
    assert {"cube", "uv_sphere", "cylinder", "cone", "torus", "suzanne", "ground", "wall"} <= kinds
    assert {light["kind"] for d in descriptions for light in d["lights"]} == {"sun", "area", "point"}
    assert len({d["camera"]["lens"] for d in descriptions}) == len(descriptions)


def test_scene_is_ready_to_render(procedural):
    settings = procedural.ProceduralSettings(resolution=(320, 180), min_objects=3, max_objects=3)
    scene = procedural.build_procedural_scene(3, settings)
    assert scene == bpy.context.scene and scene.render.engine == "CYCLES"
    assert scene.frame_start == scene.frame_end == scene.frame_current == 1
    assert (scene.render.resolution_x, scene.render.resolution_y) == (320, 180)
    assert scene.camera is not None and scene.camera.type == "CAMERA"
    assert len(subject_roots(scene)) == 3
    assert scene.world is not None and not any(n.type == "TEX_ENVIRONMENT" for n in scene.world.node_tree.nodes)
    primitives = sum(len(o.data.polygons) for o in scene.objects if o.type == "MESH")
    assert primitives < 5000, "primitive scenes must stay cheap to render"


@pytest.mark.parametrize("resolution", [(256, 256), (320, 180), (180, 320)])
def test_every_subject_is_inside_the_frame(procedural, resolution):
    margin = 0.03
    for seed in SEEDS:
        settings = procedural.ProceduralSettings(resolution=resolution, frame_margin=margin, max_objects=6)
        scene = procedural.build_procedural_scene(seed, settings)
        for root in subject_roots(scene):
            for obj in subject_meshes(root):
                for view in frame_coordinates(scene, obj):
                    assert margin - 1e-6 <= view.x <= 1 - margin + 1e-6, (seed, obj.name, view)
                    assert margin - 1e-6 <= view.y <= 1 - margin + 1e-6, (seed, obj.name, view)
                    assert view.z > scene.camera.data.clip_start, (seed, obj.name, view)


def objects_seen(scene: bpy.types.Scene, pixels: int = 48) -> set[str]:
    """Names of the objects that a ``pixels`` x ``pixels`` grid of camera rays hits first."""
    camera, depsgraph = scene.camera, bpy.context.evaluated_depsgraph_get()
    top_right, _, bottom_left, top_left = [camera.matrix_world @ v for v in camera.data.view_frame(scene=scene)]
    origin, across, down = camera.matrix_world.translation, top_right - top_left, bottom_left - top_left
    seen = set()
    for i, j in itertools.product(range(pixels), repeat=2):
        target = top_left + across * ((i + 0.5) / pixels) + down * ((j + 0.5) / pixels)
        hit, _, _, _, obj, _ = scene.ray_cast(depsgraph, origin, (target - origin).normalized())
        if hit:
            seen.add(obj.name)
    return seen


def test_no_subject_is_hidden_behind_another(procedural, gltf_assets):
    for seed in range(12):
        settings = procedural.ProceduralSettings(assets=gltf_assets if seed % 3 == 1 else ())
        scene = procedural.build_procedural_scene(seed, settings)
        seen = objects_seen(scene)
        for root in subject_roots(scene):
            assert seen & {m.name for m in subject_meshes(root)}, f"seed {seed}: {root.name} is out of sight"


def test_subjects_stand_on_the_ground_without_interpenetrating(procedural):
    for seed in SEEDS:
        scene = procedural.build_procedural_scene(seed, procedural.ProceduralSettings(min_objects=4, max_objects=6))
        trees = []
        for root in subject_roots(scene):
            (mesh,) = subject_meshes(root)
            vertices = [mesh.matrix_world @ v.co for v in mesh.data.vertices]
            assert min(v.z for v in vertices) == pytest.approx(0, abs=1e-4), f"seed {seed}: {mesh.name} floats"
            trees.append(BVHTree.FromPolygons(vertices, [tuple(p.vertices) for p in mesh.data.polygons]))
        for (i, a), (j, b) in itertools.combinations(enumerate(trees), 2):
            assert not a.overlap(b), f"seed {seed}: subjects {i + 1} and {j + 1} interpenetrate"


def test_materials_have_distinct_names_and_some_use_procedural_textures(procedural):
    textured = 0
    for seed in SEEDS:
        scene = procedural.build_procedural_scene(seed)
        description = procedural.describe_scene(scene)
        meshes = [o for o in scene.objects if o.type == "MESH"]
        names = [slot.material.name for o in meshes for slot in o.material_slots]
        assert len(names) == len(set(names)) == len(meshes), "every object has a material of its own"
        assert all(name.startswith("Proc Material ") for name in names)
        for material in description["materials"]:
            assert 0 <= material["roughness"] <= 1 and material["metallic"] in (0.0, 1.0)
            if set(material["textures"]) & TEXTURES:
                textured += 1
                assert "Base Color" in material["driven"]
    assert textured >= 5


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_texture_probability_is_obeyed(procedural, probability):
    settings = procedural.ProceduralSettings(texture_probability=probability)
    scene = procedural.build_procedural_scene(11, settings)
    materials = procedural.describe_scene(scene)["materials"]
    assert all(bool(set(m["textures"]) & TEXTURES) == bool(probability) for m in materials)


def test_gltf_assets_appear_framed_and_missing_textures_only_warn(procedural, gltf_assets, caplog):
    settings = procedural.ProceduralSettings(assets=gltf_assets, asset_probability=1.0,
                                             min_objects=3, max_objects=3)
    scene = procedural.build_procedural_scene(1, settings)  # seed 1 draws each asset once
    description = procedural.describe_scene(scene)
    roots = subject_roots(scene)
    assert sorted(r["stylepass_kind"] for r in roots) == [
        "asset:BoomBox.gltf", "asset:FlightHelmet.gltf", "asset:WaterBottle.gltf"]
    assert all(subject_meshes(r) for r in roots)
    missing = [str(ASSETS / "BoomBox" / "BoomBox_occlusionRoughnessMetallic.png")] + [
        str(ASSETS / "FlightHelmet" / f"FlightHelmet_Materials_LeatherPartsMat_{map_}.png")
        for map_ in ("BaseColor", "Normal", "OcclusionRoughMetal")]
    assert description["missing_textures"] == missing
    warned = [record.getMessage() for record in caplog.records if "missing texture" in record.getMessage()]
    assert warned == [f"missing texture {path} (rendered without it)" for path in missing], "warned, not failed"
    for obj in [m for r in roots for m in subject_meshes(r)]:
        assert all(0 <= v.x <= 1 and 0 <= v.y <= 1 for v in frame_coordinates(scene, obj)), obj.name


def test_cameras_and_lights_of_assets_are_left_out(procedural, tmp_path):
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.object.camera_add(location=(0, -5, 0))
    bpy.ops.object.light_add(type="POINT", location=(0, 0, 4))
    path = tmp_path / "lit_cube.glb"
    bpy.ops.export_scene.gltf(filepath=str(path), export_cameras=True, export_lights=True)
    settings = procedural.ProceduralSettings(assets=(str(path),), asset_probability=1.0, min_objects=1, max_objects=1)
    scene = procedural.build_procedural_scene(2, settings)
    assert [o.type for o in subject_roots(scene)[0].children_recursive] == ["MESH"]
    assert scene.camera.name == "Proc Camera"
    assert all(o.name.startswith("Proc Light") for o in scene.objects if o.type == "LIGHT")


def test_blend_assets_bring_their_meshes(procedural, tmp_path):
    mesh = bpy.data.meshes.new("Wedge")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 3)], [], [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)])
    holder = bpy.data.objects.new("Holder", None)
    wedge = bpy.data.objects.new("Wedge", mesh)
    wedge.parent = holder
    path = tmp_path / "wedge.blend"
    bpy.data.libraries.write(str(path), {holder, wedge})
    settings = procedural.ProceduralSettings(assets=(str(path),), asset_probability=1.0, min_objects=2, max_objects=2)
    scene = procedural.build_procedural_scene(5, settings)
    roots = subject_roots(scene)
    assert [r["stylepass_kind"] for r in roots] == ["asset:wedge.blend"] * 2
    assert [[m.data.name for m in subject_meshes(r)] for r in roots] == [["Wedge"], ["Wedge.001"]]
    assert "Holder" not in bpy.data.objects, "only mesh objects are appended"
    assert max(subject_meshes(roots[0])[0].dimensions) == pytest.approx(
        subject_meshes(roots[0])[0].dimensions.z)  # scaled as a whole, the wedge stays tall


def test_tiny_cycles_render_shows_the_subjects(procedural, tmp_path):
    scene = procedural.build_procedural_scene(4, procedural.ProceduralSettings(resolution=(32, 32)))
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    scene.render.film_transparent = True
    for obj in scene.objects:  # leave only the subjects opaque against the sky
        obj.hide_render = obj.get("stylepass_kind") in ("ground", "wall")
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = str(tmp_path / "tiny.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp_path / "tiny.png"))
    pixels = np.empty(32 * 32 * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    rgba = pixels.reshape(32, 32, 4)
    covered = rgba[..., 3] > 0.5
    assert 0.02 < covered.mean() < 0.95, "the subjects cover part of the frame"
    assert rgba[covered][:, :3].max() > 0.05, "the subjects are lit"


@pytest.mark.parametrize(("changes", "message"), [
    ({"min_objects": 4, "max_objects": 2}, "min_objects <= max_objects"),
    ({"asset_probability": 1.5}, "asset_probability must be between 0 and 1"),
    ({"assets": ("/nowhere/thing.gltf",)}, "asset /nowhere/thing.gltf: file not found"),
    ({"assets": (__file__,)}, "expected a .gltf, .glb, .blend file"),
    ({"focal_length_mm": (80.0, 20.0)}, "focal_length_mm must be"),
    ({"frame_margin": 0.5}, "frame_margin must be in"),
])
def test_bad_settings_are_refused_before_the_open_file_is_replaced(procedural, changes, message):
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(procedural.SceneGenerationError, match=message) as caught:
        procedural.build_procedural_scene(1, procedural.ProceduralSettings(**changes))
    assert isinstance(caught.value, ValueError)
    assert "Cube" in bpy.data.objects, "the open file must be left alone"


def test_a_frame_margin_no_camera_can_meet_is_reported(procedural):
    settings = procedural.ProceduralSettings(frame_margin=0.45, camera_attempts=5)
    with pytest.raises(procedural.SceneGenerationError,
                       match=r"cannot frame the \d subjects with frame_margin=0.45.* in 5 camera draws: "
                             r"lower frame_margin"):
        procedural.build_procedural_scene(1, settings)
