"""Stylised results as compositor nodes: wiring, strength, replace, remove, image sequences.

Each test renders a tiny Cycles scene whose camera sees only the world's plain colour, so the
composited output is checked pixel by pixel against the original render and the constant-colour
"stylised" EXRs written here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import bpy
import numpy as np
import pytest

from .conftest import EXTENSION

SIZE = (32, 18)
ORANGE = (1.0, 0.5, 0.0)  # exact in half float, like every colour here
BLUE = (0.0, 0.25, 1.0)
TOLERANCE = 1e-3


def compositor_nodes() -> ModuleType:
    return importlib.import_module(f"{EXTENSION}.scene.compositor_nodes")


def compat() -> ModuleType:
    return importlib.import_module(f"{EXTENSION}.blender_compat")


@pytest.fixture
def scene(addon: ModuleType) -> bpy.types.Scene:
    """A fresh file: a camera looking into a plain sky, 32x18, one sample, no compositor."""
    scene = addon.scene.scene_loading.new_empty_scene()
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.world = bpy.data.worlds.new("Sky")
    scene.world.color = (0.25, 0.5, 0.75)
    assert compat().compositor_tree(scene) is None
    return scene


# --- writing and rendering images -------------------------------------------------------------

def write_constant_exr(scene: bpy.types.Scene, path: Path, rgb: tuple[float, float, float]) -> Path:
    """A render-sized half-float EXR of one scene-linear colour, like the worker writes."""
    image = bpy.data.images.new("constant", *SIZE, alpha=True, float_buffer=True)
    try:
        image.pixels.foreach_set(np.tile(np.array([*rgb, 1.0], dtype=np.float32), SIZE[0] * SIZE[1]))
        with compat().single_image_output(scene, "OPEN_EXR", "16"):
            image.save_render(str(path), scene=scene)
    finally:
        bpy.data.images.remove(image)
    return path


def render(scene: bpy.types.Scene, folder: Path) -> np.ndarray:
    """The composited RGBA render of the current frame, read back from a float EXR."""
    path = folder / f"render_{scene.frame_current}.exr"
    with compat().single_image_output(scene, "OPEN_EXR", "32"):
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True, scene=scene.name)
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        pixels = np.empty(SIZE[0] * SIZE[1] * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(SIZE[1], SIZE[0], 4)
    finally:
        bpy.data.images.remove(image)


def constant(rgb: tuple[float, float, float]) -> np.ndarray:
    return np.broadcast_to(np.array([*rgb, 1.0], dtype=np.float32), (SIZE[1], SIZE[0], 4))


# --- looking at trees -------------------------------------------------------------------------

def tree_snapshot(tree: bpy.types.NodeTree) -> dict[str, object]:
    """Nodes (type, place, settings that matter here) and links of a tree, in comparable form."""
    return {
        "nodes": sorted((n.name, n.bl_idname, tuple(n.location),
                         tuple(getattr(s, "default_value", None) for s in n.inputs if s.type == "VALUE"))
                        for n in tree.nodes),
        "links": sorted((link.from_node.name, link.from_socket.identifier, link.to_node.name,
                         link.to_socket.identifier) for link in tree.links),
        "interface": [(item.name, item.in_out) for item in tree.interface.items_tree],
    }


def file_snapshot(scene: bpy.types.Scene) -> dict[str, object]:
    """The scene's compositor and the data-blocks installing may touch."""
    tree = compat().compositor_tree(scene)
    return {
        "use_nodes": scene.use_nodes if hasattr(scene, "node_tree") else None,
        "tree": tree.name if tree else None,
        "tree_contents": tree_snapshot(tree) if tree else None,
        "node_groups": sorted(g.name for g in bpy.data.node_groups),
        "images": sorted(i.name for i in bpy.data.images if i.type == "IMAGE"),  # not Blender's results
        "record": compositor_nodes().RECORD_KEY in scene,
    }


