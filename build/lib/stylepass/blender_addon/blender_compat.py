"""Differences between Blender 4.5 LTS and 5.x that the add-on must bridge (bpy).

Each function hides one, checked on both versions by ``tests/addon``: Eevee's engine id
(``BLENDER_EEVEE_NEXT`` in 4.5, ``BLENDER_EEVEE`` in 5.x); the output image format (5.x sets
``media_type`` before the file format); the scene's compositor (4.5: ``scene.node_tree`` and a
Composite node; 5.x: a ``CompositorNodeTree`` group in ``scene.compositing_node_group`` and a
Group Output node); the Kuwahara node's variation (a property in 4.5, a menu socket in 5.x);
materials' ``use_nodes`` (always on in 5.x); the scene-linear colour space's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

import bpy

from .contract.target_params import KUWAHARA_VARIATIONS

_EEVEE_IDS = ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE")  # 4.2-4.5, then 5.x


def available_engines() -> list[str]:
    """Render engine ids this Blender offers."""
    prop = bpy.types.RenderSettings.bl_rna.properties["engine"]
    return [item.identifier for item in prop.enum_items]


def eevee_engine_id() -> str:
    """Eevee's engine id in this Blender (``BLENDER_EEVEE_NEXT`` in 4.5, ``BLENDER_EEVEE`` in 5.x)."""
    engines = available_engines()
    for engine in _EEVEE_IDS:
        if engine in engines:
            return engine
    raise RuntimeError(f"this Blender has no Eevee engine (engines: {', '.join(engines)})")


def engine_family(engine: str) -> str | None:
    """``"cycles"``, ``"eevee"``, or None for engines that cannot give G-buffers (Workbench)."""
    if engine == "CYCLES":
        return "cycles"
    if engine in _EEVEE_IDS:
        return "eevee"
    return None


def render_samples(scene: bpy.types.Scene) -> int:
    """Samples per pixel of the final render for Cycles or Eevee."""
    if scene.render.engine == "CYCLES":
        return int(scene.cycles.samples)
    return int(scene.eevee.taa_render_samples)


def set_render_samples(scene: bpy.types.Scene, samples: int) -> None:
    """Set the final render's samples per pixel for Cycles or Eevee."""
    if scene.render.engine == "CYCLES":
        scene.cycles.samples = samples
    else:
        scene.eevee.taa_render_samples = samples


@contextmanager
def image_output(scene: bpy.types.Scene, media_type: str, file_format: str, color_depth: str,
                 exr_codec: str = "ZIP", color_mode: str | None = None) -> Iterator[None]:
    """Temporarily set the scene's output image format; the user's settings are restored after.

    ``media_type`` (``"IMAGE"`` or ``"MULTI_LAYER_IMAGE"``) only exists in 5.x, where it must
    be set before the file format. ``exr_codec`` applies to EXR formats only.
    """
    settings = scene.render.image_settings
    has_media_type = hasattr(settings, "media_type")
    props = ("color_mode", "color_depth", "exr_codec")
    saved = {prop: getattr(settings, prop) for prop in props}
    saved_format = settings.file_format
    saved_media = settings.media_type if has_media_type else None
    try:
        if has_media_type:
            settings.media_type = media_type
        settings.file_format = file_format
        if color_mode is not None:
            settings.color_mode = color_mode
        settings.color_depth = color_depth
        if file_format.startswith("OPEN_EXR"):
            settings.exr_codec = exr_codec
        yield
    finally:
        if has_media_type:
            settings.media_type = saved_media
        settings.file_format = saved_format
        for prop in props:
            if saved[prop] in _enum_items(settings, prop):
                setattr(settings, prop, saved[prop])


def multilayer_exr_output(scene: bpy.types.Scene) -> contextlib.AbstractContextManager[None]:
    """Multilayer EXR, half colour, lossless ZIP. Blender keeps data passes (depth, normal,
    vectors, Cryptomatte) in full float even in half mode."""
    return image_output(scene, "MULTI_LAYER_IMAGE", "OPEN_EXR_MULTILAYER", "16", "ZIP")


def single_image_output(scene: bpy.types.Scene, file_format: str, color_depth: str,
                        color_mode: str = "RGBA", exr_codec: str = "ZIP") -> contextlib.AbstractContextManager[None]:
    """One plain image: ``PNG`` (``color_depth`` "8"/"16") or single-layer ``OPEN_EXR`` ("16" half, "32")."""
    return image_output(scene, "IMAGE", file_format, color_depth, exr_codec, color_mode)


def _enum_items(owner: bpy.types.bpy_struct, prop: str) -> set[str]:
    return {item.identifier for item in owner.bl_rna.properties[prop].enum_items}


@contextmanager
def temporary_compositor(scene: bpy.types.Scene) -> Iterator[tuple[bpy.types.NodeTree, bpy.types.NodeSocket]]:
    """Give ``scene`` an empty compositor; yields its tree and the socket that takes the final image.

    Meant for a throwaway scene: 4.5 switches on ``scene.use_nodes`` and empties the scene's
    embedded tree (a ``Composite`` node takes the image); 5.x assigns a new ``CompositorNodeTree``
    group with an ``Image`` output (a Group Output node takes it), removed again afterwards.
    """
    if not hasattr(scene, "compositing_node_group"):  # 4.5
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        yield tree, tree.nodes.new("CompositorNodeComposite").inputs["Image"]
        return
    tree = bpy.data.node_groups.new("Stylepass Compositor", "CompositorNodeTree")
    previous = scene.compositing_node_group
    try:
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        yield tree, tree.nodes.new("NodeGroupOutput").inputs["Image"]
    finally:
        scene.compositing_node_group = previous
        bpy.data.node_groups.remove(tree)


