"""The G-buffer export format: what the add-on writes and `stylepass.core` reads.

Blender-free (no bpy): imported inside Blender by the exporter and outside it by the
reader, so both sides agree on one definition.

An export folder holds, per frame ``N``:

- ``frame_NNNNNN.exr``: a multilayer OpenEXR written by Blender from the render result.
  Colour passes are half float, depth and other data passes full float. Blender 4.5
  writes one interleaved part with short channel names (``ViewLayer.DiffCol.R``);
  Blender 5.x writes one part per pass with long names (``ViewLayer.Diffuse Color.R``).
- ``frame_NNNNNN.json``: the sidecar (see :data:`SIDECAR_KEYS`), written after the EXR.
  A frame is finished when its sidecar exists and the EXR has the byte size it records.

and for the whole folder ``manifest.jsonl``, one line per finished frame.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
FRAME_STEM_FORMAT = "frame_{frame:06d}"


def frame_stem(frame: int) -> str:
    """File stem of a frame's EXR and sidecar, e.g. ``frame_000012``."""
    if frame < 0:
        raise ValueError(f"frame numbers must be >= 0 for export, got {frame}")
    return FRAME_STEM_FORMAT.format(frame=frame)


@dataclass(frozen=True)
class PassSpec:
    """One render pass of an export.

    Attributes:
        name: our name for the pass (the key in the reader's output).
        view_layer_flags: the ``ViewLayer.use_pass_*`` properties that enable it, by engine
            family (``"cycles"``/``"eevee"``); a missing family means the engine cannot give it.
        channel_layers: EXR layer names Blender uses, newest first (5.x, then 4.5).
        channels: channel suffixes within the layer.
        required: an export is refused without it.
    """

    name: str
    view_layer_flags: dict[str, str]
    channel_layers: tuple[str, ...]
    channels: tuple[str, ...]
    required: bool


PASSES: tuple[PassSpec, ...] = (
    PassSpec("beauty", {"cycles": "use_pass_combined", "eevee": "use_pass_combined"},
             ("Combined",), ("R", "G", "B", "A"), True),
    PassSpec("albedo", {"cycles": "use_pass_diffuse_color", "eevee": "use_pass_diffuse_color"},
             ("Diffuse Color", "DiffCol"), ("R", "G", "B"), True),
    # The glossy colour (Eevee's UI: Specular Color): the colour of metals, whose Diffuse Color is
    # black. Optional: exports made before Stylepass 0.1 exported it have none.
    PassSpec("glossy_albedo", {"cycles": "use_pass_glossy_color", "eevee": "use_pass_glossy_color"},
             ("Glossy Color", "GlossCol"), ("R", "G", "B"), False),
    PassSpec("normal", {"cycles": "use_pass_normal", "eevee": "use_pass_normal"},
             ("Normal",), ("X", "Y", "Z"), True),
    PassSpec("depth", {"cycles": "use_pass_z", "eevee": "use_pass_z"},
             ("Depth",), ("Z",), True),
    # Cycles has a real material-index pass. Eevee has none: it gets Cryptomatte
    # (material names, decoded to our ids through the sidecar's material table).
    PassSpec("material_index", {"cycles": "use_pass_material_index"},
             ("Material Index", "IndexMA"), ("X",), True),
    PassSpec("material_cryptomatte", {"eevee": "use_pass_cryptomatte_material"},
             ("CryptoMaterial00",), ("r", "g", "b", "a"), True),
    # Motion vectors: Cycles gives them only with motion blur off.
    PassSpec("motion", {"cycles": "use_pass_vector", "eevee": "use_pass_vector"},
             ("Vector",), ("X", "Y", "Z", "W"), False),
)


def passes_for_engine(engine_family: str) -> tuple[PassSpec, ...]:
    """The passes an engine family (``"cycles"`` or ``"eevee"``) can give."""
    return tuple(p for p in PASSES if engine_family in p.view_layer_flags)


def pass_spec(name: str) -> PassSpec:
    """Look a pass up by our name; raises KeyError naming the known passes."""
    for spec in PASSES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown pass {name!r}; known: {', '.join(p.name for p in PASSES)}")


# Keys every sidecar has (values documented in the reader, stylepass.core.io.gbuffer).
SIDECAR_KEYS: tuple[str, ...] = (
    "schema_version", "frame", "exr", "engine", "samples", "seed", "blender_version",
    "scene", "view_layer", "resolution", "camera", "view_transform", "passes",
    "materials",
)
