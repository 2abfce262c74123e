"""``stylepass keyframe``: register paintings over exported frames as training targets."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.export_format import frame_stem
from stylepass.blender_addon.contract.headless_protocol import BadInputError
from stylepass.blender_addon.contract.keyframes import add_keyframe, list_keyframes, remove_keyframe

from ..io.atomic_image import save_png_atomic
from ..io.exr_file import ExrReadError, read_exr
from ..io.gbuffer import GBufferError, read_gbuffer
from ..io.preview_images import linear_to_srgb8
from .blender_job import bad_input_exits, make_console


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keyframe add|list|remove|template``."""
    keyframe = commands.add_parser(
        "keyframe", help="register paintings over exported frames as the targets of a custom style",
        description="Painted keyframes: paint over a rendered frame (start from `keyframe template`), then "
                    "register the painting with `keyframe add`. The export folder becomes a dataset for "
                    "`stylepass train`. Paintings are copied, never changed or overwritten.")
    actions = keyframe.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register a painting as the target of a frame")
    add.add_argument("export", help="export folder holding the frame (from `stylepass export` or the panel)")
    add.add_argument("painting", help="the painted image (.png, .exr, .jpg, .tif), the render's size")
    add.add_argument("--frame", type=int, required=True, help="the frame it was painted over")
    add.add_argument("--replace", action="store_true",
                     help="replace the frame's painting (the old one is kept in keyframes/replaced/)")
    add.set_defaults(handler=run_add)
    listing = actions.add_parser("list", help="list the registered keyframes")
    listing.add_argument("export")
    listing.set_defaults(handler=run_list)
    remove = actions.add_parser("remove", help="unregister a frame's painting (kept in keyframes/replaced/)")
    remove.add_argument("export")
    remove.add_argument("--frame", type=int, required=True)
    remove.set_defaults(handler=run_remove)
    template = actions.add_parser("template", help="write the frame's render as a PNG to paint over")
    template.add_argument("export")
    template.add_argument("--frame", type=int, required=True)
    template.add_argument("--out", help="PNG to write (default: EXPORT/paint_<frame>.png)")
    template.set_defaults(handler=run_template)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file; BadInputError if it cannot be read."""
    try:
        if path.suffix.lower() == ".exr":
            height, width = next(iter(read_exr(path).channels.values())).shape
            return width, height
        with Image.open(path) as image:
            return image.size
    except (OSError, ExrReadError) as exc:
        raise BadInputError(f"cannot read the painting {path}: {exc}") from exc


@bad_input_exits(BadInputError)
def run_add(args: argparse.Namespace) -> int:
    painting = Path(args.painting)
    keyframe = add_keyframe(Path(args.export), args.frame, painting,
                            image_size(painting) if painting.is_file() else (0, 0), args.replace)
    make_console().print(f"frame {keyframe.frame}: painting registered as {keyframe.painting}", markup=False)
    return ExitCode.OK


def run_list(args: argparse.Namespace) -> int:
    console = make_console()
    keyframes = list_keyframes(Path(args.export))
    for keyframe in keyframes:
        console.print(f"frame {keyframe.frame}: {keyframe.painting}", markup=False)
    console.print(f"{len(keyframes)} painted keyframe(s)")
    return ExitCode.OK


@bad_input_exits(BadInputError)
def run_remove(args: argparse.Namespace) -> int:
    kept = remove_keyframe(Path(args.export), args.frame)
    make_console().print(f"frame {args.frame}: unregistered; the painting is kept at {kept}", markup=False)
    return ExitCode.OK


@bad_input_exits(GBufferError)
def run_template(args: argparse.Namespace) -> int:
    export = Path(args.export)
    out = Path(args.out) if args.out else export / f"paint_{args.frame:04d}.png"
    frame = read_gbuffer(export / f"{frame_stem(args.frame)}.exr")
    save_png_atomic(out, linear_to_srgb8(frame.beauty))
    make_console().print(f"paint over {out}, then: stylepass keyframe add {export} {out} --frame {args.frame}",
                         markup=False)
    return ExitCode.OK
