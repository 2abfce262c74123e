"""Operators of the Stylepass panel (bpy): ``stylepass.setup_passes``,
``stylepass.remove_passes`` and ``stylepass.export_gbuffers``."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..contract import keyframes
from ..contract.headless_protocol import BadInputError, JobError
from ..scene import gbuffer_export, passes


class STYLEPASS_OT_setup_passes(bpy.types.Operator):
    """Turn on the G-buffer passes for this view layer and give materials stable ids"""

    bl_idname = "stylepass.setup_passes"
    bl_label = "Set up passes"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            report = passes.setup_passes(context.scene, context.view_layer)
        except (passes.UnsupportedEngineError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for note in report.notes:
            self.report({"WARNING"}, note)
        self.report({"INFO"}, f"Stylepass: {len(report.enabled_flags)} passes turned on, "
                              f"{len(report.assigned_materials)} materials given ids")
        return {"FINISHED"}


class STYLEPASS_OT_remove_passes(bpy.types.Operator):
    """Turn off the passes Stylepass turned on and reset the material ids it assigned"""

    bl_idname = "stylepass.remove_passes"
    bl_label = "Remove passes"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        flags = passes.remove_passes(context.scene, context.view_layer)
        self.report({"INFO"}, f"Stylepass: {len(flags)} passes turned off")
        return {"FINISHED"}


class STYLEPASS_OT_export_gbuffers(bpy.types.Operator):
    """Render the current frame and write its G-buffers (multilayer EXR + JSON) to the export folder"""

    bl_idname = "stylepass.export_gbuffers"
    bl_label = "Export G-buffers"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.scene.camera is None:
            cls.poll_message_set("The scene has no active camera: add one (Add > Camera) and make it active")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene, view_layer = context.scene, context.view_layer
        window_manager = context.window_manager
        try:
            out_dir = gbuffer_export.output_dir_from_setting(scene.stylepass.output_dir)
            gbuffer_export.check_exportable(scene, view_layer)
            gbuffer_export.prepare_output_dir(out_dir)
            window_manager.progress_begin(0, 1)
            try:
                row = gbuffer_export.export_frame(scene, view_layer, out_dir, scene.frame_current)
                window_manager.progress_update(1)
            finally:
                window_manager.progress_end()
        except JobError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Stylepass: frame {row['frame']} written to {out_dir / row['exr']}")
        return {"FINISHED"}


def image_file_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, read by Blender; BadInputError if it cannot read it."""
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as exc:
        raise BadInputError(f"Blender cannot read the painting {path}: {exc}") from exc
    try:
        return int(image.size[0]), int(image.size[1])
    finally:
        bpy.data.images.remove(image)


class STYLEPASS_OT_add_painted_keyframe(bpy.types.Operator):
    """Register a painting over the current frame's render as its training target (a copy is kept
    in the export folder; your file is never changed)"""

    bl_idname = "stylepass.add_painted_keyframe"
    bl_label = "Add painted keyframe"

    filepath: bpy.props.StringProperty(name="Painting", subtype="FILE_PATH")  # type: ignore[valid-type]
    replace: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Replace", description="Replace this frame's painting (the old one is kept)", default=False)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        try:
            export_dir = gbuffer_export.output_dir_from_setting(scene.stylepass.output_dir)
            painting = Path(bpy.path.abspath(self.filepath))
            if not painting.is_file():
                raise BadInputError(f"painting not found: {painting}")
            keyframe = keyframes.add_keyframe(export_dir, scene.frame_current, painting,
                                              image_file_size(painting), replace=self.replace)
        except JobError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Stylepass: frame {keyframe.frame} has a painted keyframe ({keyframe.painting})")
        return {"FINISHED"}


CLASSES = (STYLEPASS_OT_setup_passes, STYLEPASS_OT_remove_passes, STYLEPASS_OT_export_gbuffers,
           STYLEPASS_OT_add_painted_keyframe)
