"""ONNX Runtime as the default runtime: it runs without torch, writes a missing or out-of-date
model.onnx from the weights, and refuses ONNX files that are not Stylepass models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.core.cli import main
from stylepass.core.inference.stylise import load_styliser
from stylepass.core.io.model_files import MODEL_CONFIG, MODEL_WEIGHTS, ONNX_MODEL
from stylepass.core.models import UNetConfig

from .conftest import TINY_RAD, write_model

# Runs `stylepass stylise` in a Python where `import torch` fails (sys.modules entry None).
WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None
from stylepass.core.cli import main
code = main(sys.argv[1:])
assert "torch" not in {name.split(".")[0] for name, module in sys.modules.items() if module is not None}
sys.exit(code)
"""


def stylise_without_torch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "stylise", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def onnx_only_model(tmp_path: Path) -> Path:
    """A model folder with model.onnx alone, as the Blender extension ships presets."""
    source = write_model(tmp_path / "source", TINY_RAD)
    load_styliser(source, "cpu")  # writes model.onnx from the weights
    folder = tmp_path / "onnx_only"
    folder.mkdir()
    shutil.copy(source / ONNX_MODEL, folder / ONNX_MODEL)
    return folder


def test_stylise_runs_without_torch(tmp_path, export_folder, onnx_only_model):
    result = stylise_without_torch(export_folder, "--model", onnx_only_model, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" in result.stderr and len(list((tmp_path / "out").glob("stylised_*.exr"))) == 3


def test_a_stale_onnx_file_is_rewritten_from_the_weights(tmp_path, export_folder):
    model_dir = write_model(tmp_path / "model", TINY_RAD, seed=0)
    first = load_styliser(model_dir, "cpu")
    written = (model_dir / ONNX_MODEL).read_bytes()
    write_model(tmp_path / "model", TINY_RAD, seed=1)  # retrained: new weights, the old ONNX beside them
    second = load_styliser(model_dir, "cpu")
    assert second.model_id != first.model_id and (model_dir / ONNX_MODEL).read_bytes() != written
    torch_run = load_styliser(model_dir, "cpu", engine="torch")
    assert torch_run.model_id == second.model_id


def test_an_onnx_file_needed_without_torch_says_how_to_write_it(tmp_path, export_folder):
    model_dir = write_model(tmp_path / "model", TINY_RAD)
    result = stylise_without_torch(export_folder, "--model", model_dir, "--out", tmp_path / "out")
    assert result.returncode == ExitCode.BAD_INPUT
    assert f"has no {ONNX_MODEL} and this Python" in result.stderr
    assert f"stylepass export-model {model_dir} --out {model_dir} --onnx" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_onnx_files_that_are_not_stylepass_models_are_refused(tmp_path, export_folder, onnx_only_model, capsys):
    def stylise(model: Path) -> str:
        assert main(["stylise", str(export_folder), "--model", str(model), "--out", str(tmp_path / "out")]) == 2
        return capsys.readouterr().err

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "foreign", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), foreign / ONNX_MODEL)
    assert "is not a Stylepass model: it lacks the input(s) beauty (its inputs: x)" in stylise(foreign)

    no_metadata = tmp_path / "no_metadata"
    no_metadata.mkdir()
    model = onnx.load(str(onnx_only_model / ONNX_MODEL))
    del model.metadata_props[:]
    onnx.save(model, no_metadata / ONNX_MODEL)
    assert "lacks Stylepass's metadata" in stylise(no_metadata)

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / ONNX_MODEL).write_bytes((onnx_only_model / ONNX_MODEL).read_bytes()[:500])
    assert f"cannot load {corrupt / ONNX_MODEL}" in stylise(corrupt)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"holds neither {ONNX_MODEL} nor {MODEL_WEIGHTS}" in stylise(empty)
    assert not (tmp_path / "out").exists()
    assert not (empty / MODEL_CONFIG).exists()


def test_a_config_change_alone_rewrites_the_onnx_file_and_changes_the_model_id(tmp_path):
    config = UNetConfig(base_width=4, depth=2, kuwahara_radius=2)
    model_dir = write_model(tmp_path / "model", config)
    first = load_styliser(model_dir, "cpu")
    data = json.loads((model_dir / MODEL_CONFIG).read_text())
    data["model"]["kuwahara_radius"] = 5  # the filter lives in the config alone, not in the weights
    (model_dir / MODEL_CONFIG).write_text(json.dumps(data))
    second = load_styliser(model_dir, "cpu")
    assert second.model_id != first.model_id
    assert second.model_id == load_styliser(model_dir, "cpu", engine="torch").model_id
