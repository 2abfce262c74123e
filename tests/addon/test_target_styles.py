"""Target renderers for dataset pairs: format, look, alignment with the input, scene restored.

Eevee renders slowly here (software GL), so every target is rendered once per session by the
module-scoped ``targets`` fixture and shared by the assertions below.
"""

from __future__ import annotations

import colorsys
import importlib
import struct
from pathlib import Path
from types import ModuleType

import bpy
import numpy as np
import pytest

from .conftest import EXTENSION

SIZE = (192, 108)
FRAME = 3
TOON_BANDS = 3


def target_styles() -> ModuleType:
    return importlib.import_module(f"{EXTENSION}.scene.target_styles")


# --- reading what was written -----------------------------------------------------------------

def read_pixels(path: Path) -> np.ndarray:
    """RGBA pixels as floats, top row first (PNG: stored sRGB values; EXR: linear)."""
    image = bpy.data.images.load(str(path))
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(height, width, 4)[::-1]
    finally:
        bpy.data.images.remove(image)


def exr_channels(path: Path) -> tuple[dict[str, int], bool]:
    """Channel name -> pixel type (1 half, 2 float) of an OpenEXR file, and whether it is multi-part."""
    data = path.read_bytes()
    assert data[:4] == b"\x76\x2f\x31\x01", "not an OpenEXR file"
    multipart = bool(data[5] & 0x10)
    start = data.index(b"channels\x00chlist\x00") + len(b"channels\x00chlist\x00") + 4
    channels = {}
    while data[start] != 0:
        end = data.index(b"\x00", start)
        channels[data[start:end].decode()] = struct.unpack("<i", data[end + 1:end + 5])[0]
        start = end + 1 + 16
    return channels, multipart


def png_depth_and_colour_type(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24], data[25]


def dilate(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    padded = np.pad(mask, radius)
    height, width = mask.shape
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy:dy + height, dx:dx + width]
    return out


