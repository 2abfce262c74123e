"""The ``denoise`` job: Blender's compositor Denoise node on exported frames (bpy; run by
``headless_main``). ``stylepass evaluate`` uses it as the baseline an ``enhance`` model must beat.

    headless_main.py -- denoise JOBS.json

``JOBS.json`` (written by ``stylepass evaluate``: ``stylepass.training.evaluate.held_out.denoise_job_list``)::

    {"settings": {"hdr": true, "prefilter": "ACCURATE", "quality": "HIGH"},
     "jobs": [{"input": "/abs/frame_000001.exr", "output": "/abs/denoise/frame_000001.exr",
               "width": 256, "height": 256, "label": "scene_00003 frame_000001"}, ...]}

For each job, the input export (a multilayer EXR in either layout: 4.5's one part with short
pass names such as ``DiffCol``, or 5.x's one part per pass with long names such as ``Diffuse
Color``; Blender's Image node reads both and names its sockets after the file's passes) goes
through Image -> Denoise -> output in a throwaway scene whose compositor needs no render:

- ``Image``: the Combined pass, scene-linear HDR;
- ``Albedo``: the Diffuse Color pass (the export has no Glossy/Transmission Color passes, so
  this is the diffuse part of Cycles' own denoising albedo);
- ``Normal``: the Normal pass as rendered (world space; OpenImageDenoise takes normals in any
  consistent space, unnormalised).

The Denoise node gets the settings of JOBS.json (``prefilter`` ``NONE``/``FAST``/``ACCURATE``,
``quality`` ``HIGH``/``BALANCED``/``FAST``, ``hdr``); evaluate asks for HDR, prefilter Accurate
(the guides of a few-sample render are noisy too) and quality High. The result is written as a
single-part 32-bit float RGB EXR (scene-linear, no view transform), atomically. A job whose output
exists is skipped (resume): outputs only ever appear complete. Cancelling stops after the image in
progress.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy

from ..blender_compat import single_image_output, temporary_compositor
from ..contract.atomic_files import partials_of
from ..contract.export_format import pass_spec
from ..contract.headless_protocol import BadInputError, JobCancelled
from ..scene.target_styles import save_render_result

Emit = Callable[..., None]
TAG = "Stylepass Denoise"
PREFILTERS = ("NONE", "FAST", "ACCURATE")
QUALITIES = ("HIGH", "BALANCED", "FAST")


def run(argv: list[str], emit: Emit, should_cancel: Callable[[], bool]) -> None:
    """Denoise every job of JOBS.json that has no output yet."""
    parser = argparse.ArgumentParser(prog="stylepass denoise (in Blender)")
    parser.add_argument("jobs", help="JSON file: {'jobs': [{input, output, width, height, label}]}")
    args = parser.parse_args(argv)
    settings, jobs = read_jobs(Path(args.jobs))
    emit("start", total=len(jobs), message=f"denoising {len(jobs)} frame(s) with Blender "
                                           f"{bpy.app.version_string}'s Denoise node")
    done = 0
    with denoising_scene() as scene:
        for job in jobs:
            if should_cancel():
                raise JobCancelled()
            output = Path(job["output"])
            if output.is_file():
                status = "skipped"
            else:
                denoise_file(scene, Path(job["input"]), output, int(job["width"]), int(job["height"]), settings)
                status = "denoised"
            done += 1
            emit("progress", done=done, total=len(jobs), label=str(job.get("label", output.name)), status=status)
    emit("done", message=f"{done} frame(s) denoised or already there")


def read_jobs(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The settings and jobs of JOBS.json; BadInputError for a missing file, bad JSON, a missing
    key, an unknown setting or a missing input."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        settings, jobs = content["settings"], content["jobs"]
        settings = {"hdr": bool(settings["hdr"]), "prefilter": settings["prefilter"], "quality": settings["quality"]}
    except FileNotFoundError:
        raise BadInputError(f"job list not found: {path}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise BadInputError(f"{path}: not a denoise job list ({type(error).__name__}: {error})") from None
    if settings["prefilter"] not in PREFILTERS or settings["quality"] not in QUALITIES:
        raise BadInputError(f"{path}: prefilter must be one of {', '.join(PREFILTERS)} and quality one of "
                            f"{', '.join(QUALITIES)}")
    for job in jobs:
        missing = [key for key in ("input", "output", "width", "height") if key not in job]
        if missing:
            raise BadInputError(f"{path}: a job lacks {', '.join(missing)}")
        if not Path(job["input"]).is_file():
            raise BadInputError(f"input EXR not found: {job['input']}")
    return settings, jobs


@contextmanager
def denoising_scene() -> Iterator[bpy.types.Scene]:
    """A throwaway scene (removed afterwards) that composites images, never renders: its
    compositor has no Render Layers node, so rendering it only runs the compositor."""
    scene = bpy.data.scenes.new(f"{TAG} Scene")
    try:
        scene.render.resolution_percentage = 100
        scene.render.use_compositing = True
        scene.render.use_sequencer = False
        yield scene
    finally:
        bpy.data.scenes.remove(scene)


def denoise_file(scene: bpy.types.Scene, source: Path, output: Path, width: int, height: int,
                 settings: dict[str, Any]) -> None:
    """Denoise one export EXR into ``output`` (single-part float RGB EXR, scene-linear: EXRs are
    saved without the view transform)."""
    for leftover in partials_of(output):  # from a killed run
        leftover.unlink(missing_ok=True)
    image = bpy.data.images.load(str(source), check_existing=False)
    try:
        scene.render.resolution_x, scene.render.resolution_y = width, height
        with temporary_compositor(scene) as (tree, final_image):
            add_denoise_chain(tree, final_image, image, source, settings)
            bpy.ops.render.render(scene=scene.name)
        output.parent.mkdir(parents=True, exist_ok=True)
        with single_image_output(scene, "OPEN_EXR", "32", "RGB", "ZIP"):
            save_render_result(scene, output)
    finally:
        bpy.data.images.remove(image)


def add_denoise_chain(tree: bpy.types.NodeTree, final_image: bpy.types.NodeSocket, image: bpy.types.Image,
                      source: Path, settings: dict[str, Any]) -> None:
    """Image (Combined, albedo, normal sockets) -> Denoise -> ``final_image``."""
    reader = tree.nodes.new("CompositorNodeImage")
    reader.image = image
    denoise = tree.nodes.new("CompositorNodeDenoise")
    set_denoise_settings(denoise, **settings)
    for pass_name, socket in (("beauty", "Image"), ("albedo", "Albedo"), ("normal", "Normal")):
        tree.links.new(pass_socket(reader, pass_name, source), denoise.inputs[socket])
    tree.links.new(denoise.outputs["Image"], final_image)


def pass_socket(reader: bpy.types.Node, pass_name: str, source: Path) -> bpy.types.NodeSocket:
    """The Image node's output for one export pass, under either layout's layer name."""
    layers = pass_spec(pass_name).channel_layers
    for name in layers:
        socket = reader.outputs.get(name)
        if socket is not None and socket.enabled:
            return socket
    raise BadInputError(f"{source} has no {' or '.join(layers)} pass (Blender sees: "
                        f"{', '.join(o.name for o in reader.outputs if o.enabled)}); export the frame "
                        "again after Stylepass > Set up passes")


def set_denoise_settings(node: bpy.types.Node, hdr: bool, prefilter: str, quality: str) -> None:
    """Denoise node options: HDR is a socket in both; the others are properties in 4.5 and
    menu sockets in 5.x.

    ``prefilter`` is ``NONE``/``FAST``/``ACCURATE``, ``quality`` ``HIGH``/``BALANCED``/``FAST``.
    """
    node.inputs["HDR"].default_value = hdr
    if hasattr(node, "prefilter"):  # 4.5
        node.prefilter = prefilter
        node.quality = quality
        return
    node.inputs["Prefilter"].default_value = prefilter.capitalize()
    node.inputs["Quality"].default_value = quality.capitalize()
