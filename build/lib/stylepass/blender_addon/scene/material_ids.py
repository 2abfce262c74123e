"""Stable, distinct material ids in ``Material.pass_index`` (bpy).

Every material starts with pass_index 0, so the Material Index pass is all zeros until
someone assigns ids. We give each material of the scene that has none an id, and keep a
name -> id table on the scene so the same scene gets the same ids every time (also after
"Remove passes" and a second "Set up passes"). Ids the user set by hand are kept, even
when shared between materials (a deliberate grouping). Id 0 means background or no material.
"""

from __future__ import annotations

import json

import bpy

TABLE_KEY = "stylepass_material_ids"        # scene property: JSON {material name: id}
ASSIGNED_KEY = "stylepass_assigned_materials"  # scene property: JSON [names we set]
MAX_ID = 32767  # pass_index is a signed 16-bit value


def scene_materials(scene: bpy.types.Scene) -> list[bpy.types.Material]:
    """Materials used by the scene's objects, each once, sorted by name."""
    found: dict[str, bpy.types.Material] = {}
    for obj in scene.objects:
        for slot in getattr(obj, "material_slots", ()):
            if slot.material is not None:
                found[slot.material.name] = slot.material
    return [found[name] for name in sorted(found)]


def _load(scene: bpy.types.Scene, key: str, default: str) -> object:
    return json.loads(scene.get(key, default))


def assign_material_ids(scene: bpy.types.Scene) -> dict[str, int]:
    """Give every id-less material of ``scene`` a stable id; returns ``{name: id}`` of those set."""
    table: dict[str, int] = dict(_load(scene, TABLE_KEY, "{}"))
    assigned: set[str] = set(_load(scene, ASSIGNED_KEY, "[]"))
    materials = scene_materials(scene)
    used = {m.pass_index for m in materials if m.pass_index} | set(table.values())
    newly: dict[str, int] = {}
    for material in materials:
        if material.pass_index != 0:
            continue
        material_id = table.get(material.name)
        if material_id is None:
            material_id = max(used, default=0) + 1
            if material_id > MAX_ID:
                raise ValueError(f"more than {MAX_ID} material ids: Blender's pass_index cannot hold more")
        material.pass_index = material_id
        table[material.name] = material_id
        used.add(material_id)
        assigned.add(material.name)
        newly[material.name] = material_id
    scene[TABLE_KEY] = json.dumps(table, sort_keys=True)
    scene[ASSIGNED_KEY] = json.dumps(sorted(assigned))
    return newly


def restore_material_ids(scene: bpy.types.Scene) -> int:
    """Put back pass_index 0 on materials whose id we set and nobody changed since.

    The name -> id table stays, so setting up again gives the same ids. Returns the count reset.
    """
    table: dict[str, int] = dict(_load(scene, TABLE_KEY, "{}"))
    reset = 0
    for name in _load(scene, ASSIGNED_KEY, "[]"):
        material = bpy.data.materials.get(name)
        if material is not None and material.pass_index == table.get(name):
            material.pass_index = 0
            reset += 1
    if ASSIGNED_KEY in scene:
        del scene[ASSIGNED_KEY]
    return reset


def material_table(scene: bpy.types.Scene) -> list[dict[str, object]]:
    """The sidecar's material table: ``[{"id": int, "name": str}]`` sorted by id, then name."""
    rows = [{"id": int(m.pass_index), "name": m.name} for m in scene_materials(scene)]
    return sorted(rows, key=lambda row: (row["id"], row["name"]))
