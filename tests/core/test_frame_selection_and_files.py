"""Blender-free helpers of the exporter: frame ranges, farm shards, export options and
atomic files (stylepass.blender_addon.contract.frame_selection / export_options / atomic_files)."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter

import pytest

from stylepass.blender_addon.contract import atomic_files
from stylepass.blender_addon.contract.atomic_files import (
    PARTIAL_SUFFIX,
    append_jsonl,
    partials_of,
    read_jsonl,
    temp_path_for,
    write_atomic,
    write_folder_atomic,
    write_json_atomic,
)
from stylepass.blender_addon.contract.export_options import (
    ExportOptions,
    add_export_arguments,
    parse_resolution,
)
from stylepass.blender_addon.contract.frame_selection import (
    Shard,
    check_within,
    parse_frame_range,
    parse_shard,
    select_frames,
)

# ---------------------------------------------------------------------------------------
# frame ranges and shards

RANGES = [(1, 1), (1, 2), (1, 120), (0, 249), (-5, 7), (10, 17), (3, 1000)]


@pytest.mark.parametrize("start,end", RANGES)
@pytest.mark.parametrize("step", [1, 2, 7])
def test_shards_cover_every_frame_exactly_once(start, end, step):
    everything = select_frames(start, end, step)
    assert everything == list(range(start, end + 1, step))
    for count in range(1, 41):
        owned = [select_frames(start, end, step, Shard(index, count)) for index in range(1, count + 1)]
        tally = Counter(frame for frames in owned for frame in frames)
        assert sorted(tally) == everything, f"N={count}"
        assert set(tally.values()) == {1}, f"N={count}: a frame rendered twice"
        sizes = [len(frames) for frames in owned]
        assert max(sizes) - min(sizes) <= 1, f"N={count}: uneven shares {sizes}"
        assert all(frames == sorted(frames) for frames in owned)


def test_shard_takes_every_nth_frame_from_the_ith():
    assert select_frames(1, 10, shard=Shard(2, 3)) == [2, 5, 8]
    assert select_frames(1, 10, shard=Shard(1, 1)) == list(range(1, 11))
    assert select_frames(1, 2, shard=Shard(5, 5)) == []  # more tasks than frames: some idle


def test_select_frames_refuses_a_bad_step():
    with pytest.raises(ValueError, match="step"):
        select_frames(1, 10, 0)


@pytest.mark.parametrize("text,expected", [("1-120", (1, 120)), (" 5 - 9 ", (5, 9)), ("42", (42, 42)),
                                           ("0-0", (0, 0)), ("-3-2", (-3, 2))])
def test_parse_frame_range(text, expected):
    assert parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["", "a-b", "1-", "-", "1..5", "1-2-3", "1,5", "10-3", "1.5-3"])
def test_parse_frame_range_errors(text):
    with pytest.raises(ValueError, match="--frames") as info:
        parse_frame_range(text)
    assert repr(text) in str(info.value)


def test_parse_frame_range_reversed_says_why():
    with pytest.raises(ValueError, match="end frame 3 is before the start 10"):
        parse_frame_range("10-3")


@pytest.mark.parametrize("text,expected", [("1/1", Shard(1, 1)), ("3/8", Shard(3, 8)), (" 8 / 8 ", Shard(8, 8))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["", "3", "0/3", "4/3", "1/0", "0/0", "-1/3", "1-3", "a/b", "1/3/5", "1.0/3"])
def test_parse_shard_errors(text):
    with pytest.raises(ValueError, match="--shard") as info:
        parse_shard(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text,expected", [("1920x1080", (1920, 1080)), ("64X48", (64, 48)), (" 8 x 6 ", (8, 6)),
                                           ("8192x8192", (8192, 8192)), ("16384x1024", (16384, 1024))])
def test_parse_resolution(text, expected):
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("text", ["", "0x10", "10x0", "10x", "x10", "axb", "10*10", "-5x5", "10x10x10", "1.5x2",
                                  "100000x100000", "16385x64", "8193x8192"])
def test_parse_resolution_errors(text):
    with pytest.raises(ValueError, match="--resolution") as info:
        parse_resolution(text)
    assert repr(text) in str(info.value)


def test_check_within():
    check_within((1, 250), (1, 250), "Shot")
    check_within((10, 20), (1, 250), "Shot")
    for requested in [(0, 10), (240, 251), (0, 300), (300, 310)]:
        with pytest.raises(ValueError, match="outside scene 'Shot'") as info:
            check_within(requested, (1, 250), "Shot")
        assert f"{requested[0]}-{requested[1]}" in str(info.value) and "1-250" in str(info.value)


def _options(*argv: str) -> ExportOptions:
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    return ExportOptions.from_namespace(parser.parse_args(list(argv)))


def test_export_options_validate_before_blender_starts():
    options = _options("demo", "--out", "o", "--frames", "1-10", "--shard", "2/4",
                       "--resolution", "96x64", "--samples", "8")
    assert options.frames == (1, 10) and options.shard == Shard(2, 4)
    assert options.resolution == (96, 64) and options.samples == 8 and options.seed == 0
    plain = _options("scene.blend", "--out", "o")
    assert plain.frames is None and plain.shard is None and plain.resolution is None
    for bad, option in [(("--frames", "9-1"), "--frames"), (("--shard", "5/4"), "--shard"),
                        (("--resolution", "0x1"), "--resolution"), (("--samples", "0"), "--samples")]:
        with pytest.raises(ValueError, match=option):
            _options("demo", "--out", "o", *bad)


# ---------------------------------------------------------------------------------------
# atomic files


def test_write_json_atomic_writes_and_leaves_no_temp_file(tmp_path):
    final = tmp_path / "frame_000001.json"
    write_json_atomic(final, {"b": 1, "a": [1, 2]})
    assert json.loads(final.read_text()) == {"a": [1, 2], "b": 1}
    assert final.read_text().endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_000001.json"]
    assert partials_of(final) == []


def test_write_json_atomic_replaces_the_old_file_whole(tmp_path, monkeypatch):
    final = tmp_path / "frame_000001.json"
    write_json_atomic(final, {"version": 1})
    inode = final.stat().st_ino
    seen = []

    def replace(src, dst):
        # at the moment of the rename the new content is complete and the old file intact
        seen.append((json.loads(open(src).read()), json.loads(open(dst).read())))
        real_replace(src, dst)

    real_replace = os.replace
    monkeypatch.setattr(atomic_files.os, "replace", replace)
    write_json_atomic(final, {"version": 2, "padding": "x" * 10000})
    assert seen == [({"version": 2, "padding": "x" * 10000}, {"version": 1})]
    assert json.loads(final.read_text())["version"] == 2
    assert final.stat().st_ino != inode  # a new file renamed into place, not rewritten in place
    assert partials_of(final) == []


def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    final = tmp_path / "frame_000001.json"
    write_json_atomic(final, {"version": 1})

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(atomic_files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_json_atomic(final, {"version": 2})
    assert json.loads(final.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_000001.json"]


def test_partials_of_finds_leftovers_of_killed_writers(tmp_path):
    final = tmp_path / "frame_000007.exr"
    ours = temp_path_for(final)
    assert ours.parent == tmp_path and ours.name.startswith(".frame_000007.")
    assert ours.name.endswith(".exr" + PARTIAL_SUFFIX)  # Blender picks the format by extension
    other_host = tmp_path / f".frame_000007.farm-12-4242.exr{PARTIAL_SUFFIX}"
    unrelated = [tmp_path / f".frame_000008.farm-1-1.exr{PARTIAL_SUFFIX}",  # another frame
                 tmp_path / f".frame_000007.farm-1-1.json{PARTIAL_SUFFIX}",  # another file
                 tmp_path / "frame_000007.exr"]  # the finished file itself
    for path in [ours, other_host, *unrelated]:
        path.write_bytes(b"x")
    assert partials_of(final) == sorted([ours, other_host])
    assert partials_of(tmp_path / "frame_000009.exr") == []


def test_write_atomic_hands_the_writer_a_temp_path_and_returns_its_result(tmp_path):
    final = tmp_path / "sub" / "model.onnx"  # the folder is made
    seen = []

    def write(temp):
        seen.append(temp)
        assert temp.parent == final.parent and temp.name.endswith(".onnx" + PARTIAL_SUFFIX)
        temp.write_bytes(b"graph")
        return 0.5

    assert write_atomic(final, write) == 0.5
    assert final.read_bytes() == b"graph" and not seen[0].exists()
    with pytest.raises(ValueError, match="mismatch"):
        write_atomic(final, lambda temp: (temp.write_bytes(b"bad"), int("mismatch")))
    assert final.read_bytes() == b"graph" and partials_of(final) == []


def test_write_folder_atomic_builds_beside_then_replaces_the_old_folder_whole(tmp_path):
    final = tmp_path / "step-00000002"

    def build(version):
        def fill(folder):
            assert folder.parent == tmp_path and folder.name.startswith(".") and not any(folder.iterdir())
            (folder / "state.json").write_text(version)
            (folder / "nested").mkdir()
            (folder / "nested" / "weights").write_text(version)
            return folder.name
        return fill

    write_folder_atomic(final, build("1"))
    assert write_folder_atomic(final, build("2")).endswith(PARTIAL_SUFFIX)
    assert (final / "state.json").read_text() == (final / "nested" / "weights").read_text() == "2"

    def broken(folder):
        (folder / "state.json").write_text("3")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_folder_atomic(final, broken)
    assert (final / "state.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002"]  # no temporary or old folder


def test_append_jsonl_and_read_jsonl_round_trip(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    assert read_jsonl(manifest) == []
    rows = [{"frame": i, "exr": f"frame_{i:06d}.exr", "note": "ünïcode"} for i in (3, 1, 2)]
    for row in rows:
        append_jsonl(manifest, row)
    assert read_jsonl(manifest) == rows
    assert manifest.read_text().count("\n") == 3


def test_read_jsonl_skips_a_torn_last_line_and_blank_lines(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    append_jsonl(manifest, {"frame": 1})
    with open(manifest, "a") as handle:
        handle.write("\n")
    append_jsonl(manifest, {"frame": 2})
    with open(manifest, "a") as handle:
        handle.write('{"frame": 3, "ex')  # killed mid-write
    assert read_jsonl(manifest) == [{"frame": 1}, {"frame": 2}]
