"""`stylepass dataset` on Blender 4.5 and 5.2: recipes, alignment, determinism, shards, resume, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylepass.core.io.gbuffer import read_gbuffer
from stylepass.core.io.preview_images import load_target_rgb8
from stylepass.training.data.image_io import read_linear_exr

from .conftest import ASSETS, STYLEPASS, run_in_blender
from .dataset_checks import edge_alignment, pair_rows, write_recipe

ENHANCE = """
[dataset]
validation_fraction = 0.34
resolution = [64, 64]
[scenes]
source = "procedural"
count = 3
min_objects = 2
max_objects = 3
[input]
engine = "cycles"
samples = 2
[target]
kind = "enhance"
samples = 16
"""


def stylepass(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(STYLEPASS), *args], capture_output=True, text=True, timeout=timeout)


def make_dataset(recipe: Path, out: Path, blender: str, *options: str) -> subprocess.CompletedProcess:
    done = stylepass("dataset", str(recipe), "--out", str(out), "--blender", blender, *options)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


@pytest.fixture(scope="session")
def enhance_dataset(blender, tmp_path_factory) -> Path:
    """A 3-scene enhance dataset made in one run (the reference for determinism and shards)."""
    folder = tmp_path_factory.mktemp(f"enhance-{blender}")
    recipe = write_recipe(folder, "enhance", ENHANCE)
    make_dataset(recipe, folder / "dataset", blender)
    return folder / "dataset"


def test_enhance_pairs_are_listed_split_by_scene_and_readable(enhance_dataset):
    rows = pair_rows(enhance_dataset)
    assert [(r["scene"], r["frame"], r["split"]) for r in rows] == [
        ("scene_00000", 1, "train"), ("scene_00001", 1, "train"), ("scene_00002", 1, "val")]
    for row in rows:
        frame = read_gbuffer(enhance_dataset / row["input"])
        assert frame.size == (64, 64) and frame.meta["samples"] == 2
        target = load_target_rgb8(enhance_dataset / row["target"])
        assert target.shape == (64, 64, 3) and row["target"].endswith(".exr")
        assert (enhance_dataset / row["input"]).parent.joinpath("scene.json").is_file()


def test_enhance_targets_line_up_with_the_input_gbuffers(enhance_dataset):
    for row in pair_rows(enhance_dataset):
        frame = read_gbuffer(enhance_dataset / row["input"])
        aligned = edge_alignment(frame, enhance_dataset / row["target"])
        shifted = edge_alignment(frame, enhance_dataset / row["target"], shift=3)
        assert aligned > 1.5 and aligned > 1.2 * shifted, (aligned, shifted)


def test_the_training_loader_reads_the_dataset(enhance_dataset):
    from stylepass.training.data.paired_dataset import PairedDataset

    train = PairedDataset(enhance_dataset, "train", passes=("albedo", "normal", "depth"))
    item = train[0]
    assert len(train) == 2 and item["image"].shape == (3, 64, 64) and item["target"].shape == (3, 64, 64)


def test_same_seed_gives_identical_gbuffers_and_shards_merge_into_the_same_dataset(enhance_dataset, blender,
                                                                                  tmp_path):
    recipe = write_recipe(tmp_path, "enhance", ENHANCE)
    for shard in ("1/2", "2/2"):
        make_dataset(recipe, tmp_path / f"shard{shard[0]}", blender, "--shard", shard)
    assert [r["scene"] for r in pair_rows(tmp_path / "shard1")] == ["scene_00000", "scene_00002"]
    merged = stylepass("dataset", "merge", str(tmp_path / "merged"), str(tmp_path / "shard1"),
                       str(tmp_path / "shard2"))
    assert merged.returncode == 0 and "merged 3 pair(s) from 2 shard(s)" in merged.stderr, merged.stderr
    again = stylepass("dataset", "merge", str(tmp_path / "merged"), str(tmp_path / "shard1"))
    assert again.returncode == 0 and "merged 0 pair(s)" in again.stderr
    rows = sorted(pair_rows(tmp_path / "merged"), key=lambda r: r["scene"])
    assert rows == pair_rows(enhance_dataset), "merged shards must list exactly the pairs of one run"
    for row in rows:
        one = read_gbuffer(enhance_dataset / row["input"])
        merged_frame = read_gbuffer(tmp_path / "merged" / row["input"])
        # Geometry and ids are identical; float passes to rounding (Cycles adds up a pixel's
        # samples from several threads, so the last bit can differ between runs).
        for name in ("valid", "material_id"):
            assert np.array_equal(getattr(one, name), getattr(merged_frame, name)), name
        for name, tolerance in (("depth", 1e-6), ("normal", 1e-6), ("albedo", 1e-3), ("beauty", 2e-3)):
            np.testing.assert_allclose(getattr(one, name), getattr(merged_frame, name), rtol=tolerance,
                                       atol=tolerance, err_msg=name)
        np.testing.assert_allclose(load_target_rgb8(enhance_dataset / row["target"]).astype(float),
                                   load_target_rgb8(tmp_path / "merged" / row["target"]).astype(float), atol=2)


def test_show_prints_counts_and_writes_a_contact_sheet(enhance_dataset, tmp_path):
    sheet = tmp_path / "sheet.png"
    shown = stylepass("dataset", "show", str(enhance_dataset), "--sheet", str(sheet), "--pairs", "3")
    assert shown.returncode == 0, shown.stderr
    assert "pairs: 3 (2 train, 1 validation) from 3 scene(s)" in shown.stderr
    assert "target: enhance, input engine: cycles, resolution: 64x64" in shown.stderr
    with Image.open(sheet) as image:
        assert image.size == (7 * 68 + 4, 18 + 3 * 68 + 4)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels[30:80, 4:68].std() > 5, "the first tile shows a render, not a blank"
    assert pixels[30:80, 2 * 68 + 4:3 * 68].max() > 0, "the glossy colour column shows the pass"


def test_a_killed_dataset_job_resumes_with_every_pair_once(blender, tmp_path):
    recipe = write_recipe(tmp_path, "enhance", ENHANCE.replace("count = 3", "count = 4"))
    out = tmp_path / "dataset"
    job = subprocess.Popen([str(STYLEPASS), "dataset", str(recipe), "--out", str(out), "--blender", blender],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None:
        if (out / "pairs.jsonl").exists() and pair_rows(out):
            break
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    before = len(pair_rows(out))
    assert 1 <= before < 4, "the kill came too late to test resuming"
    resumed = make_dataset(recipe, out, blender)
    assert f"{before} already finished" in resumed.stderr
    assert sorted(r["scene"] for r in pair_rows(out)) == [f"scene_{i:05d}" for i in range(4)]
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]


STYLED = """
[dataset]
validation_fraction = 0.0
resolution = [48, 48]
[scenes]
source = "procedural"
count = 1
assets = ["{asset}"]
asset_probability = 1.0
min_objects = 1
max_objects = 1
walls = false
[input]
engine = "cycles"
samples = 2
[target]
kind = "{kind}"
"""


@pytest.mark.parametrize("kind", ["toon", "painterly", "sketch"])
def test_style_targets_of_a_real_asset_line_up_with_its_gbuffers(blender, tmp_path, kind):
    asset = ASSETS / "WaterBottle" / "WaterBottle.gltf"
    recipe = write_recipe(tmp_path, kind, STYLED.format(asset=asset, kind=kind))
    make_dataset(recipe, tmp_path / "dataset", blender)
    (row,) = pair_rows(tmp_path / "dataset")
    assert row["target"].endswith(".png") and row["split"] == "train"
    frame = read_gbuffer(tmp_path / "dataset" / row["input"])
    assert frame.valid.mean() > 0.05, "the asset is in view"
    aligned = edge_alignment(frame, tmp_path / "dataset" / row["target"])
    shifted = edge_alignment(frame, tmp_path / "dataset" / row["target"], shift=3)
    assert aligned > 1.3 and aligned > 1.1 * shifted, (aligned, shifted)


@pytest.fixture(scope="session")
def animated_blend(blender, tmp_path_factory) -> Path:
    """A 3-frame .blend (a moving cube, a camera, a light) made by this Blender."""
    path = tmp_path_factory.mktemp(f"blend-{blender}") / "shot.blend"
    run_in_blender(blender, f"""
        import bpy
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        scene = bpy.context.scene
        bpy.ops.mesh.primitive_cube_add(location=(0, 0, 0))
        cube = bpy.context.active_object
        for frame, x in ((1, -0.5), (3, 0.5)):
            cube.location.x = x
            cube.keyframe_insert("location", frame=frame)
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        camera.location = (0, -6, 1)
        camera.rotation_euler = (1.4, 0, 0)
        scene.collection.objects.link(camera)
        scene.camera = camera
        light = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
        scene.collection.objects.link(light)
        scene.frame_start, scene.frame_end = 1, 3
        bpy.ops.wm.save_as_mainfile(filepath={str(path)!r})
    """)
    return path


def folder_recipe(folder: Path, blend: Path, painted: Path) -> Path:
    return write_recipe(folder, "painted", f"""
