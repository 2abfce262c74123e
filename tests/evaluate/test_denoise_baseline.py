"""The Denoise baseline of ``stylepass evaluate`` in real Blender (4.5 and 5.2): Blender's
compositor Denoise node on a noisy input, in both export layouts, resumable."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.core.cli import main
from stylepass.training.data.image_io import read_linear_exr
from tests.stylise.conftest import smooth_frame

from .conftest import write_dataset

SIZE = 64
NOISE = 0.15  # standard deviation of the per-pixel noise on a beauty of 0.05 .. 1


def noisy_enhance_dataset(root, seed: int = 0):
    """Two val pairs (5.x and 4.5 pass names): input = a smooth image plus strong per-pixel
    noise, with clean albedo and normal passes as a renderer gives them; target = the clean image."""
    rng = np.random.default_rng(seed)
    pairs = []
    for index, short_names in enumerate((False, True)):
        clean = smooth_frame(SIZE, SIZE, peak=1.0 + index)
        noisy = smooth_frame(SIZE, SIZE, peak=1.0 + index)
        noisy.beauty = np.clip(clean.beauty + rng.normal(0.0, NOISE, clean.beauty.shape), 0.0, None).astype(np.float32)
        noisy.albedo = np.full_like(clean.albedo, 0.6)
        pairs.append({"frame": noisy, "target": clean.beauty, "split": "val", "scene": f"s{index}",
                      "short_names": short_names})
    return write_dataset(root, pairs, kind="enhance")


def test_denoise_node_reduces_the_noise_and_resumes(tmp_path, blender, identity_model, capsys):
    data = noisy_enhance_dataset(tmp_path / "data")
    out = tmp_path / "out"
    # enhance dataset: the Denoise baseline runs without being asked for
    assert main(["evaluate", str(identity_model), "--data", str(data), "--out", str(out),
                 "--blender", blender]) == ExitCode.OK, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["methods"] == ["model", "input", "denoise"]
    assert report["denoise"]["blender"] == f"Blender {blender} (bpy)"
    assert report["denoise"]["settings"] == {"hdr": True, "prefilter": "ACCURATE", "quality": "HIGH"}
    for row in report["pairs"]:
        assert row["psnr"]["denoise"] > row["psnr"]["input"] + 6.0, row
        assert row["ssim"]["denoise"] > row["ssim"]["input"] + 0.1, row
    denoised = sorted((out / "denoise").rglob("frame_*.exr"))
    assert [p.relative_to(out / "denoise").as_posix() for p in denoised] == [
        "scenes/s0/frame_000001.exr", "scenes/s1/frame_000002.exr"]
    rgb = read_linear_exr(denoised[0])
    assert rgb.shape == (3, SIZE, SIZE) and np.isfinite(rgb).all()
    with Image.open(out / "sheet.png") as sheet:  # four columns: input | output | target | denoise
        assert sheet.size == (4 * (2 * SIZE + 4) + 4, 18 + 2 * (2 * SIZE + 4) + 4)

    # again: the denoised frames are kept, the figures are the same
    capsys.readouterr()
    kept = denoised[0].stat().st_mtime_ns
    assert main(["evaluate", str(identity_model), "--data", str(data), "--out", str(out),
                 "--blender", blender]) == ExitCode.OK
    assert "skipped (2/2)" in capsys.readouterr().err
    assert denoised[0].stat().st_mtime_ns == kept
    assert json.loads((out / "report.json").read_text()) == report
