"""Stylised results in the scene's compositor (bpy).

``install_stylise_nodes`` puts a node group "Stylepass: <name>" on the link into the scene's final
output, so the composited image is ``mix(original, stylised, Strength)``::

    4.5: scene.node_tree (use_nodes on)       ... -> [Stylepass: name] -> Composite (and Viewers)
    5.x: scene.compositing_node_group         ... -> [Stylepass: name] -> Group Output (and Viewers)

    inside the group:  Group Input.Image ---------------> Mix.A
                       Group Input.Strength ------------> Mix.Factor --> Group Output.Image
                       Image (stylised EXR, linear) ----> Mix.B

Strength is an input of the group node in the scene's tree: the panel draws that socket and the
user changes it without re-running. What installing changed (links re-routed, nodes or a tree
created, 4.5's ``use_nodes``) is recorded as JSON in ``scene[RECORD_KEY]``, so that
``remove_stylise_nodes`` restores the user's tree exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import bpy

from ..blender_compat import (
    compositor_tree,
    final_output_socket,
    new_final_output,
    scene_linear_colorspace,
    switch_off_compositor,
    switch_on_compositor,
)

GROUP_PREFIX = "Stylepass: "
RECORD_KEY = "stylepass_compositor"

_GROUP_NODE_NAME = "Stylepass"
_STYLISED_NODE_NAME = "Stylised"
_VIEWER = "CompositorNodeViewer"

LinkRecord = list[str]  # [from node, from socket identifier, to node, to socket identifier]


def install_stylise_nodes(scene: bpy.types.Scene, name: str, image_path: Path, *, sequence: bool = False,
                          frame_start: int = 1, strength: float = 1.0) -> bpy.types.NodeTree:
    """Put the node group "Stylepass: <name>" between the render and the scene's final output.

    The group mixes the image reaching the output (the Render Layers image in a plain tree)
    with the stylised image by ``strength`` (0: the original, 1: the stylised image).
    ``image_path`` is one scene-linear EXR, or with ``sequence=True`` one file of a sequence
    whose frame N is the file with N in place of the name's frame number (``stylised_000012.exr``
    for frame 12), from ``frame_start`` on, so that each frame of the timeline shows its own
    result. A scene without a compositor gets Blender's default one (Render Layers -> output).
    Re-installing replaces the previous Stylepass group and reloads the image from disk.
    Returns the group.
    """
    _check_strength(strength)
    _check_image_path(image_path, sequence)
    remove_stylise_nodes(scene)
    image = _load_stylised_image(f"{GROUP_PREFIX}{name}", image_path, sequence)
    tree, compositor_changes = switch_on_compositor(scene)
    record: dict[str, object] = {"compositor": compositor_changes, "created_nodes": [], "links": []}
    target = final_output_socket(tree)
    if target is None:
        target = _add_final_output(tree, record)
    source = target.links[0].from_socket if target.is_linked else _render_layers_image(scene, tree, record)
    group = _new_stylise_group(f"{GROUP_PREFIX}{name}", image, strength)
    node = _new_group_node(tree, group, source, target, strength)
    _route_through(tree, node, source, _sockets_to_reroute(source, target), record)
    if sequence:
        _show_frame_by_frame(node, scene, frame_start)
    record.update(node=node.name, group=group.name, image=image.name)
    scene[RECORD_KEY] = json.dumps(record)
    return group


def remove_stylise_nodes(scene: bpy.types.Scene) -> bool:
    """Remove the Stylepass group, its image and what installing it added; restore the links it
    re-routed and the compositor switch. Returns False when the scene had no Stylepass group."""
    if RECORD_KEY not in scene:
        return False
    record = json.loads(scene[RECORD_KEY])
    tree = compositor_tree(scene)
    if tree is not None:
        for node_name in (record["node"], *record["created_nodes"]):
            if node_name in tree.nodes:
                tree.nodes.remove(tree.nodes[node_name])
        for link in record["links"]:
            _restore_link(tree, link)
    _remove_data_block(bpy.data.node_groups, record["group"])
    _remove_data_block(bpy.data.images, record["image"])
    switch_off_compositor(scene, record["compositor"])
    del scene[RECORD_KEY]
    return True


def installed_node(scene: bpy.types.Scene) -> bpy.types.Node | None:
    """The Stylepass group node in the scene's compositor (its ``Strength`` input is what a panel
    draws), or None when it was never installed or the user deleted it."""
    tree = compositor_tree(scene)
    if RECORD_KEY not in scene or tree is None:
        return None
    return tree.nodes.get(json.loads(scene[RECORD_KEY])["node"])


def installed_group(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The Stylepass node group in the scene's compositor, or None when it has none."""
    node = installed_node(scene)
    return None if node is None else node.node_tree