[dataset]
validation_fraction = 0.0
resolution = [48, 27]
[scenes]
source = "blend"
blend = "{blend}"
[input]
samples = 1
[target]
kind = "folder"
path = "{painted}"
""")


def paint(folder: Path, names_and_sizes: dict[str, tuple[int, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in names_and_sizes.items():
        Image.new("RGB", size, (200, 120, 40)).save(folder / name)


def test_folder_targets_are_matched_to_frames_and_never_changed(blender, animated_blend, tmp_path):
    painted = tmp_path / "painted"
    paint(painted, {"paint_0001.png": (48, 27), "paint_0002.png": (48, 27), "frame3.png": (48, 27)})
    originals = {p.name: p.read_bytes() for p in painted.iterdir()}
    make_dataset(folder_recipe(tmp_path, animated_blend, painted), tmp_path / "dataset", blender)
    rows = pair_rows(tmp_path / "dataset")
    assert [(r["scene"], r["frame"]) for r in rows] == [("shot", 1), ("shot", 2), ("shot", 3)]
    assert (tmp_path / "dataset" / rows[2]["target"]).read_bytes() == originals["frame3.png"]
    assert {p.name: p.read_bytes() for p in painted.iterdir()} == originals


@pytest.mark.parametrize("paintings, message", [
    ({"paint_0001.png": (48, 27), "paint_0002.png": (64, 64), "paint_0003.png": (48, 27)},
     "paint_0002.png is 64x64 but the frames are 48x27"),
    ({"paint_0001.png": (48, 27), "paint_0003.png": (48, 27)}, "no target image for frame 2"),
])
def test_folder_targets_of_the_wrong_size_or_frame_are_refused(blender, animated_blend, tmp_path, paintings,
                                                                message):
    painted = tmp_path / "painted"
    paint(painted, paintings)
    done = stylepass("dataset", str(folder_recipe(tmp_path, animated_blend, painted)), "--out",
                     str(tmp_path / "dataset"), "--blender", blender)
    assert done.returncode == 2 and message in done.stderr, done.stderr[-3000:]
    assert [r["frame"] for r in pair_rows(tmp_path / "dataset")] == [1], "frames before the bad one are kept"


@pytest.mark.parametrize("change, message", [
    (("samples = 2", "samples = 2\nshadows = true"), "unknown key(s) shadows in [input]; allowed: engine, "
                                                     "indirect, samples"),
    (('kind = "enhance"', 'kind = "watercolour"'), "[target] kind = 'watercolour' is not allowed; choose one "
                                                   "of enhance, toon, painterly, sketch, folder"),
    (("samples = 16", "strength = 2"), "[target] unknown parameter(s) for target 'enhance': strength; allowed: "
                                       "samples"),
    (("samples = 16", "samples = 0"), "[target] target 'enhance' parameter 'samples' is 0: expected an integer >= 1"),
    (("count = 3", "count = 0"), "[scenes] count must be at least 1"),
    (("[target]", "[peer]\nsamples = 0\n[target]"), "[peer] samples must be at least 1"),
    (("[target]", "[peer]\nengine = \"workbench\"\n[target]"), "[peer] engine = 'workbench' is not allowed"),
    (("[target]\nkind = \"enhance\"\nsamples = 16", "[peer]\n[target]\nkind = \"toon\""),
     "[peer] is for enhance recipes"),
])
def test_a_bad_recipe_is_refused_before_blender_starts(tmp_path, change, message):
    recipe = write_recipe(tmp_path, "bad", ENHANCE.replace(*change))
    done = stylepass("dataset", str(recipe), "--out", str(tmp_path / "dataset"))
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "dataset").exists()


def test_a_peer_render_is_written_beside_each_pair_with_the_render_times(blender, tmp_path):
    """A [peer] (here Cycles with indirect light, against the direct-light input) is rendered per pair,
    pixel-aligned with the input, and every render's wall time is recorded in pairs.jsonl."""
    recipe = write_recipe(tmp_path, "peer", ENHANCE.replace("count = 3", "count = 1").replace(
        "[target]", "[peer]\nengine = \"cycles\"\nsamples = 2\nindirect = true\n[target]"))
    make_dataset(recipe, tmp_path / "dataset", blender)
    [row] = pair_rows(tmp_path / "dataset")
    assert row["peer"] == "scenes/scene_00000/peers/peer_000001.exr"
    assert set(row["seconds"]) == {"input", "peer", "target"} and all(v > 0 for v in row["seconds"].values())
    frame = read_gbuffer(tmp_path / "dataset" / row["input"])
    peer = read_linear_exr(tmp_path / "dataset" / row["peer"])
    assert peer.shape == frame.beauty.shape == (3, 64, 64)
    lit = frame.valid > 0
    assert peer[:, lit].mean() > frame.beauty[:, lit].mean() * 1.01, "indirect light adds to the direct-only input"


