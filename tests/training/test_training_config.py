"""Training configs: readable defaults, strict keys, resolved TOML round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from stylepass.core.models import ConfigError, UNetConfig
from stylepass.training.loop.config import TrainConfig, config_from_dict, config_to_toml, load_config


def test_empty_config_gives_the_documented_defaults() -> None:
    config = config_from_dict({})
    assert config == TrainConfig()
    assert config.model.family == "rad" and config.loss.l1 == 100.0 and config.train.crop_size == 256


def test_resolved_toml_round_trips(tmp_path: Path) -> None:
    config = config_from_dict({"model": {"family": "unet", "depth": 3}, "train": {"steps": 7, "lr_g": 1},
                               "loss": {"adversarial_kind": "hinge"}})
    assert config.model == UNetConfig(depth=3) and config.train.lr_g == 1.0
    text = config_to_toml(config)
    assert "[discriminator]" in text and "n_layers = 3" in text
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path) == config
    assert tomllib.loads(text)["loss"]["adversarial_kind"] == "hinge"


def test_unknown_keys_and_sections_are_named_with_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nsteps = 10\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError,
                       match=r"bad.toml: unknown key\(s\) in \[train\]: learning_rate; allowed: steps, batch_size"):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown section.*optimizer; allowed sections: "
                                          "model, data, train, loss, discriminator, metrics"):
        config_from_dict({"optimizer": {"lr": 1}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in \[model\]: depth"):
        config_from_dict({"model": {"family": "rad", "depth": 3}})


def test_bad_values_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.steps must be int"):
        config_from_dict({"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match="train.batch_size must be >= 1"):
        config_from_dict({"train": {"batch_size": 0}})
    with pytest.raises(ConfigError, match="train.lr_g must be a finite number > 0, got nan"):
        config_from_dict({"train": {"lr_g": float("nan")}})
    with pytest.raises(ConfigError, match="train.lr_d must be a finite number > 0, got inf"):
        config_from_dict({"train": {"lr_d": float("inf")}})
    with pytest.raises(ConfigError, match="loss.l1 must be a finite number >= 0, got nan"):
        config_from_dict({"loss": {"l1": float("nan")}})
    with pytest.raises(ConfigError, match="adversarial_kind = 'wgan'; allowed: lsgan, hinge"):
        config_from_dict({"loss": {"adversarial_kind": "wgan"}})
    with pytest.raises(ConfigError, match="perceptual_weights = a local VGG16 .safetensors"):
        config_from_dict({"loss": {"perceptual": 0.1}})
    path = tmp_path / "broken.toml"
    path.write_text("[train\n")
    with pytest.raises(ConfigError, match="broken.toml: invalid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("pointer, message", [
    ("{broken", "is damaged .*delete it to start the run again"),
    ("[1]", "is damaged"),
    ('{"dir": "../../elsewhere"}', "a checkpoint is a folder beside it .*never a path"),
    ('{"dir": "/etc"}', "never a path"),
])
def test_a_damaged_or_escaping_latest_json_is_refused(tmp_path: Path, pointer: str, message: str) -> None:
    from stylepass.training.loop.checkpoint import CheckpointError, latest_checkpoint

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.json").write_text(pointer)
    with pytest.raises(CheckpointError, match=message):
        latest_checkpoint(tmp_path)
