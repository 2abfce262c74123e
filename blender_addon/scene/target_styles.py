"""Render the *target* image of a dataset pair, pixel-aligned with the exported input (bpy).

A pair is an input (a fast render exported as G-buffers, see ``gbuffer_export``) and a
target image of the same frame. ``input_render_settings`` sets the scene up for the input;
``render_target`` renders one of ``TARGET_KINDS`` and writes it atomically:

- ``enhance``: Cycles with full global illumination at high samples, denoised with
  OpenImageDenoise on the CPU; a linear half-float RGBA EXR (single layer), comparable with
  the export's Combined pass.
- ``toon``: Eevee with each material replaced, for the render, by its base colour times a
  banded (Shader to RGB + constant colour ramp) diffuse light, plus Freestyle lines.
- ``painterly``: Cycles as for ``enhance`` (fewer samples), through the anisotropic Kuwahara
  compositor filter (wide, strokes along the edges) with a look of the view transform (AgX's
  Punchy by default), composited in a throwaway scene so the user's compositor is never touched.
- ``sketch``: Freestyle lines (dark grey) on paper white: every surface and the world are
  white emission for the render.

PNG targets are 8-bit RGBA, sRGB. ``toon`` and ``sketch`` use the Standard view transform
(flat colours and white paper stay exact); ``painterly`` uses the scene's view transform
(it is the render as the user sees it, filtered).

Alignment: targets use the scene's camera, resolution, frame, pixel filter and motion blur
unchanged, so their edges coincide with the input's. The scene is left exactly as it was:
every setting changed here is restored, and every data-block or node added is removed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import bpy

from ..blender_compat import (
    eevee_engine_id,
    material_uses_nodes,
    set_kuwahara_variation,
    single_image_output,
    temporary_compositor,
)
from ..contract.atomic_files import write_atomic
from ..contract.target_params import (  # noqa: F401 - TARGET_KINDS: API too
    TARGET_KINDS,
    is_int_at_least,
    resolve_params,
)
from .render_settings import changed, plain_render_pipeline, render_view_layer

INPUT_ENGINES = ("cycles", "eevee")

# Cycles' default bounces: targets use at least these ("full global illumination").
FULL_GI_BOUNCES = {"max_bounces": 12, "diffuse_bounces": 4, "glossy_bounces": 4,
                   "transmission_bounces": 12, "volume_bounces": 0, "transparent_max_bounces": 8}
SKETCH_CYCLES_SAMPLES = 16
LINE_COLOUR = (0.05, 0.05, 0.05)
TOON_DARKEST_BAND = 0.35  # light level of the shadow band; the brightest band is 1.0
TAG = "Stylepass Target"  # name prefix of everything added for a render


class TargetRenderError(RuntimeError):
    """Blender rendered or wrote nothing for a target."""


@contextmanager
def input_render_settings(scene: bpy.types.Scene, *, engine: str = "cycles", samples: int = 8,
                          indirect: bool = False) -> Iterator[None]:
    """Temporarily set the scene up for the fast *input* render that gets exported as G-buffers.

    ``engine`` is ``"cycles"`` or ``"eevee"``. Cycles renders exactly ``samples`` (adaptive
    sampling and the time limit off) and, with ``indirect=False``, direct light only
    (``max_bounces = 0``). Eevee renders ``samples`` and switches its ray tracing to
    ``indirect``. Everything else (denoising, pixel filter, colour management) stays the scene's.
    """
    if engine not in INPUT_ENGINES:
        raise ValueError(f"unknown input engine '{engine}': expected one of {', '.join(INPUT_ENGINES)}")
    if not is_int_at_least(1)(samples):
        raise ValueError(f"input samples is {samples!r}: expected an integer >= 1")
    with ExitStack() as stack:
        if engine == "cycles":
            stack.enter_context(changed(scene.render, engine="CYCLES"))
            stack.enter_context(changed(scene.cycles, samples=samples, use_adaptive_sampling=False,
                                        time_limit=0.0))
            if not indirect:
                stack.enter_context(changed(scene.cycles, max_bounces=0))
        else:
            stack.enter_context(changed(scene.render, engine=eevee_engine_id()))
            stack.enter_context(changed(scene.eevee, taa_render_samples=samples,
                                        use_raytracing=indirect))
        yield


def render_target(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, kind: str,
                  out_path: Path, params: dict[str, Any] | None = None) -> None:
    """Render the scene's current frame as target ``kind`` and write it atomically to ``out_path``.

    ``params`` override the kind's defaults (``target_params.TARGET_PARAMS``). The scene is left exactly as
    it was (engine, samples, materials, world, Freestyle, compositor, view settings, output
    format). ValueError for an unknown kind or parameter.
    """
    resolved = resolve_params(kind, params)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    renderers = {"enhance": _render_enhance, "toon": _render_toon,
                 "painterly": _render_painterly, "sketch": _render_sketch}
    with plain_render_pipeline(scene):
        renderers[kind](scene, view_layer, out_path, resolved)


def timed_render(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, *, engine: str, samples: int,
                 indirect: bool, out_path: Path | None = None, warm_up: bool = True) -> float:
    """Render the current frame with a fast render's settings (:func:`input_render_settings`) and
    return the render's wall seconds. With `warm_up`, an untimed render first compiles Eevee's shaders
    for these settings (a user pays that once per scene, not per frame); without it, the caller has
    just rendered with the same settings. With `out_path`, the render is also
    written there as a scene-linear EXR (atomically; not timed). The scene is left as it was."""
    with plain_render_pipeline(scene), \
            input_render_settings(scene, engine=engine, samples=samples, indirect=indirect):
        if warm_up:
            render_view_layer(scene, view_layer)
        start = time.perf_counter()
        render_view_layer(scene, view_layer)
        seconds = time.perf_counter() - start
        if out_path is not None:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            with single_image_output(scene, "OPEN_EXR", "16", "RGBA", "ZIP"):
                save_render_result(scene, Path(out_path))
    return seconds


def save_render_result(settings_scene: bpy.types.Scene, out_path: Path) -> None:
    """Write the Render Result with ``settings_scene``'s output and colour settings, atomically."""
    result = bpy.data.images.get("Render Result")
    if result is None:
        raise TargetRenderError(f"Blender produced no render result for {out_path.name}")

    def save_image(temp: Path) -> None:
        result.save_render(filepath=str(temp), scene=settings_scene)
        if not temp.is_file() or temp.stat().st_size == 0:
            raise TargetRenderError(f"Blender wrote no image to {temp}")

    write_atomic(out_path, save_image)


