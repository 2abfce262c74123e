"""``stylepass evaluate`` on a dataset with a [peer] render: the peer is scored like the model, its
render times and the model's time are reported, and the bars and the card use them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.core.cli import main
from stylepass.core.models.inputs import tonemap
from stylepass.training.presets.bars import QualityBars, missed_bars
from stylepass.training.presets.card import real_assets_section
from tests.stylise.conftest import smooth_frame

from .conftest import write_dataset, write_target

SECONDS = [{"input": 2.0, "peer": 3.0, "target": 40.0}, {"input": 4.0, "peer": 5.0, "target": None}]


def peer_dataset(root: Path, peer_shift: float) -> Path:
    """Two pairs whose targets are the input + 0.1 in the model range and whose peers are the input +
    `peer_shift` (so the peer's PSNR is known), with recorded render times."""
    pairs = []
    for index in range(2):
        frame = smooth_frame(32, 40, peak=2.0 + index)
        pairs.append({"frame": frame, "split": "val", "scene": f"s{index}",
                      "target": _shifted(frame.beauty, 0.1)})
    write_dataset(root, pairs, kind="enhance")
    rows = [json.loads(line) for line in (root / "pairs.jsonl").read_text().splitlines()]
    for row, pair, seconds in zip(rows, pairs, SECONDS, strict=True):
        row["peer"] = row["target"].replace("targets/target_", "peers/peer_")
        row["seconds"] = seconds
        write_target(root / row["peer"], _shifted(pair["frame"].beauty, peer_shift))
    (root / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def _shifted(linear: np.ndarray, shift: float) -> np.ndarray:
    """Scene-linear RGB whose model-range image is `linear`'s plus `shift`."""
    shifted = tonemap(torch.from_numpy(linear)).numpy() + shift
    return shifted / (1.0 - shifted)


def test_the_peer_is_scored_and_its_render_times_reported(tmp_path, identity_model, capsys):
    dataset = peer_dataset(tmp_path / "data", peer_shift=0.05)  # the peer is twice as close as the input
    out = tmp_path / "out"
    assert main(["evaluate", str(identity_model), "--data", str(dataset), "--out", str(out), "--no-denoise"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["methods"] == ["model", "input", "peer"]
    for row in report["pairs"]:
        assert row["psnr"]["input"] == pytest.approx(20.0, abs=1e-3)
        assert row["psnr"]["peer"] == pytest.approx(20.0 + 20 * np.log10(2), abs=1e-2)
    # means over the pairs that timed each render; the target of a resumed job was not timed
    assert report["render_seconds"] == {"input": 3.0, "peer": 4.0, "target": 40.0}
    timing = json.loads((out / "timing.json").read_text())
    assert len(timing["model_seconds"]) == 2 and timing["model_seconds_median"] > 0
    assert timing["render_seconds"] == report["render_seconds"] and "onnxruntime" in timing["runtime"]
    printed = capsys.readouterr()
    assert "PSNR dB" in printed.out and "peer" in printed.out
    assert "renders (when the dataset was made) input 3.00 s, peer 4.00 s, target 40.00 s" in printed.err
    with Image.open(out / "sheet.png") as sheet:  # input | output | target | peer, 32x40 enlarged 4x
        assert sheet.size == (4 * (160 + 4) + 4, 18 + 2 * (128 + 4) + 4)

    # the bars: the identity model does not beat the peer, scene by scene
    missed = missed_bars(report, QualityBars(min_psnr_gain_db=0.0, min_ssim_gain=-1.0, beat_peer=True))
    assert len(missed) == 2 and all("does not beat the peer render's" in line for line in missed)
    # the card: the peer in words and the cost per frame of input + model against the peer
    card = real_assets_section({"means": report["means"], "count": 2, "resolution": "40x32", "assets": ["a"],
                                "columns": ["input", "output", "target", "peer"], "beats_input": False,
                                "missed_bars": missed, "peer": {"engine": "eevee", "samples": 16, "indirect": True},
                                "render_seconds": report["render_seconds"], "model_seconds": 0.5,
                                "runtime": "onnxruntime"})
    assert "| the peer: Eevee, 16 samples, ray tracing on |" in card
    assert "| **input + model** | **3.50 s** |" in card and "| the peer render | 4.00 s |" in card


def test_a_missing_peer_render_is_exit_2_naming_it(tmp_path, identity_model, capsys):
    dataset = peer_dataset(tmp_path / "data", peer_shift=0.05)
    (dataset / "scenes/s1/peers/peer_000002.exr").unlink()
    code = main(["evaluate", str(identity_model), "--data", str(dataset), "--out", str(tmp_path / "out"),
                 "--no-denoise"])
    assert code == ExitCode.BAD_INPUT
    assert "peer_000002.exr" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.json").exists()


def test_missing_peer_baseline_is_a_missed_bar():
    report = {"scenes": {"s": {"model": {"psnr": 30.0, "ssim": 0.9, "detail": 1.0},
                               "input": {"psnr": 20.0, "ssim": 0.8, "detail": 1.0}}}}
    assert missed_bars(report, QualityBars(beat_peer=True)) == [
        "s: no peer baseline in the report to beat (the dataset's recipe has no [peer] render)"]
    assert missed_bars(report, QualityBars()) == []
