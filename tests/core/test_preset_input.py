"""The render a preset was trained on (its dataset.toml's [input]) and the warning on another render."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylepass.blender_addon.contract.preset_input import TrainedInput, input_warning, trained_input

EEVEE_RT = TrainedInput("eevee", True)


def preset(tmp_path: Path, recipe: str | None) -> Path:
    model = tmp_path / "enhance" / "model"
    model.mkdir(parents=True)
    if recipe is not None:
        (tmp_path / "enhance" / "dataset.toml").write_text(recipe)
    return model


@pytest.mark.parametrize("recipe, expected", [
    ('[input]\nengine = "eevee"\nsamples = 16\nindirect = true\n', EEVEE_RT),
    ('[target]\nkind = "toon"\n', TrainedInput("cycles", False)),  # the recipe defaults
    (None, None),  # a model folder of the user's own: no recipe
    ("[input\n", None),  # unreadable: no warning rather than a wrong one
    ('[input]\nengine = "workbench"\n', None),
])
def test_trained_input_reads_the_recipe(tmp_path, recipe, expected):
    assert trained_input(preset(tmp_path, recipe)) == expected


def test_shipped_enhance_expects_eevee_with_ray_tracing():
    model = Path(__file__).parents[2] / "presets" / "enhance" / "model"
    assert trained_input(model) == EEVEE_RT


@pytest.mark.parametrize("engine, ray_tracing, expected", [
    ("BLENDER_EEVEE", True, None),
    ("BLENDER_EEVEE_NEXT", None, None),  # ray tracing unknown (an export's sidecar): engine only
    ("CYCLES", None, "enhance was trained on Eevee renders with ray tracing on; this is a Cycles render: "
                     "render in Eevee for its best result"),
    ("BLENDER_EEVEE", False, "enhance was trained on Eevee renders with ray tracing on: turn Eevee's ray "
                             "tracing on"),
    ("BLENDER_WORKBENCH", None, None),
])
def test_input_warning_names_what_to_change(engine, ray_tracing, expected):
    assert input_warning("enhance", EEVEE_RT, engine, ray_tracing) == expected
    assert input_warning("my_model", None, engine, ray_tracing) is None
