"""`python build.py train-preset` end to end on a tiny sketch run (real Blender 5.2, CPU torch).

Dataset (3 pairs at 32x32), training (4 steps), export of a candidate model, held-out real assets
(1 scene at 32x32, scored by stylepass evaluate), the quality bars (an unreachable one here: the
candidate is refused and the preset left alone, then installed with --accept-worse), card and
thumbnail, in a temporary copy of presets/sketch so the shipped preset is left alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
STYLEPASS = Path(sys.executable).parent / "stylepass"
ASSETS = REPO.parent / "shared" / "assets" / "gltf"


def train_preset(presets: Path, steps: int, *extra: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """`build.py train-preset sketch` on 3 pairs at 32x32 in `presets`; asserts its exit code."""
    done = subprocess.run(
        [sys.executable, str(REPO / "build.py"), "train-preset", "sketch", "--pairs", "3", "--steps", str(steps),
         "--resolution", "32x32", "--blender", "5.2", "--presets-dir", str(presets), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == expect, (done.stdout + done.stderr)[-4000:]
    return done


def test_train_preset_sketch_end_to_end(tmp_path: Path) -> None:
    presets = tmp_path / "presets"
    preset = presets / "sketch"
    preset.mkdir(parents=True)
    shutil.copy(REPO / "presets" / "sketch" / "train.toml", preset / "train.toml")
    # Every 2nd scene is a validation scene, so 3 pairs give 1 validation pair (the recipe's 0.2
    # makes every 5th one, i.e. none of 3).
    recipe = (REPO / "presets" / "sketch" / "dataset.toml").read_text()
    assert "validation_fraction = 0.2" in recipe
    (preset / "dataset.toml").write_text(recipe.replace("validation_fraction = 0.2", "validation_fraction = 0.5"))
    # One held-out scene of a real asset at 32x32 (the shipped recipe has 6 at 256x256).
    real = (REPO / "presets" / "sketch" / "real_assets.toml").read_text()
    for shipped, small in (("count = 6", "count = 1"), ("resolution = [256, 256]", "resolution = [32, 32]"),
                           ('"../../../shared/assets/gltf"', json.dumps(str(ASSETS / "WaterBottle")))):
        assert shipped in real
        real = real.replace(shipped, small)
    (preset / "real_assets.toml").write_text(real)
    # The shipped bars plus one no model reaches: the run must be refused, then accepted on request.
    bars = (REPO / "presets" / "sketch" / "bars.toml").read_text()
    assert "min_detail_ratio = 0.7" in bars
    (preset / "bars.toml").write_text(bars + "min_psnr_db = 99.0\n")

    refused = train_preset(presets, 4, expect=6)
    output = refused.stdout + refused.stderr
    assert "[bars] missed: scene_00000: PSNR" in output and "under the bar of 99.00 dB" in output, output[-3000:]
    assert "--accept-worse installs it anyway" in output
    assert sorted(p.name for p in preset.iterdir()) == ["bars.toml", "dataset.toml", "real_assets.toml", "train.toml"]
    work = presets / ".build" / "sketch"
    assert (work / "model" / "model.safetensors").is_file()  # the candidate is kept for a look

    done = train_preset(presets, 4, "--accept-worse")
    output = done.stdout + done.stderr
    for stage in ("[dataset]", "[training]", "[export]", "[real assets]", "[bars]", "[card]", "[thumbnail]"):
        assert stage in output, f"stage {stage} not reported:\n{output[-3000:]}"
    assert "resuming" in output  # the refused run's training is not redone

    model = preset / "model"
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    assert (model / "model.onnx").is_file() and (model / "model.int8.onnx").is_file()
    assert json.loads((model / "config.json").read_text())["model"]["family"] == "unet"
    assert sorted(p.name for p in preset.iterdir() if p.name.startswith(".")) == []  # no temporary left

    # The exported model loads and stylises one exported frame of the dataset.
    rows = [json.loads(line) for line in (work / "dataset" / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and [r["split"] for r in rows].count("val") == 1
    frame = work / "dataset" / rows[0]["input"]
    styled = subprocess.run([str(STYLEPASS), "stylise", str(frame), "--model", str(model),
                             "--out", str(tmp_path / "styled"), "--device", "cpu"],
                            capture_output=True, text=True, timeout=120)
    assert styled.returncode == 0, styled.stdout[-2000:] + styled.stderr[-2000:]
    pngs = list((tmp_path / "styled").glob("stylised_*.png"))
    assert len(pngs) == 1
    assert Image.open(pngs[0]).size == (32, 32)

    card = (preset / "CARD.md").read_text()
    for needed in ("PSNR", "SSIM", "untouched input", "ms per 512x512 frame", "4 steps", "3 procedural scenes",
                   "| int8 |",
                   "albedo, normal, depth"):
        assert needed in card, f"{needed!r} missing from the card:\n{card}"
    report = json.loads((preset / "real_assets.json").read_text())
    assert report["count"] == 1 and report["model"]["family"] == "unet"
    assert report["model"]["name"] == "sketch" and report["model"]["folder"] == str(model)
    assert f"| this model | {report['means']['model']['psnr']:.2f} |" in card
    assert "fine detail (output / target)" in card and f"{report['means']['model']['detail']:.2f} |" in card
    assert "Quality bars (`bars.toml`) missed (installed with `--accept-worse`)" in card
    assert "under the bar of 99.00 dB" in card
    assert "held-out real assets (1 scenes, 32x32)" in card and "WaterBottle" in card
    assert Image.open(preset / "real_assets.png").size[0] > 32 * 3
    thumbnail = Image.open(preset / "thumbnail.png")
    assert thumbnail.size[0] > 2 * thumbnail.size[1]  # input | output | target side by side

    # More steps, same settings: the dataset and the run resume (no new scenes, no restart).
    more = train_preset(presets, 6, "--accept-worse")
    assert "resuming" in more.stdout and "afresh" not in more.stdout
    assert "6 steps" in (preset / "CARD.md").read_text()

    # Another training setting: the run starts afresh, the rendered datasets are kept.
    config = (preset / "train.toml").read_text()
    assert "lr_g = 0.0002" in config
    (preset / "train.toml").write_text(config.replace("lr_g = 0.0002", "lr_g = 0.0003"))
    again = train_preset(presets, 6, "--accept-worse")
    assert "training afresh on its datasets" in again.stdout and "resuming" not in again.stdout
    assert "0 pair(s) written, 3 already finished" in again.stdout + again.stderr
