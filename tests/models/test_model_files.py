"""Deployable model dirs: round trip, strict configs, refusal of anything but safetensors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from stylepass.core.models import (
    ConfigError,
    ModelFileError,
    RADConfig,
    UNetConfig,
    build_generator,
    load_model,
    model_config_from_dict,
    model_config_to_dict,
    save_model,
)
from stylepass.core.models.serialization import MODEL_CONFIG, MODEL_WEIGHTS


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    config = RADConfig(widths=(4, 8), blocks=(1, 1), gbuffer_widths=(4, 4), gbuffer_passes=("normal",))
    torch.manual_seed(0)
    model = build_generator(config)
    with torch.no_grad():
        model.head.weight.normal_()
    save_model(model, config, tmp_path / "model")
    loaded, loaded_config = load_model(tmp_path / "model")
    with pytest.raises(ModelFileError, match="is a file; give the model dir"):
        load_model(tmp_path / "model" / MODEL_WEIGHTS)
    assert loaded_config == config
    assert not loaded.training
    x = (torch.rand(1, 3, 9, 11), torch.rand(1, 4, 9, 11), torch.zeros(1, 9, 11, dtype=torch.long))
    with torch.no_grad():
        assert torch.equal(model.eval()(*x), loaded(*x))
    written = json.loads((tmp_path / "model" / MODEL_CONFIG).read_text())
    assert written["model"]["family"] == "rad" and written["model"]["gbuffer_passes"] == ["normal"]
    assert not list((tmp_path / "model").glob("*.tmp"))


def test_pickled_weights_are_refused_without_unpickling(tmp_path: Path) -> None:
    config = UNetConfig(base_width=4, depth=2)
    save_model(build_generator(config), config, tmp_path)
    torch.save(build_generator(config).state_dict(), tmp_path / MODEL_WEIGHTS)  # a zip pickle
    with pytest.raises(ModelFileError, match="refusing to load .*pickle/zip.*only loads safetensors"):
        load_model(tmp_path)
    with pytest.raises(ModelFileError, match="refusing to load .*pickle/zip"):
        load_model(tmp_path / MODEL_WEIGHTS)  # the file itself instead of the dir
    (tmp_path / MODEL_WEIGHTS).write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(tmp_path)
    (tmp_path / MODEL_WEIGHTS).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ModelFileError, match="not safetensors"):
        load_model(tmp_path)


def test_missing_files_and_mismatched_weights_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="config.json not found"):
        load_model(tmp_path)
    small, big = UNetConfig(base_width=4, depth=2), UNetConfig(base_width=4, depth=3)
    save_model(build_generator(small), small, tmp_path)
    (tmp_path / MODEL_WEIGHTS).unlink()
    with pytest.raises(ModelFileError, match="model weights not found"):
        load_model(tmp_path)
    save_model(build_generator(small), small, tmp_path)
    config_file = tmp_path / MODEL_CONFIG
    data = json.loads(config_file.read_text())
    data["model"]["depth"] = big.depth
    config_file.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="does not match config.json"):
        load_model(tmp_path)


def test_an_untrusted_config_is_checked_against_the_weights_before_anything_is_allocated(tmp_path: Path) -> None:
    config = UNetConfig(base_width=4, depth=2)
    save_model(build_generator(config), config, tmp_path)
    config_file = tmp_path / MODEL_CONFIG
    data = json.loads(config_file.read_text())
    data["model"]["base_width"] = 1_000_000  # a real model this wide would need terabytes
    config_file.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=r"does not match config.json: .*downs.0.conv.weight \(8, 4, 4, 4\) "
                                             r"\(config: \(2000000, 1000000, 4, 4\)\)"):
        load_model(tmp_path)
    data["model"]["base_width"] = 4
    data["trained_on"] = "yesterday"
    config_file.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="unknown key\\(s\\) trained_on; allowed: format, version, model"):
        load_model(tmp_path)


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    config = UNetConfig(base_width=4, depth=2)
    model = build_generator(config)
    with torch.no_grad():
        model.head.weight[0, 0, 0, 0] = float("nan")
    save_model(model, config, tmp_path)
    with pytest.raises(ModelFileError, match="holds NaN or Inf weights \\(head.weight\\): the training that made it "
                                             "diverged"):
        load_model(tmp_path)


def test_new_unet_options_are_written_only_when_on() -> None:
    """A model that does not use them keeps the config.json keys earlier versions read."""
    plain = model_config_to_dict(UNetConfig(gbuffer_passes=("albedo", "normal", "depth")))
    assert "demodulated" not in plain and "edge_guides" not in plain and plain["residual"] is False
    on = UNetConfig(gbuffer_passes=("albedo", "normal", "depth"), demodulated=True, edge_guides=True)
    assert model_config_to_dict(on)["demodulated"] is True and model_config_from_dict(model_config_to_dict(on)) == on
    assert model_config_from_dict(plain) == UNetConfig(gbuffer_passes=("albedo", "normal", "depth"))


def test_model_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ConfigError,
                       match=r"unknown key\(s\) in \[model\]: colour, widht; allowed: family, gbuffer_passes, widths"):
        model_config_from_dict({"family": "rad", "widht": 3, "colour": 1})
    with pytest.raises(ConfigError, match="model.family = 'gan'; allowed: unet, rad"):
        model_config_from_dict({"family": "gan"})
    with pytest.raises(ConfigError,
                       match="unknown G-buffer pass.*specular.*allowed: albedo, glossy_albedo, normal, depth, motion"):
        model_config_from_dict({"family": "unet", "gbuffer_passes": ["specular"]})
    with pytest.raises(ConfigError, match="same length"):
        model_config_from_dict({"family": "rad", "widths": [8, 16], "blocks": [1]})
    with pytest.raises(ConfigError, match="model.base_width must be int"):
        model_config_from_dict({"family": "unet", "base_width": "wide"})
    assert model_config_from_dict({"family": "unet", "depth": 3}) == UNetConfig(depth=3)
