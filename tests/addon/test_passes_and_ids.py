"""Set up passes / Remove passes / material ids, through the operators, on Cycles and Eevee."""

from __future__ import annotations

import bpy
import pytest

CYCLES_FLAGS = ["use_pass_diffuse_color", "use_pass_glossy_color", "use_pass_normal", "use_pass_z",
                "use_pass_material_index", "use_pass_vector"]


def ids(scene):
    return {m.name: m.pass_index for m in bpy.data.materials if m.users}


def test_extension_registers_and_unregisters_cleanly(addon):
    assert hasattr(bpy.types, "STYLEPASS_PT_render_panel") and hasattr(bpy.types.Scene, "stylepass")
    bpy.ops.preferences.addon_disable(module="bl_ext.user_default.stylepass")
    assert not hasattr(bpy.types, "STYLEPASS_PT_render_panel")
    assert not hasattr(bpy.types.Scene, "stylepass")
    bpy.ops.preferences.addon_enable(module="bl_ext.user_default.stylepass")
    assert hasattr(bpy.types, "STYLEPASS_PT_render_panel")
    assert bpy.ops.stylepass.setup_passes.poll() in (True, False)  # the operator exists


def test_setup_turns_on_cycles_passes_and_gives_distinct_ids_by_name(demo_scene, view_layer):
    for flag in CYCLES_FLAGS:
        setattr(view_layer, flag, False)
    assert bpy.ops.stylepass.setup_passes() == {"FINISHED"}
    assert all(getattr(view_layer, flag) for flag in CYCLES_FLAGS)
    assert not view_layer.use_pass_cryptomatte_material
    assert ids(demo_scene) == {"Brushed Metal": 1, "Floor": 2, "Painted Red": 3, "Teal Plastic": 4}


def test_remove_passes_undoes_only_what_setup_did(demo_scene, view_layer):
    for flag in CYCLES_FLAGS:
        setattr(view_layer, flag, False)
    view_layer.use_pass_z = True                      # the user's own pass
    bpy.data.materials["Floor"].pass_index = 7        # the user's own id
    bpy.ops.stylepass.setup_passes()
    first = ids(demo_scene)
    assert first["Floor"] == 7 and len(set(first.values())) == 4
    bpy.ops.stylepass.remove_passes()
    assert view_layer.use_pass_z, "a pass the user had on must stay on"
    assert not any(getattr(view_layer, f) for f in CYCLES_FLAGS if f != "use_pass_z")
    assert ids(demo_scene) == {"Brushed Metal": 0, "Floor": 7, "Painted Red": 0, "Teal Plastic": 0}
    bpy.ops.stylepass.setup_passes()
    assert ids(demo_scene) == first, "the same scene must get the same ids again"


def test_ids_stay_stable_when_materials_are_added(demo_scene, view_layer):
    bpy.ops.stylepass.setup_passes()
    before = ids(demo_scene)
    extra = bpy.data.materials.new("Aardvark Fur")  # sorts first by name, must not shift others
    bpy.data.objects["Cube"].data.materials.append(extra)
    bpy.ops.stylepass.setup_passes()
    after = ids(demo_scene)
    assert {k: after[k] for k in before} == before
    assert after["Aardvark Fur"] == max(before.values()) + 1


def test_eevee_gets_cryptomatte_and_materials_stay_untouched(addon, demo_scene, view_layer):
    demo_scene.render.engine = addon.blender_compat.eevee_engine_id()
    nodes_before = {m.name: len(m.node_tree.nodes) for m in bpy.data.materials if m.node_tree}
    view_layer.use_pass_cryptomatte_material = False
    bpy.ops.stylepass.setup_passes()
    assert view_layer.use_pass_cryptomatte_material
    assert addon.scene.passes.missing_required(demo_scene, view_layer) == []
    assert {m.name: len(m.node_tree.nodes) for m in bpy.data.materials if m.node_tree} == nodes_before
    bpy.ops.stylepass.remove_passes()
    assert not view_layer.use_pass_cryptomatte_material


def test_workbench_is_refused_with_the_fix(demo_scene):
    demo_scene.render.engine = "BLENDER_WORKBENCH"
    with pytest.raises(RuntimeError, match="cannot give G-buffer passes.*Cycles or Eevee"):
        bpy.ops.stylepass.setup_passes()


def test_cycles_motion_blur_leaves_vectors_off_and_says_why(addon, demo_scene, view_layer):
    demo_scene.render.use_motion_blur = True
    view_layer.use_pass_vector = False
    report = addon.scene.passes.setup_passes(demo_scene, view_layer)
    assert not view_layer.use_pass_vector
    assert report.notes == ["motion: Cycles gives motion vectors only with motion blur off"]
    assert addon.scene.passes.missing_required(demo_scene, view_layer) == []
