"""Fixtures: a small ray-cast export with ONE painted keyframe, and a style trained on it.

The scene and its synthetic painting are in :mod:`.synthetic`; the painting of every frame is
computed, so the unpainted frames have a ground truth. The style is trained once per session
at test size (96 px frames, 48 px patches, a narrow U-Net), in this process, on one CPU thread.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from stylepass.blender_addon.contract.keyframes import add_keyframe
from stylepass.training.data.augment import AugmentSettings
from stylepass.training.loop.train_style import StyleSettings, train_style

from .synthetic import paint, save_png, write_scene_export

torch.set_num_threads(1)

SIZE = 96
FRAMES = range(1, 6)
PAINTED = 1
TEST_SETTINGS = StyleSettings(steps=300, batch_size=4, base_width=16, depth=3, checkpoint_every=100,
                              preview_every=100, augment=AugmentSettings(patch=48))
TINY_SETTINGS = StyleSettings(steps=6, batch_size=2, base_width=4, depth=2, checkpoint_every=2, preview_every=3,
                              augment=AugmentSettings(patch=16))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def painted_source(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A pristine export of FRAMES with frame PAINTED painted and registered (copy it before changing it).

    ``frames``: the rendered frames by number; ``painting``: the artist's file (outside the export).
    """
    root = tmp_path_factory.mktemp("painted")
    frames = write_scene_export(root / "export", FRAMES, SIZE)
    painting = save_png(root / "my_painting.png", paint(frames[PAINTED]))
    add_keyframe(root / "export", PAINTED, painting, (SIZE, SIZE))
    return SimpleNamespace(export=root / "export", frames=frames, painting=painting)


@pytest.fixture
def painted_export(painted_source: SimpleNamespace, tmp_path: Path) -> Path:
    """A private copy of the painted export for a test that trains or changes it."""
    return Path(shutil.copytree(painted_source.export, tmp_path / "export"))


@pytest.fixture(scope="session")
def trained_style(painted_source: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The style trained on the one painting with TEST_SETTINGS, plus the paintings' digests before."""
    paintings = [painted_source.painting, *(painted_source.export / "keyframes").iterdir()]
    before = {path: digest(path) for path in paintings}
    model_dir = tmp_path_factory.mktemp("styles") / "spheres"
    result = train_style(painted_source.export, model_dir, TEST_SETTINGS, torch.device("cpu"))
    return SimpleNamespace(result=result, digests_before=before, **vars(painted_source))
