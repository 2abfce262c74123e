"""`stylepass train-photoreal` end to end: scikit-image's bundled photographs (shipped in its wheel, no
download) as the target domain, the synthetic render dataset of conftest.py as the renders."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data  # a test extra (pyproject.toml): its photos ship in the wheel

from stylepass.core.cli import main
from stylepass.core.inference.predict import stylise_frame
from stylepass.core.inference.stylise import load_styliser, read_frame
from stylepass.core.io.colour import decode_srgb
from stylepass.core.models.config import build_generator
from stylepass.core.models.serialization import load_model, load_tensors
from stylepass.training.data.image_io import read_target_image
from stylepass.training.data.photo_folder import (
    MANIFEST,
    PhotoFolderError,
    log_average_luminance,
    prepare_photos,
)
from stylepass.training.deploy.export import load_run_generator
from stylepass.training.loop.checkpoint import latest_checkpoint

TINY = """
[model]
widths = [8, 16]
blocks = [1, 1]
gbuffer_widths = [8, 8]
num_materials = 4

[train]
crop_size = 32
batch_size = 2
num_workers = 0
log_every = 2
checkpoint_every = 3
lr_g = 0.002
lr_d = 0.002
lr_decay_start = 0

[discriminator]
base_width = 8
n_layers = 2
"""
FRAME_H, FRAME_W = 40, 48  # conftest.py's frames: the photos' shorter side becomes 40
USED = {"astronaut.png", "coffee_rotated.jpg", "chelsea_16bit.png", "rocket.jpg", "logo_opaque_alpha.png"}


def write_png16(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit RGB PNG (H, W, 3) uint16, written by hand: Pillow cannot write one."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-image's bundled photos, saved as a user's folder would hold them (read-only)."""
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.astronaut()).save(folder / "astronaut.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: shown turned by 90 degrees (a phone held upright)
    Image.fromarray(skimage_data.coffee()).save(folder / "coffee_rotated.jpg", quality=90, exif=exif)
    write_png16(folder / "chelsea_16bit.png", skimage_data.chelsea().astype(np.uint16) * 257)
    (folder / "more").mkdir()
    Image.fromarray(skimage_data.rocket()).save(folder / "more" / "rocket.jpg", quality=90)
    Image.fromarray(skimage_data.logo()).save(folder / "logo_opaque_alpha.png")  # RGBA, alpha 255 everywhere
    cutout = skimage_data.astronaut()
    cutout = np.concatenate([cutout, np.full(cutout.shape[:2] + (1,), 255, np.uint8)], axis=2)
    cutout[:100, :100, 3] = 0
    Image.fromarray(cutout).save(folder / "cutout.png")
    Image.fromarray(skimage_data.camera()).save(folder / "camera_grey.png")
    (folder / "._astronaut.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # hidden: ignored
    (folder / "notes.txt").write_text("shot list")
    return folder


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def run_cli(*args: object) -> int:
    return main(["train-photoreal", *(str(a) for a in args), "--device", "cpu"])


def test_photos_are_prepared_without_distortion_and_exposure_matched(photo_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_photos(photo_folder, tmp_path / "prepared", 40, 32, render_key=0.6)
    assert {p.source.split("/")[-1] for p in prepared.photos} == USED
    assert dict(prepared.skipped) == {
        "camera_grey.png": "greyscale",
        "cutout.png": "has transparent pixels (a cut-out, not a photographed scene): flatten it to use it",
    }
    sizes = {p.source.split("/")[-1]: p.size for p in prepared.photos}
    assert sizes["astronaut.png"] == (40, 40)
    assert sizes["coffee_rotated.jpg"] == (40, 60)  # 600x400 turned upright by its EXIF orientation
    assert sizes["rocket.jpg"] == (60, 40)  # 640x427: aspect kept (60 = round(640 * 40 / 427))
    linear = [read_target_image(prepared.folder / p.prepared) for p in prepared.photos]
    for image, photo in zip(linear, prepared.photos, strict=True):
        assert image.shape == (3, photo.size[1], photo.size[0])
    keys = [log_average_luminance((x / (1 - x)).numpy()) for x in linear]  # back from the models' range
    # matched to the renders (black pixels, at the log floor, do not scale: hence not exact)
    assert float(np.exp(np.mean(np.log(keys)))) == pytest.approx(0.6, rel=0.05)
    coffee = read_target_image(prepared.folder / next(p.prepared for p in prepared.photos if "coffee" in p.source))
    upright = Image.fromarray(np.rot90(skimage_data.coffee(), k=-1).copy()).resize((40, 60), Image.Resampling.LANCZOS)
    expected = decode_srgb(np.asarray(upright, np.float32).transpose(2, 0, 1) / 255).mean(axis=0)
    assert np.corrcoef(expected.ravel(), (coffee / (1 - coffee)).mean(dim=0).ravel())[0, 1] > 0.95  # turned, whole
    chelsea = read_target_image(prepared.folder / next(p.prepared for p in prepared.photos if "chelsea" in p.source))
    assert chelsea[0].mean() > chelsea[2].mean() + 0.02  # a ginger cat: the 16-bit file kept its colour

    again = prepare_photos(photo_folder, tmp_path / "prepared", 40, 32, render_key=0.6, must_reuse=True)
    assert again.reused and again.photos == prepared.photos
    with pytest.raises(PhotoFolderError, match="the photo size or the renders' exposure changed"):
        prepare_photos(photo_folder, tmp_path / "prepared", 48, 32, render_key=0.6, must_reuse=True)


def test_train_photoreal_trains_exports_previews_and_resumes(
    photo_folder: Path, paired_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, config = tmp_path / "run", config_file(tmp_path)
    code = run_cli("--photos", photo_folder, "--data", paired_dataset, "--out", run, "--steps", 4, "--config", config)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "photo skipped: camera_grey.png: greyscale" in err and "photo skipped: cutout.png" in err
    assert "only 5 usable photo(s)" in err

    # The run: an unpaired config on the prepared photos, checkpoints, metrics with both losses.
    resolved = (run / "config.toml").read_text()
    assert 'mode = "unpaired"' in resolved and f'target_images = "{(run / "photos").resolve()}"' in resolved
    manifest = json.loads((run / "photos" / MANIFEST).read_text())
    assert {Path(p["source"]).name for p in manifest["photos"]} == USED and manifest["exposure"] > 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/content" in m and "loss/adversarial" in m for m in metrics)

    # The model: the run's trained generator, written as safetensors + JSON config, and it stylises.
    model_dir = run / "model"
    written = {p.name for p in model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "photoreal.json", "preview.png"} <= written
    card = json.loads((model_dir / "photoreal.json").read_text())
    assert card["steps"] == 4 and card["photos_used"] == 5 and card["photos_skipped"] == 2
    exported, model_config = load_model(model_dir)
    trained = load_tensors(latest_checkpoint(run) / "generator.safetensors")
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in trained.items())
    torch.manual_seed(0)
    initial = build_generator(model_config).state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in trained.items())  # training changed it
    frame = read_frame(paired_dataset / "frames" / "0004.exr")
    stylised = load_styliser(model_dir, "cpu").stylise(frame)  # what `stylepass stylise` runs (ONNX Runtime)
    assert stylised.shape == (3, FRAME_H, FRAME_W) and np.isfinite(stylised).all()
    generator, _ = load_run_generator(run)
    np.testing.assert_allclose(stylised, stylise_frame(generator, model_config, frame), rtol=1e-3, atol=1e-3)

    # The preview: input | output | matched photo, one row per validation frame (conftest: 2).
    sheet = np.asarray(Image.open(run / "preview.png").convert("RGB"))
    gap, header = 4, 18
    assert sheet.shape == (header + 2 * (FRAME_H + gap) + gap, 3 * (FRAME_W + gap) + gap, 3)
    top, cells = header, [gap + c * (FRAME_W + gap) for c in range(3)]
    tiles = [sheet[top + 12 : top + FRAME_H, x : x + FRAME_H].astype(int) for x in cells]  # below the row label
    assert np.abs(tiles[2] - tiles[0]).mean() > 10 and tiles[2].std() > 5  # a photo, not the render

    # Resume: the same command with --resume goes on to more steps and keeps the prepared photos.
    prepared_at = (run / "photos" / MANIFEST).stat().st_mtime_ns
    code = run_cli("--photos", photo_folder, "--data", paired_dataset, "--out", run, "--steps", 6, "--config", config,
                   "--resume")
    assert code == 0, capsys.readouterr().err
    assert latest_checkpoint(run).name == "step-00000006"
    assert (run / "photos" / MANIFEST).stat().st_mtime_ns == prepared_at
    assert json.loads((model_dir / "photoreal.json").read_text())["steps"] == 6

    # Without --resume the run is never overwritten; with other photos it is not resumed.
    code = run_cli("--photos", photo_folder, "--data", paired_dataset, "--out", run, "--config", config)
    err = capsys.readouterr().err
    assert code == 2 and "pass --resume" in err, err
    other = tmp_path / "other_photos"
    shutil.copytree(photo_folder, other)
    (other / "camera_grey.png").unlink()
    code = run_cli("--photos", other, "--data", paired_dataset, "--out", run, "--steps", 8, "--config", config,
                   "--resume")
    err = capsys.readouterr().err
    assert code == 2 and "the photos changed since this run was started" in err, err


def test_bad_photo_folders_are_refused_with_what_to_do(
    paired_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)

    def refused(photos: Path) -> str:
        run = tmp_path / f"run_{photos.name}"
        code = run_cli("--photos", photos, "--data", paired_dataset, "--out", run, "--config", config)
        err = capsys.readouterr().err
        assert code == 2, err
        assert not (run / "photos").exists() and not (run / "checkpoints").exists()
        return " ".join(err.split())  # rich may wrap

    assert "photo folder not found" in refused(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "IMG_0001.CR2").write_bytes(b"raw")
    message = refused(empty)
    assert "holds no photographs" in message and ".cr2" in message and "camera RAW" in message

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(damaged / "fine.jpg")
    data = (damaged / "fine.jpg").read_bytes()
    (damaged / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (damaged / "not_an_image.png").write_text("hello")
    message = refused(damaged)
    assert "2 of the 3 images" in message and "truncated.jpg" in message and "not_an_image.png" in message

    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(skimage_data.astronaut()).resize((24, 30)).save(small / "thumb.png")
    Image.fromarray(skimage_data.camera()).save(small / "grey.png")
    message = refused(small)
    assert "none of the 2 images" in message and "smaller than the training crop (32 px" in message
    assert "grey.png: greyscale" in message

    code = run_cli("--photos", damaged, "--data", paired_dataset, "--out", tmp_path / "run_size", "--config", config,
                   "--photo-size", 16)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "the photo size (16 px) must be at least the training crop (32 px)" in err, err


def test_data_that_is_not_a_render_dataset_is_refused(
    photo_folder: Path, paired_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.jsonl").write_text("")
    cases = {
        tmp_path / "absent": "render dataset not found",
        export: "is a G-buffer export (manifest.jsonl), not a render dataset",
        photo_folder: "a folder of images, not a render dataset (photographs go to --photos)",
    }
    not_gbuffers = tmp_path / "not_gbuffers"
    not_gbuffers.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(not_gbuffers / "a.png")
    (not_gbuffers / "pairs.jsonl").write_text(json.dumps({"input": "a.png", "split": "train", "scene": "s"}) + "\n")
    cases[not_gbuffers] = "its inputs (such as a.png) must be G-buffer exports"
    for data, expected in cases.items():
        code = run_cli("--photos", photo_folder, "--data", data, "--out", tmp_path / "run", "--config", config)
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and expected in err, err
        assert "stylepass dataset" in err
    code = run_cli("--photos", photo_folder, "--data", paired_dataset, "--out", tmp_path / "run")  # 128 px crops
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "smaller than the training crop 128 px" in err, err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
