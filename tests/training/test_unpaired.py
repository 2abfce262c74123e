"""Unpaired (EPE-style) training: matched target crops, config rules, and a style that is learnt."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from stylepass.blender_addon.contract.dataset_layout import DatasetError
from stylepass.core.models import ConfigError
from stylepass.core.models.config import build_generator
from stylepass.core.models.serialization import load_tensors
from stylepass.training.data.paired_dataset import PairedDataset
from stylepass.training.data.unpaired_dataset import TargetPatchIndex, UnpairedDataset, patch_descriptor
from stylepass.training.loop.checkpoint import latest_checkpoint
from stylepass.training.loop.config import config_from_dict
from stylepass.training.loop.run_log import read_metrics
from stylepass.training.loop.trainer import train

MODEL = {"family": "rad", "widths": [8, 16], "blocks": [1, 1], "gbuffer_widths": [8, 8], "num_materials": 4}


def gradient_image(path: Path, horizontal: bool, size: int = 32) -> Path:
    ramp = torch.linspace(0, 255, size).round().to(torch.uint8)
    grid = ramp[None, :].expand(size, size) if horizontal else ramp[:, None].expand(size, size)
    Image.fromarray(grid[..., None].expand(size, size, 3).numpy()).save(path)
    return path


def test_patch_matching_pairs_similar_layouts(tmp_path: Path) -> None:
    index = TargetPatchIndex([gradient_image(tmp_path / "h.png", True), gradient_image(tmp_path / "v.png", False)], 16)
    assert len(index.positions) == 2 * 9  # a 3x3 grid of half-overlapping crops each
    left_to_right = torch.linspace(0, 1, 16)[None, None, :].expand(3, 16, 16)
    top_to_bottom = left_to_right.transpose(1, 2)
    for crop, image_index in ((left_to_right, 0), (top_to_bottom, 1)):
        nearest = index.nearest(patch_descriptor(crop[None])[0], 3)
        assert {index.positions[int(i)][0] for i in nearest} == {image_index}
        assert index.crop(int(nearest[0])).shape == (3, 16, 16)


def test_unpaired_items_carry_a_matched_target_crop(paired_dataset: Path, gbuffer_reader) -> None:
    data = UnpairedDataset(paired_dataset, paired_dataset / "targets", ("albedo",), 32, frame_reader=gbuffer_reader)
    assert len(data) == 4
    item = data[(1, 0.25, 0.75)]
    assert item["target"].shape == item["image"].shape == (3, 32, 32)
    assert torch.equal(item["target"], data[(1, 0.25, 0.75)]["target"])  # deterministic pick
    copy = pickle.loads(pickle.dumps(data))  # what spawned data-loader workers receive
    assert torch.equal(copy[(1, 0.25, 0.75)]["target"], item["target"])


def test_unpaired_config_and_data_errors(paired_dataset: Path, gbuffer_reader, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs data.target_images"):
        config_from_dict({"data": {"mode": "unpaired"}})
    with pytest.raises(ConfigError, match="set loss.l1 to 0.0"):
        config_from_dict({"data": {"mode": "unpaired", "target_images": "t"}})
    with pytest.raises(ConfigError, match="data.mode = 'half'; allowed: paired, unpaired"):
        config_from_dict({"data": {"mode": "half"}})
    with pytest.raises(DatasetError, match="target image folder not found"):
        UnpairedDataset(paired_dataset, tmp_path / "absent", (), 32, frame_reader=gbuffer_reader)
    with pytest.raises(DatasetError, match="holds no target images"):
        UnpairedDataset(paired_dataset, tmp_path, (), 32, frame_reader=gbuffer_reader)


def test_unpaired_training_moves_outputs_towards_the_target_domain(
    paired_dataset: Path, gbuffer_reader, lpips_weights: Path, tmp_path: Path
) -> None:
    config = config_from_dict(
        {
            "model": MODEL,
            "data": {"mode": "unpaired", "target_images": "targets"},
            "train": {"steps": 40, "batch_size": 4, "crop_size": 32, "num_workers": 0, "log_every": 10, "val_every": 0,
                      "lr_g": 2e-3, "lr_d": 2e-3},
            "loss": {"l1": 0.0, "content": 1.0, "adversarial": 1.0},
            "discriminator": {"base_width": 8, "n_layers": 2},
            "metrics": {"kid_weights": str(lpips_weights)},
        }
    )
    run = tmp_path / "run"
    result = train(config, paired_dataset, run, torch.device("cpu"), frame_reader=gbuffer_reader)
    assert result.step == 40 and set(result.validation) == {"val/content_psnr", "val/content_ssim", "val/kid"}
    assert any("loss/content" in r and "loss/adversarial" in r for r in read_metrics(run))
    trained = build_generator(config.model).eval()
    trained.load_state_dict(load_tensors(latest_checkpoint(run) / "generator.safetensors"))
    untrained = build_generator(config.model).eval()  # the identity
    val = PairedDataset(paired_dataset, "val", config.model.gbuffer_passes, frame_reader=gbuffer_reader)

    def colour_gap(generator: torch.nn.Module) -> float:
        """Mean absolute gap between output and target-domain mean colours on the val frames."""
        gaps = []
        for index in range(len(val)):
            item = val[index]
            with torch.no_grad():
                out = generator(item["image"][None], item["gbuffers"][None], item["material_id"][None])[0]
            gaps.append((out.mean(dim=(1, 2)) - item["target"].mean(dim=(1, 2))).abs().mean())
        return float(torch.stack(gaps).mean())

    assert colour_gap(trained) < 0.6 * colour_gap(untrained)