# --- settings shared by several targets -------------------------------------------------------

@contextmanager
def cycles_full_gi(scene: bpy.types.Scene, samples: int) -> Iterator[None]:
    """Cycles, at least Blender's default bounces, ``samples`` adaptive samples, CPU OIDN denoising."""
    cycles = scene.cycles
    bounces = {name: max(getattr(cycles, name), default) for name, default in FULL_GI_BOUNCES.items()}
    with changed(scene.render, engine="CYCLES"), \
            changed(cycles, samples=samples, use_adaptive_sampling=True, adaptive_threshold=0.01,
                    time_limit=0.0, use_denoising=True, denoiser="OPENIMAGEDENOISE",
                    denoising_use_gpu=False, **bounces):
        yield


@contextmanager
def standard_view_transform(scene: bpy.types.Scene) -> Iterator[None]:
    """sRGB display, Standard view (no tone mapping), and an output that follows the scene.

    The look is set (and so restored) before the view transform: looks belong to a view.
    """
    with changed(scene.display_settings, display_device="sRGB"), \
            changed(scene.view_settings, look="None", view_transform="Standard", exposure=0.0,
                    gamma=1.0, use_curve_mapping=False), \
            changed(scene.render.image_settings, color_management="FOLLOW_SCENE"):
        yield


@contextmanager
def png_output(scene: bpy.types.Scene) -> Iterator[None]:
    """8-bit RGBA PNG output."""
    with single_image_output(scene, "PNG", "8", "RGBA"):
        yield


