"""presets/NAME/bars.toml: read strictly, checked scene by scene, refused up front when wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stylepass.training.presets.bars import BarsError, QualityBars, load_bars, missed_bars

REPO = Path(__file__).resolve().parents[2]
STYLEPASS = Path(sys.executable).parent / "stylepass"


def figures(psnr: float, ssim: float, detail: float) -> dict[str, float]:
    return {"psnr": psnr, "ssim": ssim, "detail": detail}


def report(**scenes: dict[str, dict[str, float]]) -> dict:
    return {"scenes": {name: {"pairs": 1, **methods} for name, methods in scenes.items()}}


@pytest.mark.parametrize("name", ["toon", "painterly", "sketch", "enhance"])
def test_every_shipped_preset_has_bars_that_load(name: str) -> None:
    bars = load_bars(REPO / "presets" / name)
    assert bars.min_psnr_gain_db == 3.0 and bars.min_ssim_gain == 0.0
    assert bars.min_detail_ratio == (0.0 if name == "enhance" else 0.7)
    assert bars.min_psnr_db == (28.0 if name == "toon" else 0.0)
    assert bars.beat_denoise == (name == "enhance")


def test_no_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_bars(tmp_path) == QualityBars()


@pytest.mark.parametrize(("text", "says"), [
    ("min_psnr_gain = 3.0\n", "unknown key(s) min_psnr_gain; allowed: min_psnr_gain_db"),
    ('min_detail_ratio = "high"\n', "min_detail_ratio = 'high': expected a number"),
    ("beat_denoise = 1\n", "beat_denoise = 1: expected true or false"),
    ("min_psnr_db = true\n", "expected a number"),
    ("min_psnr_db = \n", "cannot be read as TOML"),
])
def test_a_wrong_file_is_refused_with_what_to_fix(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "bars.toml").write_text(text)
    with pytest.raises(BarsError) as caught:
        load_bars(tmp_path)
    assert says in str(caught.value) and str(tmp_path / "bars.toml") in str(caught.value)


def test_each_bar_is_checked_on_every_scene() -> None:
    bars = QualityBars(min_psnr_gain_db=3.0, min_psnr_db=28.0, min_detail_ratio=0.7, beat_denoise=True)
    good = {"model": figures(30.0, 0.95, 0.9), "input": figures(20.0, 0.80, 1.0), "denoise": figures(25.0, 0.90, 0.5)}
    assert missed_bars(report(a=good, b=good), bars) == []
    weak = {"model": figures(22.0, 0.79, 0.4), "input": figures(20.0, 0.80, 1.0), "denoise": figures(25.0, 0.90, 0.5)}
    missed = missed_bars(report(a=good, b=weak), bars)
    assert all(line.startswith("b: ") for line in missed)
    assert len(missed) == 5, missed  # gain, SSIM, 28 dB, detail, Denoise
    assert "+2.00 dB over the untouched input" in missed[0] and "the bar is +3.00 dB" in missed[0]
    assert "keeps 0.40 of the target's fine detail; the bar is 0.70" in "\n".join(missed)
    no_peer = {"model": good["model"], "input": good["input"]}
    assert missed_bars(report(c=no_peer), bars) == [
        "c: no Denoise baseline in the report to beat (evaluate ran with --no-denoise)"]
    assert missed_bars(report(c=no_peer), QualityBars()) == []


def test_train_preset_refuses_a_wrong_bars_file_before_any_work(tmp_path: Path) -> None:
    preset = tmp_path / "presets" / "toon"
    preset.mkdir(parents=True)
    for name in ("dataset.toml", "train.toml"):
        (preset / name).write_text((REPO / "presets" / "toon" / name).read_text())
    (preset / "bars.toml").write_text("min_psnr_db = 'loud'\n")
    done = subprocess.run([str(STYLEPASS), "train-preset", "toon", "--presets-dir", str(tmp_path / "presets")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "min_psnr_db = 'loud': expected a number" in done.stdout + done.stderr
    assert not (tmp_path / "presets" / ".build").exists()  # nothing rendered or trained
