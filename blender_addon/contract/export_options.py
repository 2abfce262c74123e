"""Options of a headless export, shared by the `stylepass export` CLI and the exporter
running inside Blender (Blender-free), so bad arguments fail before Blender starts."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from .frame_selection import Shard, parse_frame_range, parse_shard

ENGINES = ("cycles", "eevee")
CYCLES_DEVICES = ("CPU", "CUDA", "OPTIX", "HIP", "ONEAPI", "METAL")


def add_cycles_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--cycles-device``, shared by export and dataset."""
    parser.add_argument("--cycles-device", choices=CYCLES_DEVICES, default="CPU",
                        help="where Cycles renders: CPU (default) or a GPU backend; refused when this "
                             "machine has no such device")
_RESOLUTION = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


MAX_SIDE = 16384  # pixels a side
MAX_PIXELS = 8192 * 8192  # a G-buffer export of more is tens of GB (about 80 bytes a pixel, in memory twice)


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` (e.g. ``1920x1080``) into positive integers, at most MAX_SIDE a side and
    MAX_PIXELS in all."""
    match = _RESOLUTION.match(text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ValueError(f"--resolution {text!r}: expected WxH with positive sizes, e.g. 960x540")
    width, height = int(match.group(1)), int(match.group(2))
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise ValueError(f"--resolution {text!r} is too large: at most {MAX_SIDE} pixels a side and "
                         f"{MAX_PIXELS // 1_000_000} megapixels in all (8192x8192); its G-buffer export would not "
                         "fit in memory")
    return width, height


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options both sides understand."""
    parser.add_argument("scene", help="a .blend, .gltf or .glb file, or 'demo' for the built-in scene")
    parser.add_argument("--out", required=True, help="export folder (created if missing)")
    parser.add_argument("--engine", choices=ENGINES,
                        help="render engine (default: the .blend's own; Cycles for glTF and demo)")
    parser.add_argument("--frames", help="inclusive frame range A-B (default: the scene's range)")
    parser.add_argument("--samples", type=int, help="render samples per pixel")
    parser.add_argument("--resolution", help="output size WxH (default: the scene's)")
    parser.add_argument("--shard", help="I/N: this task renders every N-th frame starting at the I-th")
    parser.add_argument("--seed", type=int, default=0, help="Cycles sampling seed (default 0)")
    add_cycles_device_argument(parser)


@dataclass(frozen=True)
class ExportOptions:
    """Validated export options."""

    scene: str
    out: str
    engine: str | None
    frames: tuple[int, int] | None
    samples: int | None
    resolution: tuple[int, int] | None
    shard: Shard | None
    seed: int
    cycles_device: str = "CPU"

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> ExportOptions:
        """Validate parsed arguments; raises ValueError naming the bad option."""
        if ns.samples is not None and ns.samples < 1:
            raise ValueError(f"--samples {ns.samples}: must be at least 1")
        return cls(
            scene=ns.scene,
            out=ns.out,
            engine=ns.engine,
            frames=parse_frame_range(ns.frames) if ns.frames else None,
            samples=ns.samples,
            resolution=parse_resolution(ns.resolution) if ns.resolution else None,
            shard=parse_shard(ns.shard) if ns.shard else None,
            seed=ns.seed,
            cycles_device=ns.cycles_device,
        )
