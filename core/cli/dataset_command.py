"""``stylepass dataset``: make training pairs in headless Blender; ``dataset merge``, ``dataset show``."""

from __future__ import annotations

import argparse
from pathlib import Path

from stylepass.blender_addon.contract.dataset_layout import DatasetError
from stylepass.blender_addon.contract.dataset_options import DatasetOptions, add_dataset_arguments
from stylepass.blender_addon.contract.exit_codes import ExitCode

from ..io.dataset_tools import contact_sheet, merge_datasets, summarise
from .arguments import CommandText, Handler, add_blender_arguments, add_command
from .blender_job import bad_input_exits, given_options, make_console, print_error, run_blender_job
from .export_command import EXIT_CODES_HELP

SHEET_NAME = "contact_sheet.png"


HELP_TEXT = CommandText(
    name="dataset",
    help="render training pairs (G-buffer input + target) from a recipe; also `dataset merge|show`",
    description="""
        Render input/target pairs from a dataset recipe (TOML) in headless Blender: G-buffer exports
        of the fast input render, pixel-aligned targets, and pairs.jsonl with a train/validation
        split by scene. Re-running the same command resumes. Also: `stylepass dataset merge OUT
        SHARD...` and `stylepass dataset show DIR`.""",
    epilog=EXIT_CODES_HELP,
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``dataset`` (``dataset merge`` and ``dataset show`` have parsers of their own)."""
    make = add_command(commands, HELP_TEXT, run_dataset)
    add_dataset_arguments(make)
    add_blender_arguments(make)


def _action_parser(action: str, handler: Handler, description: str) -> argparse.ArgumentParser:
    """Parser of ``stylepass dataset ACTION``, run by ``handler`` (``dataset`` itself takes a recipe,
    so its actions cannot be argparse subcommands of it)."""
    parser = argparse.ArgumentParser(prog=f"stylepass dataset {action}", description=description)
    parser.set_defaults(handler=handler)
    return parser


def merge_parser() -> argparse.ArgumentParser:
    """Parser of ``stylepass dataset merge``."""
    parser = _action_parser(
        "merge", run_merge,
        "Merge the datasets that farm shards wrote into one folder: every pair once (files "
        "hard-linked or copied). Re-running resumes.")
    parser.add_argument("out", help="the merged dataset folder")
    parser.add_argument("shards", nargs="+", help="shard dataset folders")
    return parser


def show_parser() -> argparse.ArgumentParser:
    """Parser of ``stylepass dataset show``."""
    parser = _action_parser(
        "show", run_show,
        "Print a dataset's counts and sizes and write a contact sheet PNG (input, albedo, "
        "normal, depth, material ids, target per pair).")
    parser.add_argument("dataset", help="dataset folder")
    parser.add_argument("--sheet", help=f"where to write the PNG (default: DATASET/{SHEET_NAME})")
    parser.add_argument("--pairs", type=int, default=4, help="pairs on the sheet (default 4)")
    return parser


def subcommand_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]] | None:
    """For ``dataset merge ...`` / ``dataset show ...``: their parser and arguments; else None."""
    if len(argv) >= 2 and argv[0] == "dataset" and argv[1] in ("merge", "show"):
        return (merge_parser() if argv[1] == "merge" else show_parser()), argv[2:]
    return None


def run_dataset(args: argparse.Namespace) -> int:
    """Validate recipe and options here (fast errors), then run the dataset job in Blender."""
    console = make_console()
    try:
        options = DatasetOptions.from_namespace(args)
    except ValueError as exc:
        print_error(console, str(exc))
        return ExitCode.BAD_INPUT
    job_args = [str(options.recipe.path), "--out", str(Path(args.out).resolve()), "--seed", str(args.seed),
                *given_options(args, ("count", "frames", "shard", "resolution", "cycles_device"))]
    return run_blender_job("dataset", job_args, args.blender, args.verbose, console)


@bad_input_exits(DatasetError)
def run_merge(args: argparse.Namespace) -> int:
    report = merge_datasets(Path(args.out), [Path(s) for s in args.shards])
    make_console().print(f"merged {report.merged} pair(s) from {len(report.shards)} shard(s) into {args.out}; "
                         f"{report.already_present} were already there")
    return ExitCode.OK


@bad_input_exits(DatasetError)
def run_show(args: argparse.Namespace) -> int:
    console = make_console()
    dataset = Path(args.dataset)
    for line in summarise(dataset).lines():
        console.print(line, highlight=False)
    sheet = contact_sheet(dataset, Path(args.sheet) if args.sheet else dataset / SHEET_NAME, args.pairs)
    console.print(f"contact sheet: {sheet}")
    return ExitCode.OK
