"""The render a preset was trained on, and a warning when a render differs from it (Blender-free:
read by the Stylise panel and by ``stylepass stylise``).

A model learns one input: the enhance preset turns Eevee renders with ray tracing into path-traced
ones, the style presets take Cycles renders. Its recipe (``presets/NAME/dataset.toml``, shipped
beside ``model/``) says which, in its ``[input]`` table.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

RECIPE_FILE = "dataset.toml"


@dataclass(frozen=True)
class TrainedInput:
    """The ``[input]`` of a preset's recipe: engine family (``"cycles"``/``"eevee"``) and whether
    indirect light (Cycles) or ray tracing (Eevee) was on."""

    engine: str
    indirect: bool

    def words(self) -> str:
        light = "ray tracing" if self.engine == "eevee" else "indirect light"
        return f"{self.engine.capitalize()} renders with {light} {'on' if self.indirect else 'off'}"


def trained_input(model_dir: Path) -> TrainedInput | None:
    """What the model in `model_dir` (``presets/NAME/model``) was trained on, from its preset's
    recipe; None for a model folder without one, or a recipe that cannot be read."""
    recipe = Path(model_dir).parent / RECIPE_FILE
    try:
        table = tomllib.loads(recipe.read_text(encoding="utf-8")).get("input", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    engine, indirect = table.get("engine", "cycles"), table.get("indirect", False)
    if engine not in ("cycles", "eevee") or not isinstance(indirect, bool):
        return None
    return TrainedInput(engine, indirect)


def engine_family(engine_id: str) -> str | None:
    """``"cycles"`` or ``"eevee"`` for a Blender engine id (``CYCLES``, ``BLENDER_EEVEE``,
    ``BLENDER_EEVEE_NEXT``), None for others (Workbench)."""
    return "cycles" if engine_id == "CYCLES" else "eevee" if "EEVEE" in engine_id else None


def input_warning(name: str, trained: TrainedInput | None, engine_id: str,
                  ray_tracing: bool | None = None) -> str | None:
    """One sentence when a render (Blender `engine_id`; for Eevee, whether its ray tracing is on, if
    known) is not what model `name` was trained on, else None."""
    if trained is None:
        return None
    family = engine_family(engine_id)
    if family is not None and family != trained.engine:
        return (f"{name} was trained on {trained.words()}; this is a {family.capitalize()} render: "
                f"render in {trained.engine.capitalize()} for its best result")
    if family == "eevee" and ray_tracing is not None and ray_tracing != trained.indirect:
        wanted = "on" if trained.indirect else "off"
        return f"{name} was trained on {trained.words()}: turn Eevee's ray tracing {wanted}"
    return None
