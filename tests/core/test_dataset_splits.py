"""Scene splits of dataset recipes (train / held-out validation)."""

from __future__ import annotations

import pytest

from stylepass.blender_addon.contract.dataset_recipe import frame_split, validation_split


@pytest.mark.parametrize("fraction, expected_val", [(0.0, 0), (0.2, 4), (0.25, 5), (0.5, 10), (1.0, 20)])
def test_validation_split_holds_out_the_asked_share(fraction, expected_val):
    splits = [validation_split(i, fraction) for i in range(20)]
    assert splits.count("val") == expected_val
    assert set(splits) <= {"train", "val"}


def test_fraction_one_is_an_evaluation_set_of_held_out_scenes_only():
    assert {validation_split(i, 1.0) for i in range(7)} == {"val"}
    assert {frame_split(f, 1, 1.0) for f in range(1, 50)} == {"val"}
