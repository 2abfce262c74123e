"""The shipped presets: their files, and figures on held-out real assets that belong to the shipped
weights and beat the untouched input (made by `python build.py train-preset NAME`)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from PIL import Image

from stylepass.core.inference.stylise import presets_dir
from stylepass.core.io.model_files import MODEL_WEIGHTS, ONNX_MODEL, model_id, source_digest

PRESETS = ("enhance", "toon", "painterly", "sketch")
WEIGHTS_BUDGET_MB = 30


@pytest.mark.parametrize("name", PRESETS)
def test_preset_folder_is_complete(name: str) -> None:
    preset = presets_dir() / name
    for needed in ("dataset.toml", "train.toml", "real_assets.toml", "CARD.md", "thumbnail.png", "real_assets.json",
                   "real_assets.png", "model/config.json", f"model/{MODEL_WEIGHTS}", f"model/{ONNX_MODEL}"):
        assert (preset / needed).is_file(), f"{preset / needed} is missing"
    assert (preset / "model" / MODEL_WEIGHTS).stat().st_size < WEIGHTS_BUDGET_MB * 1e6
    # model.onnx is exported from these very weights and config (ONNX Runtime would rewrite an older one)
    onnx_model = onnx.load(str(preset / "model" / ONNX_MODEL))
    recorded = {p.key: p.value for p in onnx_model.metadata_props}["stylepass.source_digest"]
    assert recorded == source_digest(preset / "model")


@pytest.mark.parametrize("name", PRESETS)
def test_real_asset_figures_are_the_shipped_models_and_beat_the_input(name: str) -> None:
    preset = presets_dir() / name
    report = json.loads((preset / "real_assets.json").read_text())
    # The figures were measured on these very weights (a retrained model must be re-scored).
    assert report["model"]["id"] == model_id(preset / "model")
    assert report["split"] == "val" and report["count"] >= 3
    scenes = report["dataset"]["identity"]["recipe"]["scenes"]
    assert {Path(a).stem for a in scenes["assets"]} == {"BoomBox", "FlightHelmet", "WaterBottle"}
    assert scenes["asset_probability"] == 1.0
    means = report["means"]
    if name == "enhance":
        # Enhance (Eevee with ray tracing in) beats its input and the peer, the same render at twice the
        # samples, in PSNR only: its SSIM is below both (issue 12; the card lists every missed bar).
        assert "denoise" in means and "peer" in means
        assert means["model"]["psnr"] > max(means["input"]["psnr"], means["peer"]["psnr"]), means
    else:
        for metric in ("psnr", "ssim"):
            assert means["model"][metric] > means["input"][metric], f"{name}: {metric} {means}"
    card = (preset / "CARD.md").read_text()
    assert f"| this model | {means['model']['psnr']:.2f} | {means['model']['ssim']:.4f} |" in card
    sheet = Image.open(preset / "real_assets.png")
    assert sheet.size[0] > 2 * sheet.size[1] / 3  # columns side by side, a few rows
