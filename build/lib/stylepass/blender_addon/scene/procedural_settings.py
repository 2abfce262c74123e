"""What a seeded procedural scene is drawn from (:class:`ProceduralSettings`, checked before the
open file is touched), the error for settings that cannot give a scene, and the custom
properties a generated scene carries. No bpy: plain data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..contract.headless_protocol import BadInputError

SCENE_KEY = "stylepass_procedural"  # scene property: JSON {"seed": int, "settings": {...}}
KIND_KEY = "stylepass_kind"         # object property: "cube", "asset:BoomBox.gltf", "ground", ...
ASSET_SUFFIXES = (".gltf", ".glb", ".blend")
MAX_OBJECTS = 50


class SceneGenerationError(BadInputError):
    """The settings cannot give a scene (bad values, unreadable assets, no camera that frames it)."""


@dataclass(frozen=True)
class ProceduralSettings:
    """What a procedural scene is drawn from. Ranges are (low, high), both included."""

    assets: tuple[str, ...] = ()           # .gltf/.glb/.blend files to draw subjects from
    min_objects: int = 2                   # subjects per scene (ground and walls not counted)
    max_objects: int = 5
    asset_probability: float = 0.5         # chance that a subject is an asset, when assets are given
    walls: bool = True                     # ground plane always; 0-2 back walls when True
    texture_probability: float = 0.5      # chance that a material is driven by a procedural texture
    subject_size: tuple[float, float] = (0.6, 2.0)      # largest dimension of a subject (m)
    focal_length_mm: tuple[float, float] = (24.0, 85.0)  # on a 36 mm sensor
    elevation_deg: tuple[float, float] = (5.0, 45.0)    # camera height angle above the subjects
    frame_margin: float = 0.03             # fraction of the frame kept clear on each side
    camera_attempts: int = 30              # camera draws before giving up
    resolution: tuple[int, int] = (256, 256)  # render size the framing is checked for

    def problems(self) -> list[str]:
        """What is wrong with these settings, one sentence each (empty when they are usable)."""
        found = []
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            found.append(f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS} "
                         f"(got min_objects={self.min_objects}, max_objects={self.max_objects})")
        for name in ("asset_probability", "texture_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                found.append(f"{name} must be between 0 and 1 (got {getattr(self, name)})")
        for name, low, high in (("subject_size", 0.01, 100.0), ("focal_length_mm", 8.0, 500.0),
                                ("elevation_deg", 1.0, 85.0)):
            value = tuple(getattr(self, name))
            if len(value) != 2 or not low <= value[0] <= value[1] <= high:
                found.append(f"{name} must be (low, high) with {low} <= low <= high <= {high} (got {value})")
        if not 0.0 <= self.frame_margin < 0.5:
            found.append(f"frame_margin must be in [0, 0.5) (got {self.frame_margin})")
        if self.camera_attempts < 1:
            found.append(f"camera_attempts must be at least 1 (got {self.camera_attempts})")
        if len(self.resolution) != 2 or min(self.resolution) < 1:
            found.append(f"resolution must be two positive pixel counts (got {self.resolution})")
        return found + [problem for problem in map(_asset_problem, self.assets) if problem]


def _asset_problem(asset: str) -> str:
    path = Path(asset)
    if path.suffix.lower() not in ASSET_SUFFIXES:
        return f"asset {path}: expected a {', '.join(ASSET_SUFFIXES)} file"
    if not path.is_file():
        return f"asset {path}: file not found"
    return ""
