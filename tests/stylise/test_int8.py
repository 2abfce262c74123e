"""int8 models: ``stylepass quantize`` writes model.int8.onnx (Kuwahara stage left in float32),
``stylise --precision int8`` runs it, and a missing or out-of-date one is refused with the command
that makes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.blender_addon.contract.worker_protocol import INT8_MODEL
from stylepass.core.cli import main
from stylepass.core.inference.onnx_quantize import (
    CALIBRATION_CROPS,
    CALIBRATION_SIDE,
    calibration_frames,
    crop_corners,
    psnr,
    quantize_model,
)
from stylepass.core.inference.stylise import StyliseError, frame_jobs, load_styliser, read_frame
from stylepass.core.io.model_files import file_digest
from stylepass.core.models import UNetConfig

from .conftest import smooth_frame, write_export, write_model

# A painterly-like model: edge guides and a Kuwahara stage that must stay float32.
TINY_PAINTERLY = UNetConfig(base_width=4, depth=2, gbuffer_passes=("albedo", "normal", "depth"), edge_guides=True,
                            kuwahara_radius=2)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory, export_folder: Path) -> Path:
    """A tiny painterly-like model folder with its int8 model, calibrated on the export folder."""
    model_dir = write_model(tmp_path_factory.mktemp("int8") / "model", TINY_PAINTERLY)
    report = quantize_model(model_dir, export_folder, log=lambda line: None)
    assert report.path == model_dir / INT8_MODEL and report.calibration_frames >= 1
    return model_dir


def test_quantize_writes_an_int8_model_that_matches_fp32(quantized: Path, export_folder: Path) -> None:
    model = onnx.load(str(quantized / INT8_MODEL))
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    # every learned convolution reads dequantized int8 weights; the Kuwahara stage has no Q/DQ at all
    producers = {output: node for node in model.graph.node for output in node.output}
    for node in model.graph.node:
        if node.op_type == "Conv":
            quantized_weights = node.input[1] in producers and producers[node.input[1]].op_type == "DequantizeLinear"
            assert quantized_weights == ("/kuwahara/" not in node.name), node.name
    assert not [n.name for n in model.graph.node if "/kuwahara/" in n.name and "Quantize" in n.op_type]
    meta = {prop.key: prop.value for prop in model.metadata_props}
    assert meta["stylepass.precision"] == "int8" and meta["stylepass.family"] == "unet"
    check = json.loads(meta["stylepass.int8_check"])
    assert check["psnr_int8_vs_fp32_db"] > 30.0

    fp32 = load_styliser(quantized, "cpu")
    int8 = load_styliser(quantized, "cpu", precision="int8")
    assert int8.model_id == f"{fp32.model_id}:int8:{file_digest(quantized / INT8_MODEL)}" and "int8" in int8.runtime
    frame = read_frame(frame_jobs(export_folder, quantized / "out")[0].source)
    reference, result = fp32.stylise(frame), int8.stylise(frame)
    assert result.shape == reference.shape and np.isfinite(result).all()
    assert psnr(result / (1 + result), reference / (1 + reference)) > 30.0
    assert not np.array_equal(result, reference)  # it really ran the int8 graph


def test_stylise_precision_int8_cli(quantized: Path, export_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["stylise", str(export_folder), "--model", str(quantized), "--out", str(out), "--device", "cpu",
                 "--precision", "int8"]) == ExitCode.OK
    assert len(list(out.glob("stylised_*.exr"))) == 3
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(":int8:" in row["model"] for row in rows)
    # fp32 into the same folder redoes every frame: the int8 ones are another model's
    assert main(["stylise", str(export_folder), "--model", str(quantized), "--out", str(out),
                 "--device", "cpu"]) == ExitCode.OK
    assert "3 stylised, 0 already finished" in capsys.readouterr().err


def later_frames_folder(export_folder: Path, tmp_path: Path) -> Path:
    """An export folder of the last two frames of `export_folder` alone (other calibration frames)."""
    folder = tmp_path / "later_frames"
    folder.mkdir()
    rows = [json.loads(line) for line in (export_folder / "manifest.jsonl").read_text().splitlines()][-2:]
    for row in rows:
        for name in (row["exr"], row["sidecar"]):
            shutil.copy(export_folder / name, folder / name)
    (folder / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_frames_of_an_earlier_quantization_are_redone(quantized: Path, export_folder: Path, tmp_path: Path,
                                                       capsys) -> None:
    """Quantizing again (other calibration frames) makes another int8 model: a resumed stylise
    does not keep the frames the first one made."""
    model_dir = tmp_path / "model"
    shutil.copytree(quantized, model_dir)
    out = tmp_path / "out"
    arguments = ["stylise", str(export_folder), "--model", str(model_dir), "--out", str(out), "--precision", "int8"]
    assert main(arguments) == ExitCode.OK
    assert main(arguments) == ExitCode.OK
    assert "0 stylised, 3 already finished" in capsys.readouterr().err
    first = file_digest(model_dir / INT8_MODEL)
    later = later_frames_folder(export_folder, tmp_path)
    assert main(["quantize", str(model_dir), "--data", str(later)]) == ExitCode.OK
    assert file_digest(model_dir / INT8_MODEL) != first
    assert main(arguments) == ExitCode.OK
    assert "3 stylised, 0 already finished" in capsys.readouterr().err


def test_a_missing_int8_model_exits_2_saying_how_to_make_it(tmp_path: Path, export_folder: Path, capsys) -> None:
    model_dir = write_model(tmp_path / "model", TINY_PAINTERLY)
    code = main(["stylise", str(export_folder), "--model", str(model_dir), "--out", str(tmp_path / "out"),
                 "--precision", "int8"])
    assert code == ExitCode.BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())
    assert INT8_MODEL in err and "stylepass quantize" in err and "--precision fp32" in err
    with pytest.raises(StyliseError, match="ONNX Runtime only"):
        load_styliser(model_dir, "cpu", engine="torch", precision="int8")
    with pytest.raises(StyliseError, match="unknown precision"):
        load_styliser(model_dir, "cpu", precision="fp16")


def test_an_int8_model_of_other_weights_is_refused(quantized: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(quantized, model_dir)
    load_styliser(model_dir, "cpu", precision="int8")  # a copy of the folder is the same model
    write_model(model_dir, TINY_PAINTERLY, seed=1)  # retrained: new weights, old int8 file
    with pytest.raises(StyliseError, match="out of date") as error:
        load_styliser(model_dir, "cpu", precision="int8")
    assert error.value.kind == "bad_model" and "stylepass quantize" in str(error.value)
    (model_dir / INT8_MODEL).write_bytes((model_dir / "model.onnx").read_bytes())  # an fp32 graph renamed
    with pytest.raises(StyliseError, match="not an int8 model"):
        load_styliser(model_dir, "cpu", precision="int8")


def test_calibration_frames_of_a_dataset_and_of_an_export(tmp_path: Path, export_folder: Path) -> None:
    sources = sorted(export_folder.glob("frame_*.exr"))
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    rows = []
    for index, source in enumerate(sources):
        shutil.copy(source, dataset / source.name)
        shutil.copy(source.with_suffix(".json"), dataset / source.with_suffix(".json").name)
        Image.new("RGB", (48, 40)).save(dataset / f"target_{index}.png")
        rows.append({"input": source.name, "target": f"target_{index}.png",
                     "split": "val" if index == 2 else "train"})
    (dataset / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    calibrate, check = calibration_frames(dataset)
    assert [f.source.name for f in calibrate] == [s.name for s in sources[:2]]
    assert [f.source.name for f in check] == [sources[2].name] and check[0].target == dataset / "target_2.png"
    calibrate, check = calibration_frames(export_folder)
    assert {f.source for f in calibrate}.isdisjoint({f.source for f in check}) and calibrate and check
    with pytest.raises(StyliseError, match="neither a dataset"):
        calibration_frames(tmp_path / "dataset" / "..")


@pytest.mark.parametrize("frames", [1, 3, 16])
def test_calibration_crops_of_large_frames_cover_their_corners_and_edges(frames: int) -> None:
    """A 1080p frame is not calibrated on its centre alone: over the frames, the crops reach every
    corner, and about CALIBRATION_CROPS are taken in all; a small frame is one whole crop."""
    side = CALIBRATION_SIDE
    crops = [crop_corners(1080, 1920, side, index, frames) for index in range(frames)]
    taken = {corner for frame in crops for corner in frame}
    assert {(0, 0), (0, 1920 - side), (1080 - side, 0), (1080 - side, 1920 - side)} <= taken
    assert CALIBRATION_CROPS <= sum(map(len, crops)) <= CALIBRATION_CROPS + frames
    assert all(0 <= top <= 1080 - side and 0 <= left <= 1920 - side for top, left in taken)
    assert crop_corners(128, 96, side, 0, frames) == [(0, 0)]


def test_calibration_frames_without_a_pass_the_model_reads_exit_2(tmp_path: Path, capsys) -> None:
    """An export made before the glossy colour, to calibrate a model that reads it (toon)."""
    glossy = write_model(tmp_path / "glossy", UNetConfig(base_width=4, depth=2, demodulated=True,
                                                         gbuffer_passes=("albedo", "glossy_albedo", "normal")))
    old = tmp_path / "old_export"
    write_export(old, [smooth_frame(40, 48), smooth_frame(40, 48, peak=2.0)], passes=("albedo",))
    assert main(["quantize", str(glossy), "--data", str(old)]) == ExitCode.BAD_INPUT
    assert "lacks the pass(es) the model needs: glossy_albedo" in " ".join(capsys.readouterr().err.split())
    assert not (glossy / INT8_MODEL).exists()


def test_quantize_cli_bad_calibration_folder_exits_2(tmp_path: Path, capsys) -> None:
    model_dir = write_model(tmp_path / "model", TINY_PAINTERLY)
    assert main(["quantize", str(model_dir), "--data", str(tmp_path / "missing")]) == ExitCode.BAD_INPUT
    assert "calibration folder not found" in capsys.readouterr().err
    assert not (model_dir / INT8_MODEL).exists()


def test_the_worker_loads_an_int8_model_on_request(quantized: Path, tmp_path: Path) -> None:
    from stylepass.core.inference.worker import Worker

    replies: list[dict] = []
    worker = Worker(replies.append)
    worker.handle(json.dumps({"id": 1, "cmd": "load", "model": str(quantized), "device": "cpu", "precision": "int8"}))
    assert replies[-1]["ok"] and replies[-1]["model"]["runtime"].endswith(" int8")
    bare = write_model(tmp_path / "bare", TINY_PAINTERLY)
    worker.handle(json.dumps({"id": 2, "cmd": "load", "model": str(bare), "device": "cpu", "precision": "int8"}))
    assert replies[-1]["kind"] == "bad_model" and "stylepass quantize" in replies[-1]["error"]
    worker.handle(json.dumps({"id": 3, "cmd": "shutdown"}))


def test_an_int8_model_beside_model_onnx_alone(quantized: Path, tmp_path: Path) -> None:
    """A folder of ONNX files alone (as the Blender extension ships presets): the int8 model is
    checked against the model.onnx it was made from."""
    folder = tmp_path / "onnx_only"
    folder.mkdir()
    for name in ("model.onnx", INT8_MODEL):
        shutil.copy(quantized / name, folder / name)
    assert ":int8:" in load_styliser(folder, "cpu", precision="int8").model_id
    other = write_model(tmp_path / "other", TINY_PAINTERLY, seed=2)
    load_styliser(other, "cpu")  # writes its model.onnx
    shutil.copy(other / "model.onnx", folder / "model.onnx")  # model.onnx replaced, int8 kept
    with pytest.raises(StyliseError, match="out of date"):
        load_styliser(folder, "cpu", precision="int8")


def test_an_int8_model_of_another_model_onnx_is_refused_beside_the_weights(quantized: Path, tmp_path: Path) -> None:
    """model.onnx exported again (another exporter, a changed graph) from the same weights: the int8
    file quantized the old graph, and the command line refuses it as the extension (ONNX files alone) does."""
    model_dir = tmp_path / "model"
    shutil.copytree(quantized, model_dir)
    onnx_model = onnx.load(str(model_dir / "model.onnx"))
    onnx_model.metadata_props.add(key="re-exported", value="yes")
    onnx.save(onnx_model, str(model_dir / "model.onnx"))
    with pytest.raises(StyliseError, match="made from another model.onnx") as error:
        load_styliser(model_dir, "cpu", precision="int8")
    assert error.value.kind == "bad_model" and "stylepass quantize" in str(error.value)
    # and the extension's packager, which ships the ONNX files alone, refuses to ship it
    from stylepass.training.deploy.extension_package import check_current_onnx

    check_current_onnx(quantized, tmp_path)  # the folder as quantized: fine
    with pytest.raises(SystemExit, match="was not quantized from the model.onnx beside it"):
        check_current_onnx(model_dir, tmp_path)
