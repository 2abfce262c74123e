"""Target kinds and their parameters, with defaults and checks (Blender-free).

Recipes are checked against this outside Blender (``dataset_recipe``), and the renderers
in ``target_styles`` resolve their parameters with it inside Blender.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TARGET_KINDS = ("enhance", "toon", "painterly", "sketch")
KUWAHARA_VARIATIONS = ("anisotropic", "classic")


@dataclass(frozen=True)
class Param:
    """One parameter of a target kind: its default and what values it accepts."""

    default: Any
    allowed: str  # for error messages
    accepts: Callable[[Any], bool]


def is_int_at_least(minimum: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def is_number_in(low: float, high: float) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


TARGET_PARAMS: dict[str, dict[str, Param]] = {
    "enhance": {"samples": Param(128, "an integer >= 1", is_int_at_least(1))},
    "toon": {
        "bands": Param(3, "an integer >= 2", is_int_at_least(2)),
        "line_thickness": Param(1.5, "a number of pixels > 0", is_positive_number),
        # Eevee renders slowly through software GL; flat bands need few samples (8 looks as 32 does)
        "samples": Param(8, "an integer >= 1", is_int_at_least(1)),
    },
    # Brush strokes that read as paint at 256 px: a wide anisotropic Kuwahara whose strokes follow the
    # image's edges (full sharpness and eccentricity), and (look "auto") AgX's Punchy look where the
    # scene uses AgX, Blender's default, so the colours are those of paint, not of a washed-out render.
    "painterly": {
        "size": Param(14, "an integer >= 1 (pixels)", is_int_at_least(1)),
        "variation": Param("anisotropic", " or ".join(KUWAHARA_VARIATIONS),
                           lambda value: value in KUWAHARA_VARIATIONS),
        "sharpness": Param(1.0, "a number from 0 to 1", is_number_in(0.0, 1.0)),
        "eccentricity": Param(2.0, "a number from 0 to 2", is_number_in(0.0, 2.0)),
        "look": Param("auto", "\"auto\", \"scene\" (the scene's own) or a look of the scene's view transform",
                      lambda value: isinstance(value, str) and bool(value)),
        "samples": Param(32, "an integer >= 1", is_int_at_least(1)),
    },
    "sketch": {"line_thickness": Param(1.5, "a number of pixels > 0", is_positive_number)},
}


def resolve_params(kind: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The kind's defaults updated by ``params``; ValueError for an unknown kind, key or value."""
    if kind not in TARGET_PARAMS:
        raise ValueError(f"unknown target kind '{kind}': expected one of {', '.join(TARGET_KINDS)}")
    specs = TARGET_PARAMS[kind]
    given = dict(params or {})
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ValueError(f"unknown parameter(s) for target '{kind}': {', '.join(unknown)}; "
                         f"allowed: {', '.join(specs)}")
    for name, value in given.items():
        if not specs[name].accepts(value):
            raise ValueError(f"target '{kind}' parameter '{name}' is {value!r}: expected "
                             f"{specs[name].allowed}")
    return {name: given.get(name, spec.default) for name, spec in specs.items()}