def edges(image: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels where the value changes by more than ``threshold`` to a right or lower neighbour."""
    out = np.zeros(image.shape, dtype=bool)
    horizontal = np.abs(np.diff(image, axis=1)) > threshold
    vertical = np.abs(np.diff(image, axis=0)) > threshold
    out[:, :-1] |= horizontal
    out[:, 1:] |= horizontal
    out[:-1] |= vertical
    out[1:] |= vertical
    return out


def mask_mismatch(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a != b))


# --- the scene and its snapshot ---------------------------------------------------------------

def compositor_state(scene: bpy.types.Scene) -> object:
    if hasattr(scene, "compositing_node_group"):
        group = scene.compositing_node_group
        return group.name if group else None, sorted(n.name for n in group.nodes) if group else None
    tree = scene.node_tree
    return scene.use_nodes, sorted(n.name for n in tree.nodes) if tree else None


def material_state(material: bpy.types.Material) -> object:
    tree = material.node_tree
    return (sorted((n.name, n.bl_idname, getattr(n, "is_active_output", None)) for n in tree.nodes),
            sorted((link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier)
                   for link in tree.links))


def scene_state(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> dict[str, object]:
    """Everything a target render touches, in comparable form."""
    def props(owner, *names):
        return {name: (tuple(v) if hasattr(v := getattr(owner, name), "__len__") and not isinstance(v, str)
                       else v) for name in names}

    image = scene.render.image_settings
    freestyle = view_layer.freestyle_settings
    return {
        "render": props(scene.render, "engine", "use_freestyle", "line_thickness_mode", "line_thickness",
                        "film_transparent", "use_compositing", "use_sequencer", "resolution_x",
                        "resolution_y", "filter_size"),
        "image": props(image, "file_format", "color_depth", "color_mode", "exr_codec", "color_management",
                       *(("media_type",) if hasattr(image, "media_type") else ())),
        "cycles": props(scene.cycles, "samples", "use_adaptive_sampling", "adaptive_threshold", "time_limit",
                        "use_denoising", "denoiser", "denoising_use_gpu", "filter_width",
                        *target_styles().FULL_GI_BOUNCES),
        "eevee": props(scene.eevee, "taa_render_samples", "use_raytracing"),
        "view": props(scene.view_settings, "view_transform", "look", "exposure", "gamma", "use_curve_mapping"),
        "display": scene.display_settings.display_device,
        "frame": scene.frame_current,
        "world": scene.world.name if scene.world else None,
        "view_layer": (view_layer.use_freestyle, view_layer.material_override, freestyle.mode,
                       freestyle.as_render_pass, freestyle.linesets.active_index,
                       [(s.name, s.show_render, s.linestyle and s.linestyle.name) for s in freestyle.linesets]),
        "compositor": compositor_state(scene),
        "materials": {m.name: material_state(m) for m in bpy.data.materials},
        "data": {name: sorted(x.name for x in getattr(bpy.data, name))
                 for name in ("materials", "worlds", "scenes", "linestyles", "node_groups")},
    }


def give_user_settings(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> None:
    """Settings a user might have, which the targets must neither use wrongly nor lose."""
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    scene.render.film_transparent = True  # alpha gives the silhouettes to compare
    scene.objects["Floor"].hide_render = True
    scene.frame_set(FRAME)
    scene.cycles.samples = 16
    scene.render.image_settings.file_format = "JPEG"
    scene.view_settings.look = "AgX - Punchy"
    link_base_colour_from_an_rgb_node(bpy.data.materials["Teal Plastic"])
    user_lines = view_layer.freestyle_settings.linesets.new("User Lines")
    user_lines.show_render = True
    if hasattr(scene, "compositing_node_group"):
        scene.compositing_node_group = bpy.data.node_groups.new("User Compositor", "CompositorNodeTree")
    else:
        scene.use_nodes = True


def link_base_colour_from_an_rgb_node(material: bpy.types.Material) -> None:
    """The same colour, now from a node (as a texture would give it): toon must follow the link."""
    tree = material.node_tree
    bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    rgb = tree.nodes.new("ShaderNodeRGB")
    rgb.outputs["Color"].default_value = tuple(bsdf.inputs["Base Color"].default_value)
    bsdf.inputs["Base Color"].default_value = (1.0, 0.0, 1.0, 1.0)
    tree.links.new(rgb.outputs["Color"], bsdf.inputs["Base Color"])


@pytest.fixture(scope="module")
def targets(addon, tmp_path_factory) -> dict[str, object]:
    """The demo scene's input render and its four targets, rendered once, and the state around."""
    styles = target_styles()
    scene = addon.scene.scene_loading.build_demo_scene()
    view_layer = bpy.context.view_layer
    give_user_settings(scene, view_layer)
    folder = tmp_path_factory.mktemp("targets")
    before = scene_state(scene, view_layer)
    paths = {kind: folder / f"{kind}.{'exr' if kind == 'enhance' else 'png'}" for kind in styles.TARGET_KINDS}
    # painterly at the size the shipped recipe used for 128-256 px frames (these are 192x108), in the
    # scene's own colours (the default look has a test of its own)
    params = {"enhance": {"samples": 16}, "painterly": {"samples": 16, "size": 6, "look": "scene"},
              "toon": {"bands": TOON_BANDS}}
    for kind, path in paths.items():
        styles.render_target(scene, view_layer, kind, path, params.get(kind))
    after = scene_state(scene, view_layer)
    paths["input"] = folder / "input.exr"
    with styles.input_render_settings(scene, samples=4), styles.plain_render_pipeline(scene):
        styles.render_view_layer(scene, view_layer)
    with addon.blender_compat.single_image_output(scene, "OPEN_EXR", "16"):
        styles.save_render_result(scene, paths["input"])
    with styles.cycles_full_gi(scene, 16), styles.plain_render_pipeline(scene):
        styles.render_view_layer(scene, view_layer)
    paths["plain"] = folder / "plain.png"
    with styles.png_output(scene):
        styles.save_render_result(scene, paths["plain"])
    return {"scene": scene, "view_layer": view_layer, "folder": folder, "paths": paths,
            "before": before, "after": after}


@pytest.fixture(scope="module")
def pixels(targets) -> dict[str, np.ndarray]:
    return {name: read_pixels(path) for name, path in targets["paths"].items()}


# --- format -----------------------------------------------------------------------------------

def test_enhance_is_a_single_layer_half_float_rgba_exr(targets, pixels):
    channels, multipart = exr_channels(targets["paths"]["enhance"])
    assert channels == {"A": 1, "B": 1, "G": 1, "R": 1} and not multipart
    assert pixels["enhance"].shape == (SIZE[1], SIZE[0], 4)
    assert pixels["enhance"][..., :3].max() > 0.1, "a linear render, not an empty image"


@pytest.mark.parametrize("kind", ["toon", "painterly", "sketch"])
def test_style_targets_are_8_bit_rgba_pngs_of_the_render_size(targets, pixels, kind):
    assert png_depth_and_colour_type(targets["paths"][kind]) == (8, 6)
    assert pixels[kind].shape == (SIZE[1], SIZE[0], 4)


def test_only_finished_files_are_left(targets):
    names = sorted(p.name for p in targets["folder"].iterdir())
    assert names == ["enhance.exr", "input.exr", "painterly.png", "plain.png", "sketch.png", "toon.png"]


# --- the scene is left as it was --------------------------------------------------------------

def test_the_scene_is_restored_exactly(targets):
    before, after = targets["before"], targets["after"]
    assert before["view_layer"][-1][-1][0] == "User Lines", "the snapshot covers the user's line set"
    assert {key: after[key] for key in before if after[key] != before[key]} == {}


# --- alignment with the input -----------------------------------------------------------------

def silhouettes(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., 3] > 0.5


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    gx, gy = np.zeros_like(image), np.zeros_like(image)
    gx[:, 1:-1] = (image[:, 2:] - image[:, :-2]) / 2
    gy[1:-1] = (image[2:] - image[:-2]) / 2
    return np.hypot(gx, gy)


def edge_offset(target_edges: np.ndarray, reference_edges: np.ndarray) -> tuple[float, float]:
    """Sub-pixel (x, y) shift that best lays ``target_edges`` onto ``reference_edges``.

    The correlation at shifts -1, 0, 1 along each axis, fitted with a parabola: below 0.5
    in size only when the best whole-pixel shift is none.
    """
    offsets = []
    for axis in (1, 0):
        left, centre, right = (float(np.sum(np.roll(target_edges, shift, axis) * reference_edges))
                               for shift in (-1, 0, 1))
        offsets.append((left - right) / (2 * (left + right - 2 * centre)))
    return offsets[0], offsets[1]


def line_darkness(rgba: np.ndarray) -> np.ndarray:
    """How much each pixel is a drawn line: dark grey, opaque."""
    return (rgba[..., :3].max(axis=2) < 0.3) * rgba[..., 3]


@pytest.mark.parametrize("kind", ["enhance", "painterly"])
def test_rendered_silhouettes_match_the_input(pixels, kind):
    expected = silhouettes(pixels["input"])
    assert 0.05 < expected.mean() < 0.6, "the objects cover part of the frame"
    assert mask_mismatch(silhouettes(pixels[kind]), expected) < 0.02
    offset = edge_offset(gradient_magnitude(pixels[kind][..., 3]), gradient_magnitude(pixels["input"][..., 3]))
    assert np.abs(offset).max() < 0.25, f"edges moved by {offset} pixels"


def test_toon_silhouettes_match_the_input_up_to_its_lines(pixels):
    expected = silhouettes(pixels["input"])
    toon = silhouettes(pixels["toon"])
    assert mask_mismatch(toon, expected) < 0.03
    assert np.mean(toon & ~dilate(expected)) < 0.002, "nothing drawn more than a pixel outside"
    assert np.mean(expected & ~toon) < 0.002, "no object pixel lost"
    offset = edge_offset(line_darkness(pixels["toon"]), gradient_magnitude(pixels["input"][..., 3]))
    assert np.abs(offset).max() < 0.25, f"lines moved by {offset} pixels"


def test_sketch_lines_lie_on_the_inputs_edges(pixels):
    lines = pixels["sketch"][..., :3].mean(axis=2) < 0.5
    rgba = pixels["input"]
    input_edges = edges(rgba[..., 3], 0.3) | edges(rgba[..., :3].mean(axis=2), 0.05)
    assert np.mean(dilate(input_edges)[lines]) > 0.9, "lines are drawn where the input has edges"
    outline = edges(rgba[..., 3], 0.5)
    assert np.mean(dilate(lines)[outline]) > 0.8, "the silhouettes are drawn"
    offset = edge_offset(1 - pixels["sketch"][..., :3].mean(axis=2), gradient_magnitude(rgba[..., 3]))
    assert np.abs(offset).max() < 0.25, f"lines moved by {offset} pixels"


# --- looks ------------------------------------------------------------------------------------

def material_colours(rgba: np.ndarray) -> dict[int, np.ndarray]:
    """Object pixels away from outlines and lines by hue: 30-degree bins from -15 degrees, 100+ pixels."""
    rgb = rgba[..., :3]
    lines = rgb.max(axis=2) < 0.3
    colours = rgb[~dilate(~silhouettes(rgba), 2) & ~dilate(lines, 1)]
    hues = np.array([colorsys.rgb_to_hsv(*colour)[0] * 360 for colour in colours])
    bins = ((hues + 15) % 360 // 30).astype(int)
    return {int(b): colours[bins == b] for b in np.unique(bins) if np.sum(bins == b) >= 100}


def share_in_brightest_levels(colours: np.ndarray, levels: int, tolerance: int = 4) -> float:
    """Share of pixels whose brightness (0-255) is within ``tolerance`` of its ``levels`` most common values."""
    brightness = np.round(colours.max(axis=1) * 255).astype(int)
    left = brightness
    for _ in range(levels):
        if left.size:
            values, counts = np.unique(left, return_counts=True)
            left = left[np.abs(left - values[np.argmax(counts)]) > tolerance]
    return 1 - left.size / brightness.size


def test_toon_has_a_few_flat_colours_per_material(pixels):
    materials = material_colours(pixels["toon"])
    assert sorted(materials) == [0, 1, 6], "red cube, cream sphere and teal cone (its colour from a link)"
    assert min(share_in_brightest_levels(m, TOON_BANDS) for m in materials.values()) > 0.75, "flat bands"
    smooth = material_colours(pixels["plain"]).values()
    assert min(share_in_brightest_levels(m, TOON_BANDS) for m in smooth) < 0.75, "the check tells smooth shading"


def test_sketch_is_dark_lines_on_white(pixels):
    grey = pixels["sketch"][..., :3].mean(axis=2)
    assert np.mean(grey > 0.98) > 0.85
    assert 0.01 < np.mean(grey < 0.5) < 0.15
    assert grey.min() < 0.35 and (pixels["sketch"][..., 3] == 1).all()


def test_painterly_filters_the_render_but_keeps_its_colours(pixels):
    painted, plain = pixels["painterly"][..., :3], pixels["plain"][..., :3]
    objects = silhouettes(pixels["plain"]) & silhouettes(pixels["painterly"])
    assert np.abs(painted - plain)[objects].mean() > 0.01
    assert np.abs(painted[objects].mean(axis=0) - plain[objects].mean(axis=0)).max() < 0.03


def test_painterly_default_look_is_punchier_than_no_look(targets, pixels, tmp_path):
    """The scene here (AgX) already has the Punchy look (a user's setting), so the default ("auto")
    gives the same picture as "scene"; without any look the colours are flatter."""
    render = target_styles().render_target
    render(targets["scene"], targets["view_layer"], "painterly", tmp_path / "flat.png",
           {"samples": 16, "size": 6, "look": "None"})
    render(targets["scene"], targets["view_layer"], "painterly", tmp_path / "default.png", {"samples": 16, "size": 6})
    bold, own = read_pixels(tmp_path / "default.png")[..., :3], read_pixels(tmp_path / "flat.png")[..., :3]
    np.testing.assert_allclose(bold, pixels["painterly"][..., :3], atol=2 / 255)
    objects = silhouettes(pixels["painterly"])
    def colourfulness(image):  # chroma relative to brightness: deep colours rather than a washed-out render
        rgb = image[objects]
        return (rgb.max(axis=-1) - rgb.min(axis=-1)).mean() / rgb.mean()
    assert colourfulness(bold) > 1.1 * colourfulness(own)
    assert (bold[objects].argmax(axis=-1) == own[objects].argmax(axis=-1)).mean() > 0.8  # hues kept


def test_painterly_default_look_leaves_other_view_transforms_alone(targets, tmp_path):
    """AgX's Punchy look exists only under AgX: under Standard "auto" keeps the scene's own look."""
    scene, render = targets["scene"], target_styles().render_target
    before = (scene.view_settings.view_transform, scene.view_settings.look)
    try:
        scene.view_settings.view_transform = "Standard"
        for look in ("auto", "scene"):
            render(scene, targets["view_layer"], "painterly", tmp_path / f"{look}.png",
                   {"samples": 16, "size": 6, "look": look})
    finally:
        scene.view_settings.view_transform, scene.view_settings.look = before
    np.testing.assert_array_equal(read_pixels(tmp_path / "auto.png"), read_pixels(tmp_path / "scene.png"))


# --- input settings and bad requests ----------------------------------------------------------

def test_input_render_settings_are_fast_and_temporary(demo_scene, addon):
    styles = target_styles()
    demo_scene.render.engine = "CYCLES"
    with styles.input_render_settings(demo_scene, samples=5):
        assert (demo_scene.cycles.samples, demo_scene.cycles.max_bounces) == (5, 0)
        assert not demo_scene.cycles.use_adaptive_sampling
    with styles.input_render_settings(demo_scene, engine="eevee", samples=7, indirect=True):
        assert demo_scene.render.engine == addon.blender_compat.eevee_engine_id()
        assert demo_scene.eevee.taa_render_samples == 7 and demo_scene.eevee.use_raytracing
    with styles.input_render_settings(demo_scene, indirect=True):
        assert demo_scene.cycles.max_bounces == 12
    assert demo_scene.render.engine == "CYCLES" and demo_scene.cycles.samples == 4096
    assert demo_scene.cycles.max_bounces == 12 and demo_scene.cycles.use_adaptive_sampling
    with pytest.raises(ValueError, match="unknown input engine 'workbench': expected one of cycles, eevee"):
        with styles.input_render_settings(demo_scene, engine="workbench"):
            pass


@pytest.mark.parametrize("kind, params, message", [
    ("oil", None, "unknown target kind 'oil': expected one of enhance, toon, painterly, sketch"),
    ("toon", {"bands": 4, "colour": 1, "glow": 2},
     "unknown parameter\\(s\\) for target 'toon': colour, glow; allowed: bands, line_thickness, samples"),
    ("painterly", {"variation": "wet"}, "'variation' is 'wet': expected anisotropic or classic"),
    ("painterly", {"eccentricity": 3}, "'eccentricity' is 3: expected a number from 0 to 2"),
    ("painterly", {"look": "Sepia"}, "'look' is 'Sepia': not a look of the view transform"),
    ("enhance", {"samples": 0}, "'samples' is 0: expected an integer >= 1"),
])
def test_bad_requests_are_refused_before_rendering(demo_scene, view_layer, tmp_path, kind, params, message):
    with pytest.raises(ValueError, match=message):
        target_styles().render_target(demo_scene, view_layer, kind, tmp_path / "t.png", params)
    assert list(tmp_path.iterdir()) == []
