"""The benchmark runs the real training step on random tensors and reports its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stylepass.training.bench.train_config import main

CONFIG = """
[model]
family = "rad"
widths = [4, 8]
blocks = [1, 1]
gbuffer_widths = [4, 4]

[train]
batch_size = 2
crop_size = 32

[discriminator]
base_width = 4
n_layers = 2
"""


def test_benchmark_prints_figures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    assert main([str(config), "--device", "cpu", "--frame", "27x45", "--steps", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["family"] == "rad" and result["frame"] == [27, 45] and result["device"] == "cpu"
    assert result["inference_ms"] > 0 and result["train_steps_per_s"] > 0 and result["peak_memory_mib"] is None
    assert result["generator_parameters"] > 0
    with pytest.raises(SystemExit):
        main([str(config), "--frame", "wide"])


def test_benchmark_without_cuda_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the message shown without CUDA")
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    assert main([str(config), "--device", "cuda"]) == 1
    assert "use --device cpu" in capsys.readouterr().err
