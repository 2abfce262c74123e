"""The ``dataset`` job: render input/target pairs for training (bpy; run by ``headless_main``).

For each scene (procedural) or frame (a .blend) this shard owns: export the input render's
G-buffers with the recipe's input settings, render (or copy, for folder targets) the
pixel-aligned target, then record the pair in pairs.jsonl. Each step is skipped when its
file is already finished, so re-running the same command resumes a killed job.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import bpy

from ..contract import dataset_layout, frame_selection
from ..contract.atomic_files import append_jsonl, copy_file_atomic, write_json_atomic
from ..contract.dataset_options import DatasetOptions, add_dataset_arguments
from ..contract.dataset_recipe import Recipe, frame_split, validation_split
from ..contract.headless_protocol import BadInputError, JobCancelled
from ..scene import cycles_device, gbuffer_export, passes, procedural_scene, target_styles

Emit = Callable[..., None]
IMAGE_SUFFIXES = (".png", ".exr", ".jpg", ".jpeg", ".tif", ".tiff")
_TRAILING_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def scene_seed(dataset_seed: int, index: int) -> int:
    """Seed of procedural scene ``index``: distinct per scene and per dataset seed."""
    return dataset_seed * 1_000_003 + index


def run(argv: list[str], emit: Emit, should_cancel: Callable[[], bool]) -> None:
    """Make the pairs this shard owns."""
    parser = argparse.ArgumentParser(prog="stylepass dataset (in Blender)")
    add_dataset_arguments(parser)
    options = DatasetOptions.from_namespace(parser.parse_args(argv))
    cycles_device.use_cycles_device(options.cycles_device)
    out = Path(options.out).resolve()
    gbuffer_export.prepare_output_dir(out)
    if options.recipe.source == "procedural":
        _procedural_pairs(options.recipe, out, options.seed, options.shard, emit, should_cancel)
    else:
        _blend_pairs(options.recipe, out, options.frames, options.shard, emit, should_cancel)


def _identity(recipe: Recipe, seed: int, frames: tuple[int, int] | None) -> dict[str, object]:
    return {"recipe": recipe.as_dict(), "seed": seed, "frames": list(frames) if frames else None}


def _procedural_pairs(recipe: Recipe, out: Path, seed: int, shard: frame_selection.Shard | None,
                      emit: Emit, should_cancel: Callable[[], bool]) -> None:
    dataset_layout.claim_identity(out, _identity(recipe, seed, None))
    indices = frame_selection.select_frames(0, recipe.count - 1, shard=shard)
    done = dataset_layout.finished_pairs(out)
    settings = procedural_scene.ProceduralSettings(
        assets=recipe.assets, min_objects=recipe.min_objects, max_objects=recipe.max_objects,
        asset_probability=recipe.asset_probability, walls=recipe.walls, resolution=recipe.resolution)
    emit("start", total=len(indices), message=f"making {len(indices)} pair(s) ({recipe.target_kind}) in {out} "
                                                f"with Blender {bpy.app.version_string}")
    written = skipped = 0
    for position, index in enumerate(indices, start=1):
        if should_cancel():
            raise JobCancelled
        scene_id = dataset_layout.procedural_scene_id(index)
        pair = dataset_layout.PairPaths(scene_id, 1, recipe.target_suffix)
        if (scene_id, 1) in done:
            skipped += 1
            status = "skipped"
        else:
            scene = procedural_scene.build_procedural_scene(scene_seed(seed, index), settings)
            seconds = _make_pair(scene, recipe, out, pair)
            write_json_atomic(out / pair.scene_dir / "scene.json",
                              {"seed": scene_seed(seed, index), **procedural_scene.describe_scene(scene)})
            append_jsonl(out / dataset_layout.PAIRS_NAME,
                         pair.row(validation_split(index, recipe.validation_fraction), seconds))
            written += 1
            status = "written"
        emit("progress", status=status, label=scene_id, done=position, total=len(indices))
    emit("done", message=f"{written} pair(s) written, {skipped} already finished, in {out}")


def _blend_pairs(recipe: Recipe, out: Path, frames: tuple[int, int] | None, shard: frame_selection.Shard | None,
                 emit: Emit, should_cancel: Callable[[], bool]) -> None:
    from ..scene.scene_loading import load_scene

    scene, warnings = load_scene(recipe.blend)
    for warning in warnings:
        emit("warning", message=warning)
    scene_range = (scene.frame_start, scene.frame_end)
    requested = frames or scene_range
    frame_selection.check_within(requested, scene_range, scene.name)
    dataset_layout.claim_identity(out, _identity(recipe, 0, requested))
    frames = frame_selection.select_frames(*requested, step=scene.frame_step, shard=shard)
    scene_id = Path(recipe.blend).stem
    done = dataset_layout.finished_pairs(out)
    emit("start", total=len(frames), message=f"making {len(frames)} pair(s) ({recipe.target_kind}) of "
                                               f"{Path(recipe.blend).name} in {out}")
    written = 0
    for position, frame in enumerate(frames, start=1):
        if should_cancel():
            raise JobCancelled
        status = "skipped"
        if (scene_id, frame) not in done:
            source = _folder_target(recipe, frame) if recipe.target_kind == "folder" else None
            pair = dataset_layout.PairPaths(scene_id, frame, source.suffix.lower() if source else recipe.target_suffix)
            seconds = _make_pair(scene, recipe, out, pair, folder_image=source)
            append_jsonl(out / dataset_layout.PAIRS_NAME,
                         pair.row(frame_split(frame, requested[0], recipe.validation_fraction), seconds))
            written += 1
            status = "written"
        emit("progress", status=status, label=f"frame {frame}", done=position, total=len(frames))
    emit("done", message=f"{written} pair(s) written, {len(frames) - written} already finished, in {out}")


def _make_pair(scene: bpy.types.Scene, recipe: Recipe, out: Path, pair: dataset_layout.PairPaths,
               folder_image: Path | None = None) -> dict[str, float | None] | None:
    """Export the input G-buffers and write the target of ``pair`` (each skipped if finished); with a
    [peer] render, also render the peer and time the input, peer and target renders.

    Returns the render seconds (``input``, ``peer``, ``target``; ``target`` None when a killed run
    had already written it) with a peer, else None. The input is timed right after the export's
    render of the same settings, the peer after an untimed render of its own
    (:func:`target_styles.timed_render`), so neither pays for compiling Eevee's shaders.
    """
    scene.render.resolution_x, scene.render.resolution_y = recipe.resolution
    scene.render.resolution_percentage = 100
    view_layer = bpy.context.view_layer
    scene_dir = out / pair.scene_dir
    with target_styles.input_render_settings(scene, engine=recipe.input_engine, samples=recipe.input_samples,
                                             indirect=recipe.input_indirect):
        passes.setup_passes(scene, view_layer)
        gbuffer_export.export_frames(scene, view_layer, scene_dir, [pair.frame])
    seconds: dict[str, float | None] | None = None
    if recipe.peer is not None:
        scene.frame_set(pair.frame)
        peer = recipe.peer
        seconds = {"input": target_styles.timed_render(scene, view_layer, engine=recipe.input_engine,
                                                       samples=recipe.input_samples, indirect=recipe.input_indirect,
                                                       warm_up=False),
                   "peer": target_styles.timed_render(scene, view_layer, engine=peer.engine, samples=peer.samples,
                                                      indirect=peer.indirect, out_path=out / pair.peer),
                   "target": None}
    target = out / pair.target
    if target.exists():
        return seconds
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if folder_image is not None:
        _copy_checked(folder_image, target, recipe.resolution)
    else:
        scene.frame_set(pair.frame)
        target_styles.render_target(scene, view_layer, recipe.target_kind, target, recipe.target_params)
    if seconds is not None:
        seconds["target"] = time.perf_counter() - start
    return seconds


def _folder_target(recipe: Recipe, frame: int) -> Path:
    """The image of the recipe's target folder whose name ends in ``frame`` (e.g. paint_0012.png)."""
    folder = Path(recipe.target_params["path"])
    matches = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
               and (m := _TRAILING_NUMBER.search(p.stem)) and int(m.group(1)) == frame]
    if not matches:
        raise BadInputError(f"no target image for frame {frame} in {folder}: name it with the frame number "
                            f"at the end, e.g. paint_{frame:04d}.png")
    if len(matches) > 1:
        raise BadInputError(f"several target images for frame {frame} in {folder}: "
                            f"{', '.join(p.name for p in matches)}; keep one")
    return matches[0]


def _copy_checked(source: Path, target: Path, resolution: tuple[int, int]) -> None:
    """Copy a target image after checking its size; the original is never changed."""
    try:
        image = bpy.data.images.load(str(source), check_existing=False)
    except RuntimeError as exc:
        raise BadInputError(f"cannot read target image {source}: {exc}") from exc
    try:
        size = tuple(image.size)
    finally:
        bpy.data.images.remove(image)
    if size == (0, 0):
        raise BadInputError(f"cannot read target image {source}: not an image Blender can load")
    if size != tuple(resolution):
        raise BadInputError(f"target image {source} is {size[0]}x{size[1]} but the frames are "
                            f"{resolution[0]}x{resolution[1]}: resize it or change the recipe's resolution")
    copy_file_atomic(source, target)