def upstream(socket: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    """The output socket feeding ``socket``, looking through reroutes."""
    (link,) = socket.links
    while link.from_node.bl_idname == "NodeReroute":
        (link,) = link.from_node.inputs[0].links
    return link.from_socket


def stylepass_group_nodes(tree: bpy.types.NodeTree) -> list[bpy.types.Node]:
    return [n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup"
            and n.node_tree.name.startswith(compositor_nodes().GROUP_PREFIX)]


def stylepass_data_blocks() -> tuple[list[str], list[str]]:
    prefix = compositor_nodes().GROUP_PREFIX
    return ([g.name for g in bpy.data.node_groups if g.name.startswith(prefix)],
            [i.name for i in bpy.data.images if i.name.startswith(prefix)])


def add_user_tree(scene: bpy.types.Scene) -> tuple[bpy.types.NodeTree, bpy.types.Node]:
    """A compositor a user made: Render Layers -> Invert -> output, Invert -> Viewer."""
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new("User Compositor", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        output = tree.nodes.new("NodeGroupOutput").inputs[0]
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        output = tree.nodes.new("CompositorNodeComposite").inputs["Image"]
    render_layers = tree.nodes.new("CompositorNodeRLayers")
    invert = tree.nodes.new("CompositorNodeInvert")
    invert.location = (200, 0)
    viewer = tree.nodes.new("CompositorNodeViewer")
    viewer.location = (400, -200)
    output.node.location = (400, 0)
    tree.links.new(render_layers.outputs["Image"], invert.inputs["Color"])
    tree.links.new(invert.outputs["Color"], output)
    tree.links.new(invert.outputs["Color"], viewer.inputs["Image"])
    return tree, invert


# --- tests ------------------------------------------------------------------------------------

def test_group_sits_between_render_layers_and_the_output(scene: bpy.types.Scene, tmp_path: Path) -> None:
    image_path = write_constant_exr(scene, tmp_path / "stylised.exr", ORANGE)

    group = compositor_nodes().install_stylise_nodes(scene, "toon", image_path, strength=0.75)

    tree = compat().compositor_tree(scene)
    (node,) = stylepass_group_nodes(tree)
    assert node.node_tree == group and group.name == "Stylepass: toon"
    assert compositor_nodes().installed_node(scene) == node
    assert upstream(node.inputs["Image"]).node.bl_idname == "CompositorNodeRLayers"
    assert upstream(compat().final_output_socket(tree)) == node.outputs["Image"]
    assert node.inputs["Strength"].default_value == pytest.approx(0.75)
    assert compositor_nodes().stylise_strength(scene) == pytest.approx(0.75)
    assert compositor_nodes().installed_group(scene) == group
    image = compositor_nodes().installed_image(scene)
    assert image == group.nodes["Stylised"].image
    assert Path(image.filepath) == image_path and image.source == "FILE"
    assert image.colorspace_settings.name == compat().scene_linear_colorspace()


def test_strength_mixes_the_render_with_the_stylised_image(scene: bpy.types.Scene, tmp_path: Path) -> None:
    original = render(scene, tmp_path)
    module = compositor_nodes()
    module.install_stylise_nodes(scene, "toon", write_constant_exr(scene, tmp_path / "stylised.exr", ORANGE))

    assert np.allclose(render(scene, tmp_path), constant(ORANGE), atol=TOLERANCE)
    module.set_stylise_strength(scene, 0.0)
    assert np.allclose(render(scene, tmp_path), original, atol=TOLERANCE)
    module.set_stylise_strength(scene, 0.5)
    assert module.stylise_strength(scene) == pytest.approx(0.5)
    assert np.allclose(render(scene, tmp_path), (original + constant(ORANGE)) / 2, atol=TOLERANCE)


def test_reinstalling_replaces_the_group_and_rereads_the_image(scene: bpy.types.Scene,
                                                              tmp_path: Path) -> None:
    module = compositor_nodes()
    image_path = write_constant_exr(scene, tmp_path / "stylised.exr", ORANGE)
    module.install_stylise_nodes(scene, "toon", image_path)
    assert np.allclose(render(scene, tmp_path), constant(ORANGE), atol=TOLERANCE)

    write_constant_exr(scene, image_path, BLUE)
    module.install_stylise_nodes(scene, "toon", image_path, strength=1.0)

    tree = compat().compositor_tree(scene)
    assert len(stylepass_group_nodes(tree)) == 1
    assert stylepass_data_blocks() == (["Stylepass: toon"], ["Stylepass: toon"])
    assert len([n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"]) == 1
    assert np.allclose(render(scene, tmp_path), constant(BLUE), atol=TOLERANCE)


def test_removing_restores_the_users_tree(scene: bpy.types.Scene, tmp_path: Path) -> None:
    module = compositor_nodes()
    original = render(scene, tmp_path)
    tree, invert = add_user_tree(scene)
    invert.inputs["Fac"].default_value = 0.75
    before = file_snapshot(scene)
    graded = render(scene, tmp_path)
    assert not np.allclose(graded, original, atol=0.1)

    module.install_stylise_nodes(scene, "painterly", write_constant_exr(scene, tmp_path / "s.exr", ORANGE),
                                 strength=0.0)
    (node,) = stylepass_group_nodes(tree)
    assert upstream(node.inputs["Image"]) == invert.outputs["Color"]
    assert upstream(compat().final_output_socket(tree)) == node.outputs["Image"]
    assert upstream(tree.nodes["Viewer"].inputs["Image"]) == node.outputs["Image"]
    assert np.allclose(render(scene, tmp_path), graded, atol=TOLERANCE)

    assert module.remove_stylise_nodes(scene)
    assert file_snapshot(scene) == before
    assert np.allclose(render(scene, tmp_path), graded, atol=TOLERANCE)
    assert not module.remove_stylise_nodes(scene)


def test_removing_from_a_scene_without_compositor_leaves_none(scene: bpy.types.Scene, tmp_path: Path) -> None:
    module = compositor_nodes()
    before = file_snapshot(scene)
    module.install_stylise_nodes(scene, "toon", write_constant_exr(scene, tmp_path / "s.exr", ORANGE))
    assert compat().compositor_tree(scene) is not None

    assert module.remove_stylise_nodes(scene)

    assert compat().compositor_tree(scene) is None
    assert file_snapshot(scene) == before
    assert module.installed_group(scene) is None and module.installed_image(scene) is None
    assert module.stylise_strength(scene) is None


def test_a_tree_without_output_gets_one_until_removal(scene: bpy.types.Scene, tmp_path: Path) -> None:
    module = compositor_nodes()
    tree, _ = add_user_tree(scene)
    for node in [n for n in tree.nodes if n.bl_idname != "CompositorNodeRLayers"]:
        tree.nodes.remove(node)
    before = file_snapshot(scene)

    module.install_stylise_nodes(scene, "toon", write_constant_exr(scene, tmp_path / "s.exr", ORANGE))

    (node,) = stylepass_group_nodes(tree)
    assert upstream(node.inputs["Image"]).node.bl_idname == "CompositorNodeRLayers"
    assert upstream(compat().final_output_socket(tree)) == node.outputs["Image"]
    assert np.allclose(render(scene, tmp_path), constant(ORANGE), atol=TOLERANCE)
    assert module.remove_stylise_nodes(scene)
    assert file_snapshot(scene) == before


def test_removing_after_the_user_deleted_the_group_node_still_restores(scene: bpy.types.Scene,
                                                                      tmp_path: Path) -> None:
    module = compositor_nodes()
    tree, _ = add_user_tree(scene)
    before = file_snapshot(scene)
    module.install_stylise_nodes(scene, "toon", write_constant_exr(scene, tmp_path / "s.exr", ORANGE))
    tree.nodes.remove(stylepass_group_nodes(tree)[0])
    assert module.installed_group(scene) is None

    assert module.remove_stylise_nodes(scene)

    assert file_snapshot(scene) == before


def test_a_sequence_shows_each_frames_result(scene: bpy.types.Scene, tmp_path: Path) -> None:
    module = compositor_nodes()
    scene.frame_start, scene.frame_end = 1, 3
    first = write_constant_exr(scene, tmp_path / "stylised_000002.exr", ORANGE)
    write_constant_exr(scene, tmp_path / "stylised_000003.exr", BLUE)

    module.install_stylise_nodes(scene, "toon", first, sequence=True, frame_start=2)

    assert module.installed_image(scene).source == "SEQUENCE"
    for frame, colour in ((2, ORANGE), (3, BLUE)):
        scene.frame_set(frame)
        assert np.allclose(render(scene, tmp_path), constant(colour), atol=TOLERANCE), f"frame {frame}"


def test_bad_calls_are_refused_and_keep_the_installed_group(scene: bpy.types.Scene, tmp_path: Path) -> None:
    module = compositor_nodes()
    with pytest.raises(LookupError):
        module.set_stylise_strength(scene, 0.5)
    image_path = write_constant_exr(scene, tmp_path / "s.exr", ORANGE)
    module.install_stylise_nodes(scene, "toon", image_path)
    installed = file_snapshot(scene)

    with pytest.raises(ValueError, match="strength"):
        module.install_stylise_nodes(scene, "toon", image_path, strength=1.5)
    with pytest.raises(FileNotFoundError):
        module.install_stylise_nodes(scene, "toon", tmp_path / "missing.exr")
    with pytest.raises(ValueError, match="frame number"):
        module.install_stylise_nodes(scene, "toon", image_path, sequence=True)
    with pytest.raises(ValueError, match="strength"):
        module.set_stylise_strength(scene, -0.1)
    assert file_snapshot(scene) == installed