@contextmanager
def freestyle_lines(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, thickness: float,
                    colour: tuple[float, float, float]) -> Iterator[None]:
    """Freestyle on, drawing only a temporary line set (the user's line sets are hidden).

    Lines are ``thickness`` pixels wide in ``colour``: silhouettes, borders and creases
    (Freestyle's default selection), drawn into the Combined pass.
    """
    settings = view_layer.freestyle_settings
    with ExitStack() as stack:
        stack.enter_context(changed(scene.render, use_freestyle=True, line_thickness_mode="ABSOLUTE",
                                    line_thickness=1.0))
        stack.enter_context(changed(view_layer, use_freestyle=True))
        stack.enter_context(changed(settings, mode="EDITOR", as_render_pass=False))
        for lineset in settings.linesets:
            stack.enter_context(changed(lineset, show_render=False))
        stack.enter_context(temporary_line_set(settings, thickness, colour))
        yield


@contextmanager
def temporary_line_set(settings: bpy.types.FreestyleSettings, thickness: float,
                       colour: tuple[float, float, float]) -> Iterator[None]:
    """A line set (with its own new line style) that exists only inside the block."""
    active_index = settings.linesets.active_index
    lineset = settings.linesets.new(f"{TAG} Lines")
    linestyle = lineset.linestyle
    try:
        linestyle.name = f"{TAG} Lines"
        linestyle.color = colour
        linestyle.thickness = thickness
        yield
    finally:
        settings.linesets.remove(lineset)
        bpy.data.linestyles.remove(linestyle)
        settings.linesets.active_index = active_index


# --- enhance ----------------------------------------------------------------------------------

def _render_enhance(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, out_path: Path,
                    params: dict[str, Any]) -> None:
    with cycles_full_gi(scene, params["samples"]):
        render_view_layer(scene, view_layer)
    with single_image_output(scene, "OPEN_EXR", "16", "RGBA", "ZIP"):
        save_render_result(scene, out_path)


# --- toon -------------------------------------------------------------------------------------

def _render_toon(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, out_path: Path,
                 params: dict[str, Any]) -> None:
    with ExitStack() as stack:
        stack.enter_context(changed(scene.render, engine=eevee_engine_id()))
        stack.enter_context(changed(scene.eevee, taa_render_samples=params["samples"]))
        stack.enter_context(freestyle_lines(scene, view_layer, params["line_thickness"], LINE_COLOUR))
        for material in scene_materials(scene):
            stack.enter_context(toon_shading(material, params["bands"]))
        render_view_layer(scene, view_layer)
    with standard_view_transform(scene), png_output(scene):
        save_render_result(scene, out_path)


def scene_materials(scene: bpy.types.Scene) -> list[bpy.types.Material]:
    """Editable node materials used by the scene's objects, each once, sorted by name."""
    materials = {slot.material for obj in scene.objects for slot in obj.material_slots
                 if slot.material is not None}
    return sorted((m for m in materials if material_uses_nodes(m) and m.library is None), key=lambda m: m.name)


@contextmanager
def toon_shading(material: bpy.types.Material, bands: int) -> Iterator[None]:
    """Render ``material`` as its base colour times ``bands`` flat bands of diffuse light.

    Adds a node chain ending in a new active Material Output; afterwards removes the added
    nodes (and with them their links) and makes the user's outputs active as they were.
    """
    tree = material.node_tree
    outputs = [node for node in tree.nodes if node.type == "OUTPUT_MATERIAL"]
    was_active = {node.name: node.is_active_output for node in outputs}
    added: list[bpy.types.Node] = []
    try:
        add_toon_nodes(material, bands, added)
        yield
    finally:
        for node in added:
            tree.nodes.remove(node)
        for node in outputs:
            if was_active[node.name]:
                node.is_active_output = True


