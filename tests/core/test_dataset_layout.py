"""The one reader of a dataset's pairs.jsonl and its DatasetError (stylepass.blender_addon.contract.dataset_layout),
shared by `stylepass dataset`, training and evaluation."""

from __future__ import annotations

import json

import pytest

from stylepass.blender_addon.contract.atomic_files import append_jsonl, read_jsonl
from stylepass.blender_addon.contract.dataset_layout import (
    PAIRS_NAME,
    DatasetError,
    finished_pairs,
    read_pairs,
)
from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.headless_protocol import error_exit_code


def row(frame: int, split: str = "train") -> dict:
    return {"input": f"scenes/s/frame_{frame:06d}.exr", "target": f"scenes/s/targets/target_{frame:06d}.png",
            "split": split, "scene": "s", "frame": frame}


def test_rows_in_file_order_with_their_own_keys_skipping_blank_lines_and_a_torn_last_line(tmp_path):
    rows = [row(2), row(1, "val")]
    torn = json.dumps(row(3))[:20]  # a writer killed mid-line
    (tmp_path / PAIRS_NAME).write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n" + torn)
    assert read_pairs(tmp_path) == rows
    assert finished_pairs(tmp_path) == {("s", 2), ("s", 1)}


def test_a_damaged_line_that_is_no_torn_fragment_is_an_error_naming_it(tmp_path):
    damaged = json.dumps(row(2)).replace(",", "", 1)  # a whole line, edited by hand: not a killed writer's
    (tmp_path / PAIRS_NAME).write_text(json.dumps(row(1)) + "\n" + damaged + "\n")
    with pytest.raises(DatasetError, match=f"{PAIRS_NAME}:2: not JSON"):
        read_pairs(tmp_path)


def test_a_run_after_a_killed_writer_appends_a_whole_line_and_both_rows_read(tmp_path):
    """A writer killed mid-line (or a full disk) leaves a fragment at the end; the resumed run's next
    line must not be glued to it, or the pair list would be damaged for good."""
    path = tmp_path / PAIRS_NAME
    path.write_text(json.dumps(row(1)) + "\n" + json.dumps(row(2))[:20])
    append_jsonl(path, row(3))
    append_jsonl(path, row(4))
    assert read_pairs(tmp_path) == [row(1), row(3), row(4)]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 4
    assert [r["frame"] for r in read_jsonl(path)] == [1, 3, 4]


def test_targets_are_required_unless_asked_otherwise(tmp_path):
    unpaired = {key: value for key, value in row(1).items() if key != "target"}
    (tmp_path / PAIRS_NAME).write_text(json.dumps(unpaired) + "\n")
    with pytest.raises(DatasetError, match=f"{PAIRS_NAME}:1: missing key\\(s\\) target"):
        read_pairs(tmp_path)
    assert read_pairs(tmp_path, require_target=False) == [unpaired]


def test_a_missing_pair_list_is_an_error_or_no_rows(tmp_path):
    with pytest.raises(DatasetError, match=f"is not a paired dataset: {PAIRS_NAME} not found"):
        read_pairs(tmp_path)
    assert read_pairs(tmp_path, missing_ok=True) == []
    assert finished_pairs(tmp_path) == set()


def test_a_dataset_error_is_bad_input_for_every_command():
    error = DatasetError("damaged")
    assert error_exit_code(error) == ExitCode.BAD_INPUT
    assert isinstance(error, ValueError) and isinstance(error, RuntimeError)  # as both former classes were
