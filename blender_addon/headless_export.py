"""Headless G-buffer export, run inside Blender by ``stylepass export``.

    PYTHON_WITH_BPY headless_export.py -- SCENE --out DIR [options]
    blender -b --factory-startup --python headless_export.py -- SCENE --out DIR [options]

It registers the add-on from the folder it lives in, loads the scene, applies the
options, sets up the passes (in memory: nothing is saved) and exports the frames this
shard owns, skipping finished ones. Progress goes to stdout as ``headless_protocol``
events; the exit code is a ``headless_protocol.ExitCode``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "stylepass_addon"
EXTENSION_MODULE = "bl_ext.user_default.stylepass"


@contextlib.contextmanager
def addon_registered() -> Iterator[None]:
    """Import the add-on package this file belongs to and register it while in the block.

    It must be unregistered before the process exits: bpy as a module hangs at exit
    when classes of an unmanaged add-on are still registered.
    """
    import bpy  # noqa: F401 - makes Blender's own modules (addon_utils) importable
    import addon_utils

    # An enabled copy of the installed extension would clash with ours: turn it off here
    # (in this process only; preferences are not saved).
    if addon_utils.check(EXTENSION_MODULE)[1]:
        addon_utils.disable(EXTENSION_MODULE)
    folder = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location(
        PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    package.register()
    try:
        yield
    finally:
        package.unregister()


def script_arguments(argv: list[str]) -> list[str]:
    """Arguments after ``--`` (Blender's own come before it)."""
    return argv[argv.index("--") + 1:] if "--" in argv else []


class CancelRequest:
    """Set by SIGINT/SIGTERM; the export stops after the frame in progress.

    Raising from the signal handler does not work: the handler runs inside whatever
    Python Blender is executing (Cycles' render callback, say), which swallows exceptions.
    """

    requested = False

    @classmethod
    def on_signal(cls, _signum: int, _frame: object) -> None:
        cls.requested = True


def run(argv: list[str]) -> int:
    """Parse ``argv`` (script arguments), register the add-on, export; returns the exit code."""
    with addon_registered():
        return _export(argv)


def _export(argv: list[str]) -> int:
    from stylepass_addon import export_options, frame_selection, gbuffer_export, passes, scene_loading
    from stylepass_addon.blender_compat import eevee_engine_id, set_render_samples
    from stylepass_addon.headless_protocol import ExitCode, encode_event

    import bpy

    def emit(kind: str, **fields: object) -> None:
        print(encode_event(kind, **fields), flush=True)

    parser = argparse.ArgumentParser(prog="stylepass export (in Blender)")
    export_options.add_export_arguments(parser)
    try:
        options = export_options.ExportOptions.from_namespace(parser.parse_args(argv))
        scene, warnings = scene_loading.load_scene(options.scene)
        for warning in warnings:
            emit("warning", message=warning)
        if options.engine == "cycles":
            scene.render.engine = "CYCLES"
        elif options.engine == "eevee":
            scene.render.engine = eevee_engine_id()
        if options.resolution:
            scene.render.resolution_x, scene.render.resolution_y = options.resolution
            scene.render.resolution_percentage = 100
        view_layer = bpy.context.view_layer
        passes.require_family(scene)
        if options.samples:
            set_render_samples(scene, options.samples)
        scene.cycles.seed = options.seed
        scene.cycles.use_animated_seed = False
        passes.setup_passes(scene, view_layer)
        scene_range = (scene.frame_start, scene.frame_end)
        requested = options.frames or scene_range
        frame_selection.check_within(requested, scene_range, scene.name)
        frames = frame_selection.select_frames(*requested, step=scene.frame_step, shard=options.shard)
        out_dir = Path(options.out).resolve()
        emit("start", frames=frames, total=len(frames), out=str(out_dir),
             blender=bpy.app.version_string, engine=scene.render.engine)
        summary = gbuffer_export.export_frames(
            scene, view_layer, out_dir, frames,
            on_progress=lambda event, frame, done, total: emit(
                "frame", status=event, frame=frame, done=done, total=total),
            should_cancel=lambda: CancelRequest.requested,
        )
        if summary.cancelled:
            emit("error", code=int(ExitCode.CANCELLED), message="cancelled; re-run the same command to resume")
            return ExitCode.CANCELLED
        emit("done", written=summary.written, skipped=summary.skipped, out=str(out_dir))
        return ExitCode.OK
    except gbuffer_export.OutputNotWritableError as exc:
        emit("error", code=int(ExitCode.OUTPUT_UNWRITABLE), message=str(exc))
        return ExitCode.OUTPUT_UNWRITABLE
    except (ValueError, gbuffer_export.BadSceneError) as exc:
        emit("error", code=int(ExitCode.BAD_INPUT), message=str(exc))
        return ExitCode.BAD_INPUT
    except SystemExit as exc:  # argparse: message already printed to stderr
        emit("error", code=int(ExitCode.BAD_INPUT), message="invalid arguments")
        return ExitCode.BAD_INPUT if exc.code else ExitCode.OK
    except Exception as exc:  # noqa: BLE001 - report anything else as a failure with its trace
        traceback.print_exc()
        emit("error", code=int(ExitCode.FAILED), message=f"{type(exc).__name__}: {exc}")
        return ExitCode.FAILED


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, CancelRequest.on_signal)
    signal.signal(signal.SIGINT, CancelRequest.on_signal)
    sys.exit(run(script_arguments(sys.argv)))
