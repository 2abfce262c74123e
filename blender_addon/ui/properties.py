"""The scene's Stylepass settings, shown in the panel (bpy)."""

from __future__ import annotations

import bpy

from .. import ADDON_ID
from ..contract.headless_protocol import JobError
from ..live.training_engine import BUILDS
from . import style_browser


class StylepassSceneSettings(bpy.types.PropertyGroup):
    """Per-scene settings: ``scene.stylepass``."""

    output_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Export folder",
        description="Folder for G-buffer exports (EXR + JSON per frame); // is relative to the .blend",
        default="//stylepass_export/",
        subtype="DIR_PATH",
        options={"PATH_SUPPORTS_BLEND_RELATIVE"},
    )
    model: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Style",
        description="A preset's name (enhance, toon, painterly, sketch) or a model folder (model.onnx, or "
                    "model.safetensors + config.json); the preset browser and Model folder... set it",
        default="",
        subtype="NONE",
    )
    style_preset: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Preset",
        description="The shipped presets; click one to stylise with it",
        items=style_browser.preset_items,
        update=style_browser.on_preset_picked,
    )
    style_name: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Style name",
        description="Train style writes the custom style to <export folder>/styles/<name>/",
        default="custom_style",
    )
    stylise_on_render: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Stylise on render",
        description="Stylise every frame as it is rendered (F12, or Render Animation); the compositor then "
                    "shows the result",
        default=False,
    )
    device: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Device",
        items=[("auto", "Auto", "The GPU if the worker's runtime has CUDA (onnxruntime-gpu), else the CPU"),
               ("cuda", "GPU (CUDA)", "Fail if CUDA is not available"),
               ("cpu", "CPU", "Slower, works everywhere")],
        default="auto",
    )
    precision: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Precision",
        items=[("fp32", "Full (float32)", "The model as trained"),
               ("int8", "Fast (int8)", "Its convolutions in int8: about 1.5-2x faster on a CPU, within 0.1 dB of "
                                       "float32 on the presets' cards; needs the model folder's model.int8.onnx "
                                       "(the shipped presets have one; `stylepass quantize` makes one)")],
        default="fp32",
    )


class StylepassJobStatus(bpy.types.PropertyGroup):
    """Transient state of a job, for the panel: ``window_manager.stylepass_job`` (stylise) and
    ``window_manager.stylepass_train`` (Train style)."""

    state: bpy.props.EnumProperty(  # type: ignore[valid-type]
        items=[("IDLE", "Idle", ""), ("RUNNING", "Running", ""), ("DONE", "Done", ""),
               ("FAILED", "Failed", ""), ("CANCELLED", "Cancelled", "")],
        default="IDLE",
    )
    message: bpy.props.StringProperty(default="")  # type: ignore[valid-type]
    progress: bpy.props.FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")  # type: ignore[valid-type]
    cancel_requested: bpy.props.BoolProperty(default=False)  # type: ignore[valid-type]


class StylepassPreferences(bpy.types.AddonPreferences):
    """Add-on preferences: which Python runs the stylise worker and trains styles."""

    bl_idname = ADDON_ID

    worker_python: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Core Python",
        description="A Python with stylepass installed (with torch, it also trains styles), e.g. the "
                    ".venv/bin/python that `python build.py setup` makes. Empty: stylise with the extension's "
                    "own ONNX Runtime in Blender's Python",
        default="",
        subtype="FILE_PATH",
    )

    engine_build: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="torch build",
        description="Which torch Install training engine downloads",
        items=[(name, build.label, f"torch for {build.label} (about {build.download_mb} MB to download)")
               for name, build in BUILDS.items()],
        default="cpu",
    )

    def draw(self, context: bpy.types.Context) -> None:
        from ..live import stylise_job
        from .engine_operators import draw_engine_box

        self.layout.prop(self, "worker_python")
        try:
            runtime = stylise_job.worker_runtime()
            self.layout.label(text=f"Stylise runs in {runtime.description}", icon="INFO")
        except JobError as exc:
            self.layout.label(text=str(exc), icon="ERROR")
        draw_engine_box(self.layout, self, context)
