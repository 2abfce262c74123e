"""The ``compose`` job: a .blend of a scene whose compositor shows stylised frames (bpy; run by
``headless_main``). Used by the demo, and by TDs after stylising frames on a farm."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import bpy

from ..contract.atomic_files import write_atomic
from ..contract.export_options import parse_resolution
from ..contract.headless_protocol import BadInputError
from ..scene import compositor_nodes, passes, scene_loading

Emit = Callable[..., None]
_STYLISED = re.compile(r"^stylised_(\d+)\.exr$")


def stylised_frames(folder: Path) -> list[Path]:
    """``stylised_<frame>.exr`` files of a folder, by frame; BadInputError when there are none."""
    found = sorted((int(m.group(1)), path) for path in folder.glob("stylised_*.exr")
                   if (m := _STYLISED.match(path.name)))
    if not found:
        raise BadInputError(f"{folder} holds no stylised_<frame>.exr: run `stylepass stylise` first")
    return [path for _, path in found]


def run(argv: list[str], emit: Emit, should_cancel: Callable[[], bool]) -> None:
    """Load the scene, put the Stylepass node group on the stylised frames, save the .blend."""
    parser = argparse.ArgumentParser(prog="stylepass compose (in Blender)")
    parser.add_argument("scene")
    parser.add_argument("--stylised", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--resolution")
    args = parser.parse_args(argv)
    frames = stylised_frames(Path(args.stylised))
    scene, warnings = scene_loading.load_scene(args.scene)
    for warning in warnings:
        emit("warning", message=warning)
    if args.resolution:
        scene.render.resolution_x, scene.render.resolution_y = parse_resolution(args.resolution)
        scene.render.resolution_percentage = 100
    emit("start", total=1, message=f"composing {len(frames)} stylised frame(s) into {args.out}")
    passes.setup_passes(scene, bpy.context.view_layer)
    scene.stylepass.model = args.name
    first_frame = int(_STYLISED.match(frames[0].name).group(1))
    scene.frame_start, scene.frame_end = first_frame, int(_STYLISED.match(frames[-1].name).group(1))
    compositor_nodes.install_stylise_nodes(scene, args.name, frames[0], sequence=len(frames) > 1,
                                           frame_start=first_frame)
    out = Path(args.out).resolve()
    write_atomic(out, lambda temp: bpy.ops.wm.save_as_mainfile(filepath=str(temp), copy=True, compress=True))
    emit("progress", status="written", label=out.name, done=1, total=1)
    emit("done", message=f"{out} (compositor: Stylepass: {args.name}, {len(frames)} frame(s))")
