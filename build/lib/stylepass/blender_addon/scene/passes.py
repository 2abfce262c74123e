"""Turn the G-buffer passes on and off for a view layer (bpy).

"Set up passes" enables what the engine can give (see ``export_format.PASSES``) and
records which flags it turned on, so "Remove passes" turns off exactly those and leaves
the user's own passes alone. Eevee has no Material Index pass: it gets Cryptomatte
(material), which changes no material.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import bpy

from ..blender_compat import engine_family
from ..contract.export_format import PassSpec, passes_for_engine
from . import material_ids

STATE_KEY = "stylepass_enabled_passes"  # view layer property: JSON [flags we enabled]


class UnsupportedEngineError(ValueError):
    """The scene's render engine cannot give G-buffers."""


@dataclass
class PassStatus:
    """Whether one pass is on for a view layer, and why not when it cannot be."""

    spec: PassSpec
    flag: str
    enabled: bool
    unavailable_reason: str | None = None


@dataclass
class SetupReport:
    """What ``setup_passes`` changed."""

    enabled_flags: list[str] = field(default_factory=list)
    assigned_materials: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def require_family(scene: bpy.types.Scene) -> str:
    """The scene engine's family, or UnsupportedEngineError naming the engine and the fix."""
    family = engine_family(scene.render.engine)
    if family is None:
        raise UnsupportedEngineError(
            f"render engine {scene.render.engine} cannot give G-buffer passes; "
            "switch scene '" + scene.name + "' to Cycles or Eevee"
        )
    return family


def pass_status(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> list[PassStatus]:
    """State of each pass the scene's engine can give, for the panel and export checks."""
    family = require_family(scene)
    rows = []
    for spec in passes_for_engine(family):
        flag = spec.view_layer_flags[family]
        reason = None
        if spec.name == "motion" and family == "cycles" and scene.render.use_motion_blur:
            reason = "Cycles gives motion vectors only with motion blur off"
        rows.append(PassStatus(spec, flag, bool(getattr(view_layer, flag)), reason))
    return rows


def missing_required(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> list[str]:
    """Names of required passes that are off."""
    return [s.spec.name for s in pass_status(scene, view_layer) if s.spec.required and not s.enabled]


def setup_passes(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> SetupReport:
    """Enable every pass the engine can give and assign material ids; returns what changed."""
    report = SetupReport()
    for status in pass_status(scene, view_layer):
        if status.unavailable_reason:
            report.notes.append(f"{status.spec.name}: {status.unavailable_reason}")
            continue
        if not status.enabled:
            setattr(view_layer, status.flag, True)
            report.enabled_flags.append(status.flag)
    recorded = set(json.loads(view_layer.get(STATE_KEY, "[]")))
    view_layer[STATE_KEY] = json.dumps(sorted(recorded | set(report.enabled_flags)))
    report.assigned_materials = material_ids.assign_material_ids(scene)
    return report


def remove_passes(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> list[str]:
    """Undo ``setup_passes``: turn off the flags it enabled and reset the ids it assigned."""
    flags = json.loads(view_layer.get(STATE_KEY, "[]"))
    for flag in flags:
        setattr(view_layer, flag, False)
    if STATE_KEY in view_layer:
        del view_layer[STATE_KEY]
    material_ids.restore_material_ids(scene)
    return flags
