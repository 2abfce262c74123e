"""Stylise frames of the open scene through the worker and show them in the compositor (bpy).

The job is a generator of small steps, so the same code runs synchronously in background
mode (``run_to_end``) and step by step from a modal operator's timer in the UI, where
Blender stays responsive: rendering a frame blocks for the render, everything else is
polled. Per frame: render and export the G-buffers, ask the worker to stylise them,
wait for the result. At the end the "Stylepass: <model>" node group reads the result
(one image, or the image sequence of an animation).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import bpy

from .. import ADDON_DIR, ADDON_ID
from ..contract.export_format import frame_stem
from ..contract.headless_protocol import BadInputError, JobCancelled
from ..contract.worker_protocol import INT8_MODEL, PRESETS_ENV
from ..scene import compositor_nodes, gbuffer_export, passes
from .training_engine import engine_python
from .worker_client import WorkerClient
from .worker_runtime import WorkerRuntime, bundled_runtime, presets_folder, repository_runtime

STYLISED_DIR = "stylised"
ENGINE_FOLDER = "training_engine"  # in the extension's user folder
_workers: dict[str, WorkerClient] = {}
_last_loaded = ""  # the runtime and device of the last model loaded (remember_loaded)


@dataclass
class Progress:
    """Where a job is: ``done`` of ``total`` steps, what it is doing, and whether it is
    waiting on the worker (then the driver may sleep before the next step)."""

    done: float
    total: int
    message: str
    waiting: bool = False


def chosen_python() -> WorkerRuntime | None:
    """The Python chosen in the add-on preferences, if any."""
    addon = bpy.context.preferences.addons.get(ADDON_ID)
    chosen = getattr(addon.preferences, "worker_python", "") if addon and addon.preferences else ""
    if not chosen:
        return None
    python = Path(bpy.path.abspath(chosen))
    presets = presets_folder(ADDON_DIR)  # the ones the style browser shows
    env = {PRESETS_ENV: str(presets)} if presets is not None else {}
    return WorkerRuntime(python, env, f"the Python chosen in the preferences ({python})")


def worker_runtime() -> WorkerRuntime:
    """Where the stylise worker runs: the preference, else the extension's own runtime in Blender's
    Python, else the repository's .venv (see :mod:`.worker_runtime`)."""
    found = (chosen_python() or bundled_runtime(ADDON_DIR, sys.executable, sys.path)
             or repository_runtime(ADDON_DIR))
    if found is None:
        raise BadInputError("no runtime for the stylise worker: reinstall the Stylepass extension from its zip "
                            "(it brings one), or set a Python in Preferences > Add-ons > Stylepass")
    return found


def engine_folder() -> Path:
    """Where Install training engine puts its Python: the extension's own user folder (kept across
    extension upgrades)."""
    return Path(bpy.utils.extension_path_user(ADDON_ID, path=ENGINE_FOLDER, create=False))


def training_python() -> Path:
    """The Python that trains styles (it needs torch): the preference, else the installed training
    engine, else the repository's .venv."""
    chosen = chosen_python()
    if chosen is not None:
        return chosen.python
    engine = engine_python(engine_folder())
    if engine is not None:
        return engine
    found = repository_runtime(ADDON_DIR)
    if found is None:
        raise BadInputError("training a style needs Stylepass's training engine (torch): install it with "
                            "Install training engine in Preferences > Add-ons > Stylepass, or set a Python "
                            "that has it there")
    return found.python


def runtime_summary() -> str:
    """What runs the models, for the panel: the last loaded model's runtime and device (e.g.
    "onnxruntime 1.32.0 (CPUExecutionProvider) on cpu"), else where the worker would start."""
    if _last_loaded:
        return f"Runs on {_last_loaded}"
    try:
        return f"Runs in {worker_runtime().description}"
    except BadInputError as exc:
        return str(exc)


def remember_loaded(reply: dict) -> None:
    """Keep a load reply's runtime and device for :func:`runtime_summary`."""
    global _last_loaded
    runtime = reply.get("model", {}).get("runtime") or "the worker"
    _last_loaded = f"{runtime} on {reply.get('device', '?')}"


def shared_worker(runtime: WorkerRuntime) -> WorkerClient:
    """A running worker for ``runtime``, started once and reused (it keeps its model loaded)."""
    worker = _workers.get(runtime.key)
    if worker is None or not worker.alive:
        worker = WorkerClient(runtime.python, runtime.env)
        _workers[runtime.key] = worker
    return worker


def stop_workers() -> None:
    """Stop every worker (on unregister, and after a failure)."""
    for worker in _workers.values():
        worker.close()
    _workers.clear()