def installed_image(scene: bpy.types.Scene) -> bpy.types.Image | None:
    """The stylised image (or sequence) the scene's Stylepass group shows, or None."""
    group = installed_group(scene)
    return None if group is None else group.nodes[_STYLISED_NODE_NAME].image


def stylise_strength(scene: bpy.types.Scene) -> float | None:
    """The Stylepass group's strength in the scene's compositor, or None when it has none."""
    node = installed_node(scene)
    return None if node is None else float(node.inputs["Strength"].default_value)


def set_stylise_strength(scene: bpy.types.Scene, value: float) -> None:
    """Set the Stylepass group's strength (0..1); raises LookupError when the scene has none."""
    _check_strength(value)
    node = installed_node(scene)
    if node is None:
        raise LookupError(f"scene '{scene.name}' has no Stylepass compositor nodes")
    node.inputs["Strength"].default_value = value


# --- the group --------------------------------------------------------------------------------

def _check_strength(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, not {value}")


def _check_image_path(image_path: Path, sequence: bool) -> None:
    if not image_path.is_file():
        raise FileNotFoundError(f"no stylised image at {image_path}")
    if sequence and not re.search(r"\d+$", image_path.stem):
        raise ValueError(f"{image_path.name} has no frame number, so it cannot be read as a sequence")


def _load_stylised_image(name: str, path: Path, sequence: bool) -> bpy.types.Image:
    """A fresh image data-block read from disk (a sequence is opened at one of its files)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    image.source = "SEQUENCE" if sequence else "FILE"
    image.colorspace_settings.name = scene_linear_colorspace()
    return image


def _new_stylise_group(name: str, image: bpy.types.Image, strength: float) -> bpy.types.NodeTree:
    """The group: ``mix(Image input, stylised image, Strength)`` to its Image output."""
    group = bpy.data.node_groups.new(name, "CompositorNodeTree")
    group.interface.new_socket("Image", in_out="INPUT", socket_type="NodeSocketColor")
    strength_item = group.interface.new_socket("Strength", in_out="INPUT", socket_type="NodeSocketFloat")
    strength_item.subtype = "FACTOR"
    strength_item.min_value, strength_item.max_value = 0.0, 1.0
    strength_item.default_value = strength
    strength_item.description = "0 shows the original render, 1 the stylised image"
    group.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")

    group_input = group.nodes.new("NodeGroupInput")
    stylised = group.nodes.new("CompositorNodeImage")
    stylised.name = stylised.label = _STYLISED_NODE_NAME
    stylised.image = image
    mix = group.nodes.new("ShaderNodeMix")  # a compositor node in 4.5 and 5.x (MixRGB is gone in 5.x)
    mix.data_type, mix.blend_type = "RGBA", "MIX"
    group_output = group.nodes.new("NodeGroupOutput")
    for node, x, y in ((group_input, -400, 0), (stylised, -400, -200), (mix, 0, 0), (group_output, 300, 0)):
        node.location = (x, y)

    group.links.new(group_input.outputs["Strength"], _socket(mix.inputs, "Factor_Float"))
    group.links.new(group_input.outputs["Image"], _socket(mix.inputs, "A_Color"))
    group.links.new(stylised.outputs["Image"], _socket(mix.inputs, "B_Color"))
    group.links.new(_socket(mix.outputs, "Result_Color"), group_output.inputs["Image"])
    return group


def _socket(sockets: bpy.types.bpy_prop_collection, identifier: str) -> bpy.types.NodeSocket:
    return next(socket for socket in sockets if socket.identifier == identifier)


def _show_frame_by_frame(node: bpy.types.Node, scene: bpy.types.Scene, frame_start: int) -> None:
    """Make frame N of the scene show the sequence's file number N (from ``frame_start`` to the
    scene's end; later frames hold the last one)."""
    stylised = node.node_tree.nodes[_STYLISED_NODE_NAME]
    stylised.frame_start = frame_start
    stylised.frame_offset = frame_start - 1  # Blender reads file number (frame - start + 1) + offset
    stylised.frame_duration = max(1, scene.frame_end - frame_start + 1)
    stylised.use_auto_refresh = True


# --- wiring it into the scene's tree ---------------------------------------------------------

def _add_final_output(tree: bpy.types.NodeTree, record: dict[str, object]) -> bpy.types.NodeSocket:
    node = new_final_output(tree)
    record["created_nodes"].append(node.name)
    return final_output_socket(tree)


def _render_layers_image(scene: bpy.types.Scene, tree: bpy.types.NodeTree,
                         record: dict[str, object]) -> bpy.types.NodeSocket:
    """The Image output of the tree's Render Layers node for ``scene``, added if there is none."""
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeRLayers" and node.scene in (scene, None):
            return node.outputs["Image"]
    node = tree.nodes.new("CompositorNodeRLayers")
    node.scene = scene
    record["created_nodes"].append(node.name)
    return node.outputs["Image"]


def _sockets_to_reroute(source: bpy.types.NodeSocket,
                        target: bpy.types.NodeSocket) -> list[bpy.types.NodeSocket]:
    """The final output's socket and the Viewer inputs fed by the same source socket."""
    viewers = [link.to_socket for link in source.links
               if link.to_node.bl_idname == _VIEWER and link.to_socket != target]
    return [target, *viewers]


def _new_group_node(tree: bpy.types.NodeTree, group: bpy.types.NodeTree, source: bpy.types.NodeSocket,
                    target: bpy.types.NodeSocket, strength: float) -> bpy.types.Node:
    node = tree.nodes.new("CompositorNodeGroup")
    node.node_tree = group
    node.name = _GROUP_NODE_NAME
    node.label = group.name
    node.inputs["Strength"].default_value = strength
    start, end = source.node.location, target.node.location
    node.location = ((start.x + end.x) / 2, (start.y + end.y) / 2 - 150)
    return node


def _route_through(tree: bpy.types.NodeTree, node: bpy.types.Node, source: bpy.types.NodeSocket,
                   targets: list[bpy.types.NodeSocket], record: dict[str, object]) -> None:
    """Link ``source`` -> group -> each target, recording the links this replaces."""
    for target in targets:
        for link in list(target.links):
            record["links"].append(_link_record(link))
            tree.links.remove(link)
        tree.links.new(node.outputs["Image"], target)
    tree.links.new(source, node.inputs["Image"])


def _link_record(link: bpy.types.NodeLink) -> LinkRecord:
    return [link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier]


def _restore_link(tree: bpy.types.NodeTree, link: LinkRecord) -> None:
    """Re-create a recorded link, unless the user has since deleted one of its nodes."""
    from_node, from_socket, to_node, to_socket = link
    if from_node in tree.nodes and to_node in tree.nodes:
        tree.links.new(_socket(tree.nodes[from_node].outputs, from_socket),
                       _socket(tree.nodes[to_node].inputs, to_socket))


def _remove_data_block(collection: bpy.types.bpy_prop_collection, name: str) -> None:
    if name in collection:
        collection.remove(collection[name])

