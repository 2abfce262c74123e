"""Helpers for dataset tests: recipes, pair rows, and an edge-alignment score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stylepass.core.io.gbuffer import GBufferFrame
from stylepass.core.io.preview_images import load_target_rgb8


def write_recipe(folder: Path, name: str, text: str) -> Path:
    """Write a recipe TOML file and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def pair_rows(dataset: Path) -> list[dict]:
    return [json.loads(line) for line in (dataset / "pairs.jsonl").read_text().splitlines()]


def silhouette_edges(frame: GBufferFrame) -> np.ndarray:
    """(H, W) bool: pixels where the material id or the valid mask changes to a neighbour."""
    ids = np.where(frame.valid, frame.material_id, -1)
    edges = np.zeros(ids.shape, dtype=bool)
    edges[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edges[1:, :] |= ids[1:, :] != ids[:-1, :]
    return edges


def gradient_magnitude(rgb8: np.ndarray) -> np.ndarray:
    grey = rgb8.astype(np.float32).mean(axis=2)
    gradient = np.zeros_like(grey)
    gradient[:, 1:] += np.abs(grey[:, 1:] - grey[:, :-1])
    gradient[1:, :] += np.abs(grey[1:, :] - grey[:-1, :])
    return gradient


def edge_alignment(frame: GBufferFrame, target: Path, shift: int = 0) -> float:
    """How much stronger the target's gradients are on the input's silhouette edges than
    elsewhere (1 = no relation). ``shift`` rolls the target sideways, a misaligned control."""
    edges = silhouette_edges(frame)
    gradient = np.roll(gradient_magnitude(load_target_rgb8(target)), shift, axis=1)
    assert gradient.shape == edges.shape, "target and input differ in size"
    return float(gradient[edges].mean() / max(gradient[~edges].mean(), 1e-6))