def add_toon_nodes(material: bpy.types.Material, bands: int, added: list[bpy.types.Node]) -> None:
    """Diffuse light -> Shader to RGB -> constant ramp -> Emission strength, base colour -> Emission colour."""
    tree = material.node_tree
    shader = surface_shader(tree)

    def new(idname: str) -> bpy.types.Node:
        node = tree.nodes.new(idname)
        node.name = node.label = f"{TAG} {node.name}"
        added.append(node)
        return node

    diffuse = new("ShaderNodeBsdfDiffuse")
    diffuse.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    normal = shader.inputs.get("Normal") if shader is not None else None
    if normal is not None and normal.is_linked:
        tree.links.new(normal.links[0].from_socket, diffuse.inputs["Normal"])
    to_rgb = new("ShaderNodeShaderToRGB")
    tree.links.new(diffuse.outputs["BSDF"], to_rgb.inputs["Shader"])
    ramp = new("ShaderNodeValToRGB")
    set_constant_bands(ramp.color_ramp, bands)
    tree.links.new(to_rgb.outputs["Color"], ramp.inputs["Fac"])
    emission = new("ShaderNodeEmission")
    tree.links.new(ramp.outputs["Color"], emission.inputs["Strength"])
    link_base_colour(material, shader, emission.inputs["Color"])
    output = new("ShaderNodeOutputMaterial")
    output.target = "ALL"
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    output.is_active_output = True


