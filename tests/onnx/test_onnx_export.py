"""``stylepass export-model --onnx``: ONNX graphs that match PyTorch at any size, with metadata.

No ``__init__.py`` here on purpose: ``tests/`` is no package, so a package ``tests/onnx`` would be
imported as ``onnx`` and shadow the real onnx library.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.core.cli.train_command import register
from stylepass.core.inference import onnx_export
from stylepass.core.inference.onnx_export import (
    export_onnx,
    frame_feed,
    frame_inputs,
    onnx_inputs,
    sample_frame,
    torch_reference,
)
from stylepass.core.io.model_files import ONNX_MODEL
from stylepass.core.models.config import build_generator, model_config_from_dict
from stylepass.core.models.serialization import save_model
from stylepass.training.loop.checkpoint import save_checkpoint

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "unet": {"family": "unet", "gbuffer_passes": ["albedo", "normal", "depth"], "base_width": 4, "depth": 3},
    # the demodulated output and the edge guides are inside the generator: the graph computes them too
    "unet_demodulated": {"family": "unet", "gbuffer_passes": ["depth", "albedo", "normal"], "base_width": 4,
                         "depth": 3, "demodulated": True, "edge_guides": True},
    "unet_glossy": {"family": "unet", "gbuffer_passes": ["albedo", "glossy_albedo", "normal"], "base_width": 4,
                    "depth": 3, "demodulated": True},
    # the painterly stage: a fixed Kuwahara filter after the network
    "unet_kuwahara": {"family": "unet", "gbuffer_passes": ["albedo", "normal"], "base_width": 4, "depth": 3,
                      "kuwahara_radius": 3},
    "rad": {
        "family": "rad", "gbuffer_passes": ["albedo", "normal", "depth", "motion"],
        "widths": [4, 8, 8], "blocks": [1, 1, 1], "gbuffer_widths": [4, 4, 8], "num_materials": 4,
    },
}
# Odd, tiny, a multiple of every padding step, and wide: the graph must take each of them.
SIZES = [(1, 1), (31, 17), (64, 64), (9, 130)]


def tiny_generator(family: str, seed: int = 0):
    """A tiny generator with random weights everywhere (the RAD head starts at zero otherwise)."""
    config = model_config_from_dict(TINY[family])
    torch.manual_seed(seed)
    generator = build_generator(config).eval()
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.normal_(0.0, 0.3)
    return generator, config


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stylepass")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)


@pytest.fixture(scope="module", params=sorted(TINY))
def exported(request, tmp_path_factory: pytest.TempPathFactory):
    """(generator, config, path of its model.onnx) for each tiny family."""
    generator, config = tiny_generator(request.param)
    path = tmp_path_factory.mktemp(request.param) / ONNX_MODEL
    worst = export_onnx(generator, config, path)
    assert worst <= onnx_export.TOLERANCE
    return generator, config, path


def test_onnx_matches_pytorch_at_any_size_and_batch(exported) -> None:
    generator, config, path = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed, (height, width) in enumerate(SIZES):
        frame = sample_frame(config, height, width, seed=10 + seed)
        reference = torch_reference(generator, config, frame)
        rgb, rgb_linear = session.run(["rgb", "rgb_linear"], frame_feed(frame, config))
        assert rgb.shape == (1, 3, height, width)
        assert np.abs(rgb - reference).max() <= 1e-3, (height, width)
        assert np.abs(rgb_linear / (1 + rgb_linear) - reference).max() <= 1e-3
    # A batch of two frames gives each frame's own result (depth is normalised per frame).
    frames = [sample_frame(config, 20, 33, seed=s) for s in (1, 2)]
    frames[1].depth = frames[1].depth * 7.0
    feeds = [frame_feed(f, config) for f in frames]
    batch = {name: np.concatenate([feed[name] for feed in feeds]) for name in feeds[0]}
    rgb = session.run(["rgb"], batch)[0]
    for index, frame in enumerate(frames):
        assert np.abs(rgb[index : index + 1] - torch_reference(generator, config, frame)).max() <= 1e-3


def test_onnx_graph_inputs_outputs_and_metadata(exported) -> None:
    _, config, path = exported
    model = onnx.load(str(path))
    specs, defaulted = onnx_inputs(config), frame_inputs(config)
    assert [i.name for i in model.graph.input] == [s.name for s in [*specs, *defaulted]]
    for graph_input, spec in zip(model.graph.input, specs, strict=False):
        dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        assert dims == ["batch", spec.channels, "height", "width"]
        assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # the whole frame's depth and size for tiles: inputs an engine may leave out (defaults of 0)
    expected = {"depth": "frame_depth_far", "motion": "frame_extent"}
    assert [s.name for s in defaulted] == [expected[p] for p in config.gbuffer_passes if p in expected]
    defaults = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert all(defaults[s.name].tolist() == [0.0] for s in defaulted)
    assert [o.name for o in model.graph.output] == ["rgb", "rgb_linear"]
    assert all(o.type.tensor_type.shape.dim[1].dim_value == 3 for o in model.graph.output)
    assert ("material_id" in [s.name for s in specs]) == (config.family == "rad")
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) <= 15
    assert "If" not in {node.op_type for node in model.graph.node}  # no control flow for engines
    meta = {prop.key: prop.value for prop in model.metadata_props}
    assert meta["stylepass.family"] == config.family
    assert meta["stylepass.version"] and meta["stylepass.version"] != "unknown"
    assert [i["name"] for i in json.loads(meta["stylepass.inputs"])] == [s.name for s in [*specs, *defaulted]]
    assert int(meta["stylepass.multiple"]) == build_generator(config).multiple
    assert [o["name"] for o in json.loads(meta["stylepass.outputs"])] == ["rgb", "rgb_linear"]
    assert model_config_from_dict(json.loads(meta["stylepass.model_config"])) == config


def test_learned_convolutions_have_fixed_weights(exported) -> None:
    """Every learned convolution's weights are initializers: ONNX Runtime packs those once for its
    fast blocked layout and int8 quantization can read them (the U-Net's up blocks used to slice
    their weights at run time by a traced shape: 3x slower on the CPU)."""
    _, _, path = exported
    model = onnx.load(str(path))
    fixed = {initializer.name for initializer in model.graph.initializer}
    computed = [node.name for node in model.graph.node
                if node.op_type == "Conv" and "/kuwahara/" not in node.name and node.input[1] not in fixed]
    assert computed == []


def test_export_model_cli_writes_onnx_beside_a_shipped_preset(tmp_path: Path, capsys) -> None:
    preset = tmp_path / "toon"
    shutil.copytree(REPO / "presets" / "toon" / "model", preset)
    weights_before = (preset / "model.safetensors").stat().st_mtime_ns
    assert run_cli("export-model", str(preset), "--out", str(preset), "--onnx") == ExitCode.OK
    assert "ONNX model written to" in capsys.readouterr().out
    assert (preset / "model.safetensors").stat().st_mtime_ns == weights_before  # not rewritten
    assert sorted(p.name for p in preset.iterdir()) == [  # the shipped int8 model is left as it was
        "config.json", "model.int8.onnx", "model.onnx", "model.safetensors"]
    session = onnxruntime.InferenceSession(str(preset / ONNX_MODEL), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["beauty", "albedo", "glossy_albedo", "normal", "depth", "valid"]
    # the demodulated head's softplus is written in operators ONNX Runtime vectorises (models.unet.positive)
    assert "Softplus" not in {node.op_type for node in onnx.load(str(preset / ONNX_MODEL)).graph.node}


def test_export_model_cli_exports_a_training_run_to_onnx(tmp_path: Path) -> None:
    generator, config = tiny_generator("rad", seed=3)
    run = tmp_path / "run"
    run.mkdir()
    passes = ", ".join(f'"{p}"' for p in config.gbuffer_passes)
    (run / "config.toml").write_text(
        f'[model]\nfamily = "rad"\ngbuffer_passes = [{passes}]\nwidths = [4, 8, 8]\nblocks = [1, 1, 1]\n'
        "gbuffer_widths = [4, 4, 8]\nnum_materials = 4\n"
    )
    save_checkpoint(run, 1, {"generator": generator}, {})
    out = tmp_path / "model"
    assert run_cli("export-model", str(run), "--out", str(out), "--onnx") == ExitCode.OK
    frame = sample_frame(config, 15, 22, seed=5)
    session = onnxruntime.InferenceSession(str(out / ONNX_MODEL), providers=["CPUExecutionProvider"])
    rgb = session.run(["rgb"], frame_feed(frame, config))[0]
    assert np.abs(rgb - torch_reference(generator, config, frame)).max() <= 1e-3


def test_missing_onnx_packages_exit_2_with_install_hint(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    out = tmp_path / "out"
    code = run_cli("export-model", str(REPO / "presets" / "toon" / "model"), "--out", str(out), "--onnx")
    assert code == ExitCode.BAD_INPUT
    assert "pip install onnx onnxruntime" in capsys.readouterr().err
    assert not out.exists()  # checked before anything is written


@pytest.mark.parametrize("make_source", ["missing", "empty_dir", "a_file"])
def test_bad_source_exit_2(tmp_path: Path, capsys, make_source: str) -> None:
    source = tmp_path / "source"
    if make_source == "empty_dir":
        source.mkdir()
    elif make_source == "a_file":
        source.write_text("not a model")
    assert run_cli("export-model", str(source), "--out", str(tmp_path / "out"), "--onnx") == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "is not a training run" in err and "nor a model dir" in err


def test_mismatch_is_refused_and_leaves_no_file(tmp_path: Path, monkeypatch, capsys) -> None:
    generator, config = tiny_generator("unet")
    model_dir = tmp_path / "model"
    save_model(generator, config, model_dir)
    # A graph that does not reproduce PyTorch: the reference stylises a different generator.
    other, _ = tiny_generator("unet", seed=1)
    monkeypatch.setattr(onnx_export, "torch_reference", lambda _g, c, f: torch_reference(other, c, f))
    assert run_cli("export-model", str(model_dir), "--out", str(model_dir), "--onnx") == 1
    assert "differs from PyTorch by" in capsys.readouterr().err
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors"]  # no temp file
