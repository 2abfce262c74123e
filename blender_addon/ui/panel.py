"""The Stylepass panel in Render properties (bpy)."""

from __future__ import annotations

import bpy

from .. import ADDON_DIR
from ..contract.headless_protocol import JobError
from ..contract.keyframes import list_keyframes
from ..contract.preset_input import input_warning, trained_input
from ..live import stylise_job
from ..live.worker_runtime import presets_folder
from ..scene import compositor_nodes, gbuffer_export, passes
from .train_style_operators import PREVIEW_IMAGE


def draw_stylepass_panel(layout: bpy.types.UILayout, scene: bpy.types.Scene,
                         view_layer: bpy.types.ViewLayer, job: bpy.types.PropertyGroup,
                         train: bpy.types.PropertyGroup | None = None) -> None:
    """Draw the panel's contents; separate from the Panel class so tests can call it.

    job, train: the stylise and Train style job states (train defaults to the window manager's).
    """
    try:
        statuses = passes.pass_status(scene, view_layer)
    except passes.UnsupportedEngineError as exc:
        layout.label(text=str(exc), icon="ERROR")
        return
    box = layout.box()
    box.label(text=f"G-buffer passes ({view_layer.name})")
    grid = box.grid_flow(columns=2, even_columns=True)
    for status in statuses:
        if status.unavailable_reason:
            grid.label(text=f"{status.spec.name}: unavailable", icon="INFO")
        else:
            grid.label(text=status.spec.name, icon="CHECKMARK" if status.enabled else "X")
    row = layout.row(align=True)
    row.operator("stylepass.setup_passes", icon="RENDERLAYERS")
    row.operator("stylepass.remove_passes", icon="X")
    if scene.camera is None:
        layout.label(text="The scene has no camera", icon="ERROR")
    layout.prop(scene.stylepass, "output_dir")
    export_row = layout.row()
    export_row.enabled = scene.camera is not None
    export_row.operator("stylepass.export_gbuffers", icon="RENDER_STILL")
    layout.operator("stylepass.add_painted_keyframe", icon="BRUSH_DATA")
    draw_train_style_section(layout, scene, train or bpy.context.window_manager.stylepass_train)
    draw_stylise_section(layout.box(), scene, job)


def draw_train_style_section(layout: bpy.types.UILayout, scene: bpy.types.Scene,
                             train: bpy.types.PropertyGroup) -> None:
    """Train style: shown while a training job runs or ended, or when the export folder has paintings."""
    try:
        painted = len(list_keyframes(gbuffer_export.output_dir_from_setting(scene.stylepass.output_dir)))
    except JobError:  # a // folder of an unsaved file: nothing exported there yet
        painted = 0
    if not painted and train.state == "IDLE":
        return
    box = layout.box()
    box.label(text=f"Custom style ({painted} painted keyframe{'s' if painted != 1 else ''})", icon="BRUSH_DATA")
    if train.state == "RUNNING":
        box.progress(factor=train.progress, text=train.message)
        box.operator("stylepass.cancel_train_style", icon="CANCEL")
    else:
        box.prop(scene.stylepass, "style_name")
        row = box.row(align=True)
        row.enabled = painted > 0
        row.operator("stylepass.train_style", icon="SHADERFX")
        draw_job_outcome(box, train)
    preview = bpy.data.images.get(PREVIEW_IMAGE)
    if preview is not None and preview.preview is not None and preview.preview.icon_id:  # no icons in background mode
        box.template_icon(icon_value=preview.preview.icon_id, scale=8.0)
        box.label(text=f"Preview: the image '{PREVIEW_IMAGE}' (input | output | painting)")


def draw_job_outcome(layout: bpy.types.UILayout, job: bpy.types.PropertyGroup) -> None:
    """How a finished job ended: its error (up to 6 lines), or its closing message."""
    if job.state == "FAILED":
        for line in job.message.splitlines()[:6] or [""]:
            layout.label(text=line, icon="ERROR")
    elif job.state in ("DONE", "CANCELLED"):
        layout.label(text=job.message, icon="CHECKMARK" if job.state == "DONE" else "INFO")


def render_input_warning(scene: bpy.types.Scene) -> str | None:
    """When the chosen preset was trained on another render than the scene makes (e.g. enhance on
    Eevee with ray tracing, the scene in Cycles): what to change."""
    presets = presets_folder(ADDON_DIR)
    name = scene.stylepass.model.strip()
    if presets is None or not name or not (presets / name).is_dir():
        return None
    ray_tracing = getattr(scene.eevee, "use_raytracing", None)
    return input_warning(name, trained_input(presets / name / "model"), scene.render.engine, ray_tracing)


def draw_stylise_section(layout: bpy.types.UILayout, scene: bpy.types.Scene,
                         job: bpy.types.PropertyGroup) -> None:
    """Style choice, the stylise buttons, and the job's state (running, failed, done)."""
    layout.label(text="Stylise", icon="BRUSHES_ALL")
    layout.template_icon_view(scene.stylepass, "style_preset", show_labels=True, scale=5.0, scale_popup=6.0)
    row = layout.row(align=True)
    row.prop(scene.stylepass, "model")
    row.operator("stylepass.choose_model_folder", text="", icon="FILE_FOLDER")
    if warning := render_input_warning(scene):
        layout.label(text=warning, icon="ERROR")
    row = layout.row(align=True)
    row.prop(scene.stylepass, "device")
    row.prop(scene.stylepass, "precision", text="")
    if stylise_job.int8_missing(scene.stylepass.model, scene.stylepass.precision):
        layout.label(text="This model has no int8 model: it runs in full precision", icon="INFO")
    layout.label(text=stylise_job.runtime_summary(), icon="SYSTEM")
    layout.prop(scene.stylepass, "stylise_on_render")
    if job.state == "RUNNING":
        layout.progress(factor=job.progress, text=job.message)
        layout.operator("stylepass.cancel_stylise", icon="CANCEL")
        return
    if not scene.stylepass.model.strip():
        layout.label(text="Click a preset above, or choose a model folder", icon="INFO")
    row = layout.row(align=True)
    row.enabled = bool(scene.stylepass.model.strip()) and scene.camera is not None
    row.operator("stylepass.stylise", icon="RENDER_STILL")
    row.operator("stylepass.stylise_animation", icon="RENDER_ANIMATION")
    draw_job_outcome(layout, job)
    node = compositor_nodes.installed_node(scene)
    if node is not None:
        layout.prop(node.inputs["Strength"], "default_value", text=f"Strength ({node.node_tree.name})")
        layout.operator("stylepass.remove_stylise", icon="TRASH")


class STYLEPASS_PT_render_panel(bpy.types.Panel):
    """Stylepass in Properties > Render."""

    bl_idname = "STYLEPASS_PT_render_panel"
    bl_label = "Stylepass"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"

    def draw(self, context: bpy.types.Context) -> None:
        window_manager = context.window_manager
        draw_stylepass_panel(self.layout, context.scene, context.view_layer, window_manager.stylepass_job,
                             window_manager.stylepass_train)


CLASSES = (STYLEPASS_PT_render_panel,)
