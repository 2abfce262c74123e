"""``stylepass bench``: the performance benchmark (:mod:`stylepass.training.bench.run`), written as JSON.

Only the standard library at import time (``stylepass --help`` must not wait for torch). Exit
codes as for every ``stylepass`` command: 0 done, 2 bad input (unknown device, CUDA asked for but
missing, --out a folder or in a missing folder), 3 --out cannot be written, 130 cancelled.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from stylepass.blender_addon.contract.exit_codes import ExitCode


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand (handler in ``args.handler``)."""
    parser = subparsers.add_parser(
        "bench", help="measure the speed of presets, model families and baselines (JSON)",
        description="Time every shipped preset, each model family and two baselines (our RAD generator "
                    "in the EPE layout, pix2pix unet_256) at 512x512, 1920x1080 and 3840x2160, training "
                    "steps/s, a tiled 7680x4320 frame and the worker end to end (ONNX Runtime and torch side "
                    "by side); write the figures, the ratios and the performance targets (pass/fail) to --out. "
                    "See benchmarks/README.md.",
    )
    parser.add_argument("--device", default="auto", help="cuda, cuda:N or cpu (default: cuda when usable)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few repeats: checks that everything runs (seconds), no targets")
    parser.add_argument("--compile", action="store_true", help="torch.compile the presets and families first")
    parser.add_argument("--cpu-speed-only", action="store_true",
                        help="measure only the CPU speed section: every preset's 1920x1080 frame through the stylise "
                             "loop in torch, ONNX fp32 and int8, in ms and reference units (minutes, not an hour)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.json", help="where to write the report")
    parser.set_defaults(handler=run_bench_command)


def output_problem(out: Path) -> tuple[str, ExitCode] | None:
    """Why `out` cannot be written and the exit code for it (checked before anything is measured),
    or None."""
    if out.is_dir():
        return f"--out {out} is a folder; give a file name, e.g. {out / 'bench.json'}", ExitCode.BAD_INPUT
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return f"--out {out}: the folder {parent} does not exist; create it or choose another", ExitCode.BAD_INPUT
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        return f"--out {out} cannot be written (permission denied); choose another place", ExitCode.OUTPUT_UNWRITABLE
    return None


def run_bench_command(args: argparse.Namespace) -> int:
    """Check the options, run the benchmark, write the report; returns the exit code."""
    problem = output_problem(args.out)
    if problem is not None:
        return _fail(*problem)
    if args.device != "auto" and args.device != "cpu" and not args.device.startswith("cuda"):
        return _fail(f"unknown device {args.device!r}; use cuda, cuda:N or cpu")
    import torch
    from rich.console import Console

    from stylepass.blender_addon.contract.atomic_files import write_json_atomic
    from stylepass.core.inference.predict import resolve_device
    from stylepass.training.bench.run import run_bench
    from stylepass.training.bench.targets import target_lines

    try:
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        device = resolve_device(auto if args.device == "auto" else args.device)
    except RuntimeError as error:
        return _fail(str(error))
    console = Console(stderr=True, highlight=False)
    console.print(f"bench on {device}{' (quick)' if args.quick else ''}; report -> {args.out}", markup=False)
    try:
        report = run_bench(device, args.quick, args.compile, lambda line: console.print(line, markup=False),
                           cpu_speed_only=args.cpu_speed_only)
    except KeyboardInterrupt:
        print("cancelled: nothing written", file=sys.stderr)
        return ExitCode.CANCELLED
    try:
        write_json_atomic(args.out, report)
    except OSError as error:
        return _fail(f"cannot write {args.out}: {error}", ExitCode.OUTPUT_UNWRITABLE)
    for line in target_lines(report):
        console.print(line, markup=False)
    for row in report["runtimes"]:
        console.print(f"{row['model']} {row['size']}: ONNX Runtime {row['onnx_total_ms']:.0f} ms, torch "
                      f"{row['torch_total_ms']:.0f} ms end to end ({row['total_speedup']:.2f}x); model alone "
                      f"{row['onnx_model_ms']:.0f} against {row['torch_model_ms']:.0f} ms", markup=False)
    for line in cpu_speed_lines(report.get("cpu_speed", {})):
        console.print(line, markup=False)
    console.print(f"report written to {args.out}", markup=False)
    return ExitCode.OK


def cpu_speed_lines(section: dict[str, Any]) -> list[str]:
    """One line per preset of the report's ``cpu_speed`` section (none when it was not measured)."""
    unit = section.get("reference_unit", {}).get("ms")
    lines = [f"reference unit (3x3 64->64 conv, 960x540, torch): {unit:.0f} ms"] if unit else []
    for row in section.get("presets", []):
        paths = ", ".join(f"{path} {row[f'{path}_ms']:.0f} ms = {row[f'{path}_units']:.1f} units"
                          for path in ("torch", "onnx_fp32", "onnx_int8") if f"{path}_ms" in row)
        int8 = row.get("int8")
        verdict = "" if int8 is None else (" int8 kept" if int8["kept"] else f" int8 not kept: {int8['why_not']}")
        target = ("" if "best_units" not in row else
                  f"; best {row['best_path']} {row['best_units']:.1f} units "
                  f"({'meets' if row['meets_target'] else 'misses'} {section['units_target']:g})")
        lines.append(f"{row['model']} {row['size']}: {paths}{target}{verdict}")
    return lines


def _fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
