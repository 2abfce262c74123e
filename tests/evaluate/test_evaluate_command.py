"""``stylepass evaluate`` without Blender: figures, report, sheet, reproducibility, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.core.cli import main
from stylepass.core.inference.stylise import PRESETS_ENV
from stylepass.core.io.gbuffer import read_gbuffer
from stylepass.core.io.model_files import model_id
from stylepass.core.models.inputs import tonemap
from stylepass.core.models.serialization import load_model
from stylepass.training.data.image_io import read_target_image
from stylepass.training.data.paired_dataset import PairedDataset
from stylepass.training.evaluate.metrics import laplacian_energy, psnr, ssim
from stylepass.training.loop.trainer import OptionalMetrics, validate
from tests.stylise.conftest import smooth_frame

from .conftest import write_dataset


def evaluate(*args: str | Path) -> int:
    return main(["evaluate", *map(str, args)])


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_figures_are_the_metric_functions_on_the_same_images(tmp_path, toon_dataset, rad_model, capsys):
    out = tmp_path / "out"
    assert evaluate(rad_model, "--data", toon_dataset, "--out", out, "--device", "cpu") == ExitCode.OK
    report = report_of(out)
    assert report["split"] == "val" and report["count"] == 3 and report["device"] == "cpu"
    assert report["methods"] == ["model", "input"] and report["denoise"] is None  # toon: no Denoise baseline
    assert report["dataset"]["target_kind"] == "toon" and report["dataset"]["identity"]["seed"] == 0
    assert report["model"]["id"] == model_id(rad_model)
    assert report["torch"] == torch.__version__
    assert [row["input"] for row in report["pairs"]] == [f"scenes/{s}/frame_{n:06d}.exr" for s, n in
                                                         (("a", 3), ("a", 4), ("b", 5))]

    # input: the untouched beauty, tone-mapped, against the target as training reads it
    for row in report["pairs"]:
        image = tonemap(torch.from_numpy(read_gbuffer(toon_dataset / row["input"]).beauty))[None]
        target = read_target_image(toon_dataset / row["target"])[None]
        assert row["psnr"]["input"] == pytest.approx(float(psnr(image, target)), abs=1e-9)
        assert row["ssim"]["input"] == pytest.approx(float(ssim(image, target)), abs=1e-9)
        detail = float(laplacian_energy(image)[0] / laplacian_energy(target)[0])
        assert row["detail"]["input"] == pytest.approx(detail, rel=1e-6)
        assert all(math.isfinite(v) for metric in ("psnr", "ssim", "detail") for v in row[metric].values())
        assert row["psnr"]["model"] != pytest.approx(row["psnr"]["input"], abs=0.01)  # the model changed the image

    # model: the means equal training validation's val/psnr and val/ssim on the same split
    generator, config = load_model(rad_model, "cpu")
    validation, _ = validate(generator, PairedDataset(toon_dataset, "val", config.gbuffer_passes),
                             torch.device("cpu"), 0, OptionalMetrics())
    assert report["means"]["model"]["psnr"] == pytest.approx(validation["val/psnr"], abs=1e-4)
    assert report["means"]["model"]["ssim"] == pytest.approx(validation["val/ssim"], abs=1e-5)

    # per scene and mean: means of the pairs
    rows = report["pairs"]
    for method in ("model", "input"):
        assert report["means"][method]["psnr"] == pytest.approx(np.mean([r["psnr"][method] for r in rows]))
        assert report["scenes"]["a"][method]["ssim"] == pytest.approx(np.mean([r["ssim"][method] for r in rows[:2]]))
        assert report["scenes"]["b"][method]["psnr"] == rows[2]["psnr"][method]
    assert report["scenes"]["a"]["pairs"] == 2 and report["scenes"]["b"]["pairs"] == 1

    # the table: a row per scene and the means
    printed = capsys.readouterr().out
    assert "PSNR dB" in printed and f"{report['means']['model']['psnr']:.2f}" in printed
    assert "detail" in printed and f"{report['means']['model']['detail']:.2f}" in printed

    # the sheet: 3 rows of input | output | target, 40x48 frames enlarged 4x to 160x192
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.mode == "RGB" and sheet.size == (3 * (192 + 4) + 4, 18 + 3 * (160 + 4) + 4)


def test_a_known_difference_gives_its_psnr_and_the_identity_model_matches_the_input(tmp_path, identity_model):
    """Targets 0.1 above the input in the model range: PSNR 20 dB exactly (MSE 0.01); the identity
    model's output is the input, so its figures are the input's."""
    pairs = []
    for index in range(2):
        frame = smooth_frame(32, 40, peak=2.0 + index)
        shifted = tonemap(torch.from_numpy(frame.beauty)).numpy() + 0.1
        pairs.append({"frame": frame, "target": shifted / (1.0 - shifted), "split": "val", "scene": f"s{index}"})
    dataset = write_dataset(tmp_path / "data", pairs, kind=None)

    assert evaluate(identity_model, "--data", dataset, "--out", tmp_path / "out") == ExitCode.OK
    report = report_of(tmp_path / "out")
    assert report["dataset"]["identity"] is None and report["dataset"]["target_kind"] is None
    for row in report["pairs"]:
        assert row["psnr"]["input"] == pytest.approx(20.0, abs=1e-3)
        assert row["psnr"]["model"] == pytest.approx(row["psnr"]["input"], abs=1e-3)
        assert row["ssim"]["model"] == pytest.approx(row["ssim"]["input"], abs=1e-4)
        # a constant shift keeps every edge: the input has all of the target's fine detail
        assert row["detail"]["input"] == pytest.approx(1.0, abs=1e-3)


def test_the_same_command_gives_the_same_report_and_sheet(tmp_path, toon_dataset, rad_model):
    data = tmp_path / "data"
    shutil.copytree(toon_dataset, data)
    assert evaluate(rad_model, "--data", data, "--sheet-rows", "2") == ExitCode.OK
    out = data / "evaluation" / "rad"  # the default output folder: DATASET/evaluation/<model name>
    first = ((out / "report.json").read_bytes(), (out / "sheet.png").read_bytes())
    assert evaluate(rad_model, "--data", data, "--sheet-rows", "2") == ExitCode.OK
    assert ((out / "report.json").read_bytes(), (out / "sheet.png").read_bytes()) == first
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.size == (3 * (192 + 4) + 4, 18 + 2 * (160 + 4) + 4)


def test_an_int8_evaluation_goes_beside_the_fp32_one(tmp_path, toon_dataset, rad_model):
    data = tmp_path / "data"
    shutil.copytree(toon_dataset, data)
    model = tmp_path / "toy" / "model"  # a folder named model takes its parent's name: toy
    shutil.copytree(rad_model, model)
    assert evaluate(model, "--data", data, "--sheet-rows", "1") == ExitCode.OK
    assert main(["quantize", str(model), "--data", str(data)]) == ExitCode.OK
    assert evaluate(model, "--data", data, "--sheet-rows", "1", "--precision", "int8") == ExitCode.OK
    fp32, int8 = report_of(data / "evaluation" / "toy"), report_of(data / "evaluation" / "toy-int8")
    assert ":int8:" in int8["model"]["id"] and ":int8" not in fp32["model"]["id"]


def test_split_limit_and_no_denoise(tmp_path, toon_dataset, rad_model):
    data = tmp_path / "data"
    shutil.copytree(toon_dataset, data)
    (data / "dataset.json").write_text(json.dumps({"recipe": {"target": {"kind": "enhance"}}}))
    out = tmp_path / "out"
    assert evaluate(rad_model, "--data", data, "--split", "train", "--limit", "1", "--no-denoise",
                    "--out", out) == ExitCode.OK  # enhance, but --no-denoise: Blender never starts
    report = report_of(out)
    assert report["split"] == "train" and report["count"] == 1 and report["denoise"] is None
    assert report["methods"] == ["model", "input"] and not (out / "denoise").exists()


def without_rows(data: Path, keep) -> None:
    rows = [json.loads(line) for line in (data / "pairs.jsonl").read_text().splitlines()]
    (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if keep(r)))


@pytest.mark.parametrize("problem", ["no dataset", "no pairs.jsonl", "empty split", "no model folder",
                                     "unknown preset", "untrained preset", "missing target", "target size"])
def test_bad_input_is_exit_code_2_and_writes_nothing(tmp_path, toon_dataset, rad_model, problem, monkeypatch,
                                                     capsys):
    data = tmp_path / "data"
    shutil.copytree(toon_dataset, data)
    model = str(rad_model)
    monkeypatch.setenv(PRESETS_ENV, str(tmp_path / "presets"))
    (tmp_path / "presets" / "toon").mkdir(parents=True)
    if problem == "no dataset":
        data, expected = tmp_path / "nowhere", "dataset folder not found"
    elif problem == "no pairs.jsonl":
        (data / "pairs.jsonl").unlink()
        expected = "is not a paired dataset: pairs.jsonl not found"
    elif problem == "empty split":
        without_rows(data, lambda row: row["split"] == "train")
        expected = "has no pair in split 'val'; splits present: train (2 pairs)"
    elif problem == "no model folder":
        model, expected = str(tmp_path / "no_model"), "model folder not found"
    elif problem == "unknown preset":
        model, expected = "oil", "MODEL 'oil' is neither a model folder nor a preset: no preset 'oil'"
    elif problem == "untrained preset":
        model, expected = "toon", "preset 'toon' has no trained model yet"
    elif problem == "missing target":
        (data / "scenes" / "a" / "targets" / "target_000004.png").unlink()
        expected = "1 file(s) of split 'val' listed in pairs.jsonl are missing: "
    else:
        target = data / "scenes" / "b" / "targets" / "target_000005.exr"
        target.unlink()
        from .conftest import write_target

        write_target(target, np.zeros((3, 8, 8), np.float32))
        expected = "target is (8, 8) but input"
    out = tmp_path / "out"
    assert evaluate(model, "--data", data, "--out", out) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "error:" in err and expected in err, err
    if problem != "target size":  # found before any work: nothing written
        assert not out.exists()
    assert not (out / "report.json").exists()