def test_a_full_disk_stops_the_job_with_a_clear_message_and_keeps_finished_pairs(blender, tmp_path):
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        recipe = write_recipe(tmp_path, "enhance", ENHANCE)
        done = stylepass("dataset", str(recipe), "--out", str(disk / "dataset"), "--blender", blender)
        assert done.returncode == 3, (done.stdout + done.stderr)[-3000:]
        assert "the disk is full" in done.stderr and "run the same command again to resume" in done.stderr
        for row in pair_rows(disk / "dataset"):
            read_gbuffer(disk / "dataset" / row["input"])
            assert (disk / "dataset" / row["target"]).is_file()
        assert not [p for p in (disk / "dataset").rglob("*") if p.name.endswith(".partial")]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_dataset_refuses_a_cycles_gpu_backend_the_machine_lacks(blender, tmp_path):
    recipe = write_recipe(tmp_path, "enhance", ENHANCE)
    done = stylepass("dataset", str(recipe), "--out", str(tmp_path / "out"), "--blender", blender,
                     "--cycles-device", "HIP")
    if done.returncode == 0:
        pytest.skip("this machine has a HIP device")
    assert done.returncode == 2 and "--cycles-device HIP: " in done.stderr, (done.stdout + done.stderr)[-3000:]
    assert not list((tmp_path / "out").glob("scenes/*/frame_*.exr"))


def test_sigterm_cancels_a_dataset_and_leaves_no_blender_behind(blender, tmp_path):
    recipe = write_recipe(tmp_path, "enhance", ENHANCE)
    out = tmp_path / "out"
    job = subprocess.Popen([str(STYLEPASS), "dataset", str(recipe), "--out", str(out), "--blender", blender],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None and not (out / "pairs.jsonl").is_file():
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)  # to the CLI only, as a farm's stop does
    _, err = job.communicate(timeout=180)
    assert job.returncode == 130, err[-2000:]
    blenders = subprocess.run(["pgrep", "-f", f"headless_main.py.*{out}"], capture_output=True, text=True)
    assert blenders.stdout == "", "a Blender child outlived the command"