def model_request(choice: str, precision: str = "fp32") -> dict[str, str]:
    """``load`` fields for the panel's model setting (a model folder, else a preset name) and precision.

    int8 asked for a model folder without an int8 model (a style trained with Train style) runs it in
    float32 (:func:`int8_missing`: the panel says so)."""
    choice = choice.strip()
    if not choice:
        raise BadInputError("no model or preset chosen: pick a preset (e.g. toon) or a model folder in the "
                            "Stylepass panel")
    folder = Path(bpy.path.abspath(choice))
    source = {"model": str(folder)} if folder.is_dir() else {"preset": choice}
    return {**source, "precision": "fp32" if int8_missing(choice, precision) else precision}


def int8_missing(choice: str, precision: str) -> bool:
    """Whether the panel asks for int8 of a model folder that has no int8 model (the presets have one)."""
    folder = Path(bpy.path.abspath(choice.strip())) if choice.strip() else None
    return precision == "int8" and folder is not None and folder.is_dir() and not (folder / INT8_MODEL).is_file()


def stylised_path(out_dir: Path, model_name: str, frame: int) -> Path:
    return out_dir / STYLISED_DIR / model_name / f"stylised_{frame_stem(frame).removeprefix('frame_')}.exr"


def stylise_steps(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, frames: list[int],
                  device: str = "auto") -> Iterator[Progress]:
    """Stylise ``frames`` and install the node group; yields progress between steps.

    Raises BadInputError (fix the scene or settings), WorkerError (the worker failed or
    refused: its ``kind`` says why) or JobCancelled; the compositor tree is only changed
    when every frame succeeded.
    """
    settings = scene.stylepass
    request = model_request(settings.model, settings.precision)
    out_dir = gbuffer_export.output_dir_from_setting(settings.output_dir)
    missing = passes.missing_required(scene, view_layer)
    if missing:
        raise BadInputError(f"the view layer lacks the passes {', '.join(missing)}: click Set up passes")
    gbuffer_export.check_exportable(scene, view_layer)
    gbuffer_export.prepare_output_dir(out_dir)
    total = 2 * len(frames) + 1
    worker = shared_worker(worker_runtime())
    for _ in worker.starting():
        yield Progress(0, total, "starting the worker", waiting=True)
    loaded = yield from _follow(worker.pending(worker.send("load", device=device, **request)), 0, total,
                                "loading the model")
    remember_loaded(loaded)
    model_name = loaded["model"]["name"]
    enabled = gbuffer_export.enabled_pass_names(scene, view_layer)
    if lacking := [name for name in loaded["model"].get("passes", []) if name not in enabled]:
        # before rendering: a scene set up by an earlier version has no glossy colour pass, say
        raise BadInputError(f"the model {model_name} reads the passes {', '.join(lacking)}, which the view layer "
                            "lacks: click Set up passes")
    original_frame = scene.frame_current
    outputs = []
    try:
        for index, frame in enumerate(frames):
            yield Progress(1 + 2 * index, total, f"rendering frame {frame}")
            gbuffer_export.export_frame(scene, view_layer, out_dir, frame)
            output = stylised_path(out_dir, model_name, frame)
            request_id = worker.send("stylise", input=str(gbuffer_export.FrameFiles.in_folder(out_dir, frame).exr),
                                     output=str(output), preview=str(output.with_suffix(".png")))
            yield from _follow(worker.pending(request_id), 2 + 2 * index, total, f"stylising frame {frame}")
            outputs.append(output)
    finally:
        scene.frame_set(original_frame)
    compositor_nodes.install_stylise_nodes(scene, model_name, outputs[0], sequence=len(frames) > 1,
                                           frame_start=frames[0])
    yield Progress(total, total, f"done: {len(frames)} frame(s) stylised with {model_name}")


def _follow(pending: Generator[float, None, dict], done: int, total: int,
            message: str) -> Generator[Progress, None, dict]:
    """Turn a worker request's progress fractions into job progress; returns its reply."""
    fraction = 0.0
    while True:
        try:
            fraction = next(pending)
        except StopIteration as finished:
            return finished.value
        yield Progress(done + fraction, total, message, waiting=True)


def run_to_end(steps: Iterator[Progress], on_progress: Callable[[Progress], None] | None = None,
               should_cancel: Callable[[], bool] | None = None, poll_seconds: float = 0.02) -> Progress:
    """Drive ``steps`` to the end (background mode); returns the last progress."""
    last = Progress(0, 1, "")
    for last in steps:
        if should_cancel is not None and should_cancel():
            steps.close()
            raise JobCancelled
        if on_progress is not None:
            on_progress(last)
        if last.waiting:
            time.sleep(poll_seconds)
    return last
