"""``stylepass compose`` and ``stylepass compare``: look at stylised frames, in Blender or as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.export_format import frame_stem

from ..io.atomic_image import save_png_atomic
from ..io.exr_file import ExrReadError, read_exr
from ..io.gbuffer import GBufferError, read_gbuffer
from ..io.preview_images import exr_rgb, linear_to_srgb8, tile_grid
from .arguments import add_blender_arguments
from .blender_job import make_console, print_error, run_blender_job


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``compose`` and ``compare``."""
    compose = commands.add_parser(
        "compose", help="save a .blend of a scene whose compositor shows stylised frames",
        description="Load SCENE (.blend, .gltf/.glb or demo), put a 'Stylepass: NAME' node group reading the "
                    "stylised_<frame>.exr files of --stylised between Render Layers and the output, and save "
                    "it as --out (a .blend). Scrubbing the timeline shows each frame's result.")
    compose.add_argument("scene", help="a .blend, .gltf or .glb file, or 'demo'")
    compose.add_argument("--stylised", required=True, help="folder of stylised_<frame>.exr (from `stylepass stylise`)")
    compose.add_argument("--name", required=True, help="name of the style (the node group is 'Stylepass: NAME')")
    compose.add_argument("--out", required=True, help="the .blend to write")
    compose.add_argument("--resolution", help="WxH of the scene (default: the scene's)")
    add_blender_arguments(compose)
    compose.set_defaults(handler=run_compose)

    compare = commands.add_parser(
        "compare", help="write a side-by-side PNG of exported frames and their stylised versions",
        description="One row per frame: the exported render, then each stylised version.")
    compare.add_argument("export", help="export folder (frame_<N>.exr)")
    compare.add_argument("--stylised", nargs="+", required=True, metavar="NAME=DIR",
                         help="stylised_<N>.exr folders (from `stylepass stylise`) or export folders "
                              "(frame_<N>.exr: another render, e.g. Eevee's), each with a column title")
    compare.add_argument("--frames", required=True, help="comma-separated frames, e.g. 1,6,12")
    compare.add_argument("--out", required=True, help="the PNG to write")
    compare.set_defaults(handler=run_compare)


def run_compose(args: argparse.Namespace) -> int:
    job_args = [args.scene if args.scene == "demo" else str(Path(args.scene).resolve()),
                "--stylised", str(Path(args.stylised).resolve()), "--name", args.name,
                "--out", str(Path(args.out).resolve())]
    if args.resolution:
        job_args += ["--resolution", args.resolution]
    return run_blender_job("compose", job_args, args.blender, args.verbose, make_console())


def run_compare(args: argparse.Namespace) -> int:
    console = make_console()
    try:
        columns = [entry.split("=", 1) for entry in args.stylised]
        if any(len(column) != 2 for column in columns):
            raise ValueError("--stylised takes NAME=DIR entries")
        frames = [int(frame) for frame in args.frames.split(",")]
        rows = []
        for frame in frames:
            stem = frame_stem(frame)
            row = [linear_to_srgb8(read_gbuffer(Path(args.export) / f"{stem}.exr").beauty)]
            for _, folder in columns:
                stylised = Path(folder) / f"stylised_{stem.removeprefix('frame_')}.exr"
                exported = Path(folder) / f"{stem}.exr"
                if exported.is_file() and not stylised.is_file():  # an export folder: its render
                    row.append(linear_to_srgb8(read_gbuffer(exported).beauty))
                else:
                    row.append(linear_to_srgb8(exr_rgb(read_exr(stylised))))
            rows.append(row)
    except (ValueError, GBufferError, ExrReadError) as exc:
        print_error(console, str(exc))
        return ExitCode.BAD_INPUT
    sheet = save_png_atomic(Path(args.out), tile_grid(rows, ["render", *(name for name, _ in columns)],
                                                      [f"frame {frame}" for frame in frames]))
    console.print(f"side-by-side: {sheet}", markup=False)
    return ExitCode.OK
