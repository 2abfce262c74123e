"""Render Cycles on the GPU in headless jobs (bpy): ``--cycles-device`` of export and dataset.

``--factory-startup`` Blender renders Cycles on the CPU with no compute device set. With a GPU
backend asked for, the Cycles preferences get that backend and its devices (every device of
that kind, none of the others), and every scene rendered from then on (the export's, the
dataset's procedural scenes and targets) is set to render on the GPU. A backend this Blender or
machine lacks, or one with no device, is refused before anything is rendered.
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from ..contract.headless_protocol import BadInputError


def use_cycles_device(kind: str) -> None:
    """Render Cycles on `kind` ("CPU": as Blender does by default; "CUDA", "OPTIX", "HIP", "ONEAPI",
    "METAL"). Raises BadInputError when this Blender or machine has no such device."""
    if kind == "CPU":
        return
    preferences = bpy.context.preferences.addons["cycles"].preferences
    try:
        preferences.compute_device_type = kind
    except TypeError:
        raise BadInputError(f"--cycles-device {kind}: this Blender's Cycles has no {kind} backend on this platform; "
                            "use CPU (the default)") from None
    preferences.get_devices()
    devices = [device for device in preferences.devices if device.type == kind]
    if not devices:
        found = ", ".join(sorted({device.type for device in preferences.devices})) or "none"
        raise BadInputError(f"--cycles-device {kind}: Cycles finds no {kind} device here (devices: {found}); "
                            "check the GPU driver, or use CPU (the default)")
    for device in preferences.devices:
        device.use = device.type == kind
    bpy.app.handlers.render_init.append(_render_on_gpu)


@persistent
def _render_on_gpu(scene: bpy.types.Scene, *_args: object) -> None:
    scene.cycles.device = "GPU"
