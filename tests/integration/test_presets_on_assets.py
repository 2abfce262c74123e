"""Every shipped preset loads and stylises a frame of each shared real asset on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from stylepass.core.inference.stylise import load_styliser, presets_dir, read_frame
from stylepass.core.io.gbuffer import exported_frames
from stylepass.core.io.preview_images import linear_to_srgb8

PRESETS = sorted(p.parent.parent.name for p in presets_dir().glob("*/model/config.json"))


def test_the_four_presets_ship():
    assert {"enhance", "toon", "painterly", "sketch"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_stylises_every_shared_asset(asset_exports, preset):
    styliser = load_styliser(presets_dir() / preset / "model", device="cpu", name=preset)
    assert styliser.device == "cpu" and styliser.runtime.startswith("onnxruntime")
    for asset, run in sorted(asset_exports.items()):
        frame = read_frame(exported_frames(run.out)[0])
        rgb = styliser.stylise(frame)
        assert rgb.shape == (3, *frame.size) and rgb.dtype == np.float32, asset
        assert np.isfinite(rgb).all() and rgb.min() >= 0, asset
        shown, before = linear_to_srgb8(rgb).astype(float), linear_to_srgb8(frame.beauty).astype(float)
        # A preset changes the picture (not an identity), without washing it out to one colour. Enhance
        # corrects light, it does not restyle: on the demo scene it moves pixels by about 2 of 255.
        changed = 0.5 if preset == "enhance" else 2.0
        assert np.abs(shown - before).mean() > changed, f"{preset} left {asset} unchanged"
        assert shown.std() > 1.5, f"{preset} turned {asset} into one flat colour"
        np.testing.assert_array_equal(rgb, styliser.stylise(frame), err_msg=f"{preset} on {asset} is not deterministic")