def surface_shader(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    """The node linked to the active Material Output's Surface, if any."""
    for node in tree.nodes:
        if node.type == "OUTPUT_MATERIAL" and node.is_active_output and node.inputs["Surface"].is_linked:
            return node.inputs["Surface"].links[0].from_node
    return None


def link_base_colour(material: bpy.types.Material, shader: bpy.types.Node | None,
                     target: bpy.types.NodeSocket) -> None:
    """Feed the shader's Base Color (or Color) into ``target``: its link if linked, else its value.

    Without such an input, the material's viewport colour is used.
    """
    source = None
    if shader is not None:
        source = shader.inputs.get("Base Color") or shader.inputs.get("Color")
    if source is None or source.type != "RGBA":
        target.default_value = tuple(material.diffuse_color)
    elif source.is_linked:
        material.node_tree.links.new(source.links[0].from_socket, target)
    else:
        target.default_value = tuple(source.default_value)


def set_constant_bands(ramp: bpy.types.ColorRamp, bands: int) -> None:
    """``bands`` equal steps of light, from TOON_DARKEST_BAND up to 1.0, with hard edges."""
    ramp.interpolation = "CONSTANT"
    while len(ramp.elements) < bands:
        ramp.elements.new(1.0)
    for index, element in enumerate(ramp.elements):
        level = TOON_DARKEST_BAND + (1.0 - TOON_DARKEST_BAND) * index / (bands - 1)
        element.position = index / bands
        element.color = (level, level, level, 1.0)


# --- painterly --------------------------------------------------------------------------------

def _render_painterly(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, out_path: Path,
                      params: dict[str, Any]) -> None:
    with cycles_full_gi(scene, params["samples"]), compositing_scene(scene) as compositor:
        set_look(compositor, params["look"])
        with temporary_compositor(compositor) as (tree, final_image):
            add_kuwahara_chain(tree, final_image, scene, view_layer, params)
            bpy.ops.render.render(scene=compositor.name)
        with png_output(compositor):
            save_render_result(compositor, out_path)


PAINTERLY_AGX_LOOK = "AgX - Punchy"  # look "auto" under AgX


def set_look(scene: bpy.types.Scene, look: str) -> None:
    """Give ``scene`` the view transform's ``look``: "scene" leaves it as it is, "auto" gives AgX's
    Punchy look under AgX and leaves other view transforms' looks alone. ValueError for a look the
    view transform does not have (Blender's message names those it has)."""
    if look == "auto":
        look = PAINTERLY_AGX_LOOK if scene.view_settings.view_transform == "AgX" else "scene"
    if look == "scene":
        return
    try:
        scene.view_settings.look = look
    except TypeError as error:  # Blender's message lists the looks of this view transform
        raise ValueError(f"target 'painterly' parameter 'look' is {look!r}: not a look of the view transform "
                         f"{scene.view_settings.view_transform!r} ({error})") from None


@contextmanager
def compositing_scene(source: bpy.types.Scene) -> Iterator[bpy.types.Scene]:
    """A throwaway scene whose render composites ``source``'s view layers (removed afterwards).

    It has ``source``'s frame, output size and view transform; rendering it renders
    ``source`` through its Render Layers nodes, and never runs ``source``'s own compositor.
    """
    scene = bpy.data.scenes.new(f"{TAG} Compositing")
    try:
        scene.frame_current = source.frame_current
        for name in ("resolution_x", "resolution_y", "resolution_percentage", "pixel_aspect_x",
                     "pixel_aspect_y", "use_border", "use_crop_to_border", "border_min_x",
                     "border_min_y", "border_max_x", "border_max_y", "film_transparent"):
            setattr(scene.render, name, getattr(source.render, name))
        scene.display_settings.display_device = source.display_settings.display_device
        for name in ("view_transform", "look", "exposure", "gamma"):
            setattr(scene.view_settings, name, getattr(source.view_settings, name))
        scene.render.use_compositing = True
        scene.render.use_sequencer = False
        yield scene
    finally:
        bpy.data.scenes.remove(scene)


def add_kuwahara_chain(tree: bpy.types.NodeTree, final_image: bpy.types.NodeSocket,
                       source: bpy.types.Scene, view_layer: bpy.types.ViewLayer,
                       params: dict[str, Any]) -> None:
    """Render Layers (``source``'s view layer) -> Kuwahara -> ``final_image``."""
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = source
    layers.layer = view_layer.name
    kuwahara = tree.nodes.new("CompositorNodeKuwahara")
    kuwahara.inputs["Size"].default_value = params["size"]
    kuwahara.inputs["Sharpness"].default_value = params["sharpness"]
    kuwahara.inputs["Eccentricity"].default_value = params["eccentricity"]
    set_kuwahara_variation(kuwahara, params["variation"])
    tree.links.new(layers.outputs["Image"], kuwahara.inputs["Image"])
    tree.links.new(kuwahara.outputs["Image"], final_image)


# --- sketch -----------------------------------------------------------------------------------

def _render_sketch(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, out_path: Path,
                   params: dict[str, Any]) -> None:
    with ExitStack() as stack:
        stack.enter_context(changed(scene.render, engine="CYCLES", film_transparent=False))
        stack.enter_context(changed(scene.cycles, samples=SKETCH_CYCLES_SAMPLES,
                                    use_adaptive_sampling=False, time_limit=0.0, use_denoising=False,
                                    max_bounces=0))
        stack.enter_context(paper_white(scene, view_layer))
        stack.enter_context(freestyle_lines(scene, view_layer, params["line_thickness"], LINE_COLOUR))
        render_view_layer(scene, view_layer)
    with standard_view_transform(scene), png_output(scene):
        save_render_result(scene, out_path)


@contextmanager
def paper_white(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> Iterator[None]:
    """Every surface and the world render as white emission (temporary material and world)."""
    material = bpy.data.materials.new(f"{TAG} Paper")
    world = bpy.data.worlds.new(f"{TAG} Paper")
    try:
        make_white_emission_material(material)
        make_white_world(world)
        with changed(view_layer, material_override=material), changed(scene, world=world):
            yield
    finally:
        bpy.data.materials.remove(material)
        bpy.data.worlds.remove(world)


def make_white_emission_material(material: bpy.types.Material) -> None:
    """Turn a new material into pure white emission (strength 1)."""
    if material.node_tree is None:  # 4.5; in 5.x materials always have nodes
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    emission = tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    emission.inputs["Strength"].default_value = 1.0
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])


def make_white_world(world: bpy.types.World) -> None:
    """Turn a new world into a plain white background (strength 1)."""
    if world.node_tree is None:  # 4.5; in 5.x worlds always have nodes
        world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    background.inputs["Strength"].default_value = 1.0