def set_kuwahara_variation(node: bpy.types.Node, variation: str) -> None:
    """Choose a Kuwahara node's variation (``"anisotropic"`` or ``"classic"``).

    4.5 has a ``variation`` property; 5.x has a ``Type`` menu input socket.
    """
    if variation not in KUWAHARA_VARIATIONS:
        raise ValueError(f"unknown Kuwahara variation '{variation}': expected one of "
                         f"{', '.join(KUWAHARA_VARIATIONS)}")
    if hasattr(node, "variation"):
        node.variation = variation.upper()
    else:
        node.inputs["Type"].default_value = variation.capitalize()


def material_uses_nodes(material: bpy.types.Material) -> bool:
    """Whether the material renders through its node tree (always in 5.x, ``use_nodes`` in 4.5)."""
    if material.node_tree is None:
        return False
    return bpy.app.version >= (5, 0, 0) or material.use_nodes


# --- the scene's compositor (4.5: scene.node_tree; 5.x: scene.compositing_node_group) ----------

_NEW_COMPOSITOR_TREE_NAME = "Compositor Nodes"


def compositor_tree(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The node tree that composites ``scene``'s renders, or None when it has none.

    4.5: the embedded ``scene.node_tree`` while ``scene.use_nodes`` is on; 5.x: the
    ``CompositorNodeTree`` group assigned to ``scene.compositing_node_group``.
    """
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def switch_on_compositor(scene: bpy.types.Scene) -> tuple[bpy.types.NodeTree, dict[str, object]]:
    """The scene's compositor tree, made as Blender's "Use Nodes"/"New" button makes it if it has none.

    Returns the tree and what was changed, for ``switch_off_compositor``: 4.5 turns on
    ``scene.use_nodes`` (Blender then fills an empty embedded tree with Render Layers ->
    Composite and Viewer); 5.x creates and assigns a new group with an ``Image`` output and
    Render Layers -> Group Output.
    """
    if not hasattr(scene, "compositing_node_group"):  # 4.5
        changes = {"use_nodes": scene.use_nodes}
        scene.use_nodes = True
        return scene.node_tree, changes
    if scene.compositing_node_group is not None:
        return scene.compositing_node_group, {}
    tree = bpy.data.node_groups.new(_NEW_COMPOSITOR_TREE_NAME, "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    scene.compositing_node_group = tree
    render_layers = tree.nodes.new("CompositorNodeRLayers")
    render_layers.scene = scene
    render_layers.location = (-300, 0)
    output = tree.nodes.new("NodeGroupOutput")
    tree.links.new(render_layers.outputs["Image"], output.inputs[0])
    return tree, {"created_tree": tree.name, "created_nodes": sorted(n.name for n in tree.nodes)}


def switch_off_compositor(scene: bpy.types.Scene, changes: dict[str, object]) -> None:
    """Undo ``switch_on_compositor``'s ``changes``.

    4.5 turns ``use_nodes`` back off; Blender cannot delete an embedded tree, so it keeps the
    default nodes, which do nothing while ``use_nodes`` is off. 5.x unassigns and deletes the
    tree it created, unless someone has added nodes to it since.
    """
    if "use_nodes" in changes:
        scene.use_nodes = changes["use_nodes"]
    tree = bpy.data.node_groups.get(changes.get("created_tree", ""))
    if tree is None or sorted(n.name for n in tree.nodes) != changes["created_nodes"]:
        return
    if scene.compositing_node_group == tree:
        scene.compositing_node_group = None
    bpy.data.node_groups.remove(tree)


def final_output_socket(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket | None:
    """The socket that takes ``tree``'s final image, or None when the tree has no output node.

    4.5: the first Composite node's ``Image``; 5.x: the active Group Output's first input.
    """
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeComposite":
            return node.inputs["Image"]
        if node.bl_idname == "NodeGroupOutput" and node.is_active_output and len(node.inputs) > 1:
            return node.inputs[0]
    return None


def new_final_output(tree: bpy.types.NodeTree) -> bpy.types.Node:
    """Add the node that takes a compositor tree's final image (4.5: Composite; 5.x: Group Output).

    Raises ValueError for a 5.x tree without an output socket, which has nowhere to put an image.
    """
    if hasattr(bpy.types, "CompositorNodeComposite"):
        return tree.nodes.new("CompositorNodeComposite")
    if not any(item.item_type == "SOCKET" and item.in_out == "OUTPUT" for item in tree.interface.items_tree):
        raise ValueError(f"compositor node group '{tree.name}' has no output socket")
    return tree.nodes.new("NodeGroupOutput")


def scene_linear_colorspace() -> str:
    """The name of the scene-linear colour space for images (5.x: the ``scene_linear`` role,
    which follows the file's working space; 4.5: ``Linear Rec.709``, the default config's)."""
    names = {item.identifier for item in
             bpy.types.ColorManagedInputColorspaceSettings.bl_rna.properties["name"].enum_items}
    return "scene_linear" if "scene_linear" in names else "Linear Rec.709"
