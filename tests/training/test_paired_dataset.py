"""The paired dataset read from real files: items, crops, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stylepass.blender_addon.contract.dataset_layout import DatasetError
from stylepass.core.models.inputs import gbuffer_channels, tonemap
from stylepass.training.data.image_io import ImageReadError, read_target_image
from stylepass.training.data.paired_dataset import PairedDataset
from stylepass.training.data.sampling import StepBatchSampler, crop_keys_for_step

PASSES = ("albedo", "normal", "depth")


def copy_dataset(source: Path, destination: Path) -> Path:
    return Path(shutil.copytree(source, destination))


def test_full_frame_items_have_documented_shapes_and_ranges(paired_dataset: Path, gbuffer_reader, style) -> None:
    train = PairedDataset(paired_dataset, "train", PASSES, frame_reader=gbuffer_reader)
    val = PairedDataset(paired_dataset, "val", PASSES, frame_reader=gbuffer_reader)
    assert (len(train), len(val)) == (4, 2)
    item = train[0]
    height, width = 40, 48
    assert item["image"].shape == (3, height, width) and item["image"].dtype == torch.float32
    assert item["gbuffers"].shape == (gbuffer_channels(PASSES), height, width)
    assert item["material_id"].shape == (height, width) and item["material_id"].dtype == torch.long
    assert item["target"].shape == (3, height, width)
    for key in ("image", "target"):
        assert 0 <= item[key].min() and item[key].max() < 1
    frame = gbuffer_reader(train.records[0].input)
    expected = tonemap(torch.from_numpy(style(frame.beauty)).clamp(0, 1))
    assert (item["target"] - expected).abs().max() < 0.01  # 8-bit sRGB PNG round trip
    val_expected = tonemap(torch.from_numpy(style(gbuffer_reader(val.records[0].input).beauty)))
    torch.testing.assert_close(val[0]["target"], val_expected)  # linear EXR target


def test_crops_follow_the_step_keys_deterministically(paired_dataset: Path, gbuffer_reader) -> None:
    data = PairedDataset(paired_dataset, "train", PASSES, crop_size=32, frame_reader=gbuffer_reader)
    keys = crop_keys_for_step(seed=3, step=5, rank=0, batch_size=2, num_items=len(data))
    assert keys == crop_keys_for_step(3, 5, 0, 2, len(data))
    assert keys != crop_keys_for_step(3, 5, 1, 2, len(data))
    assert next(iter(StepBatchSampler(3, 4, 6, 2, len(data)))) == keys
    first, again = data[keys[0]], data[keys[0]]
    assert first["image"].shape == (3, 32, 32) and first["material_id"].shape == (32, 32)
    for key in first:
        assert torch.equal(first[key], again[key])
    full = data.load_pair(keys[0][0])
    found = (full["image"].unfold(1, 32, 1).unfold(2, 32, 1) == first["image"][:, None, None]).flatten(3).all(3).all(0)
    assert found.any()  # the crop is a window of the full frame


def test_dataset_lacking_a_pass_names_it(paired_dataset: Path, gbuffer_reader) -> None:
    def without_albedo(path: Path):
        frame = gbuffer_reader(path)
        frame.albedo = None
        return frame

    data = PairedDataset(paired_dataset, "train", PASSES + ("motion",), frame_reader=without_albedo)
    with pytest.raises(DatasetError, match=r"0000.exr lacks the pass\(es\) the model needs: albedo, motion"):
        data.check_passes()


def test_export_lacking_a_required_pass_is_named(paired_dataset: Path, gbuffer_writer, frame_factory,
                                                 tmp_path: Path) -> None:
    root = copy_dataset(paired_dataset, tmp_path / "d")
    gbuffer_writer(root / "frames" / "0000.exr", frame_factory(np.random.default_rng(0)), passes=())
    data = PairedDataset(root, "train", PASSES)  # the default reader: stylepass.core.io.gbuffer
    with pytest.raises(DatasetError, match="0000.exr has no albedo pass"):
        data.check_passes()


def test_bad_pairs_files_are_explained(paired_dataset: Path, gbuffer_reader, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a paired dataset: pairs.jsonl not found"):
        PairedDataset(tmp_path, "train", PASSES)
    root = copy_dataset(paired_dataset, tmp_path / "d")
    lines = (root / "pairs.jsonl").read_text().splitlines()
    (root / "frames" / "0001.exr").unlink()
    with pytest.raises(DatasetError, match=r"1 file\(s\) listed in pairs.jsonl are missing: .*0001.exr"):
        PairedDataset(root, "train", PASSES)
    bad_split = json.loads(lines[0]) | {"split": "test"}
    (root / "pairs.jsonl").write_text(json.dumps(bad_split) + "\n")
    with pytest.raises(DatasetError, match="pairs.jsonl:1: split 'test'; allowed: train, val"):
        PairedDataset(root, "train", PASSES)
    (root / "pairs.jsonl").write_text(lines[0] + "\n" + json.dumps({"input": "x.exr"}) + "\n")
    with pytest.raises(DatasetError, match="pairs.jsonl:2: missing key\\(s\\) target, split, scene"):
        PairedDataset(root, "train", PASSES)


def test_size_mismatches_are_explained(paired_dataset: Path, gbuffer_reader, tmp_path: Path) -> None:
    root = copy_dataset(paired_dataset, tmp_path / "d")
    data = PairedDataset(root, "train", PASSES, crop_size=64, frame_reader=gbuffer_reader)
    with pytest.raises(DatasetError, match="is 40x48, smaller than the crop size 64"):
        data[(0, 0.5, 0.5)]
    from PIL import Image

    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(root / "targets" / "0000.png")
    with pytest.raises(DatasetError, match=r"target is \(10, 12\) but input .* is \(40, 48\)"):
        data.load_pair(0)


def test_target_reader_rejects_unknown_types(tmp_path: Path) -> None:
    (tmp_path / "t.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match="unsupported target type '.jpg'; use .exr"):
        read_target_image(tmp_path / "t.jpg")
    with pytest.raises(ImageReadError, match="target image not found"):
        read_target_image(tmp_path / "absent.png")


@pytest.mark.parametrize("name, data", [("target.png", b"\x89PNG\r\n\x1a\n" + b"cut short" * 5),
                                        ("target.exr", b"v/1\x01" + b"not an exr" * 5)])
def test_a_damaged_target_image_is_named(tmp_path, name, data):
    from stylepass.training.data.image_io import ImageReadError, read_target_image

    (tmp_path / name).write_bytes(data)
    with pytest.raises(ImageReadError, match=f"target image .*{name} is damaged and cannot be read"):
        read_target_image(tmp_path / name)
