"""Temporary render settings and plain renders (bpy), shared by the G-buffer export and
the target renderers: every change is undone when the block ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bpy


@contextmanager
def changed(owner: bpy.types.bpy_struct, **values: Any) -> Iterator[None]:
    """Set ``owner``'s properties in the given order; restore them in reverse order afterwards."""
    saved: dict[str, Any] = {}
    try:
        for name, value in values.items():
            current = getattr(owner, name)
            saved[name] = tuple(current) if hasattr(current, "__len__") and not isinstance(current, str) \
                else current
            setattr(owner, name, value)
        yield
    finally:
        for name, value in reversed(saved.items()):
            setattr(owner, name, value)


@contextmanager
def plain_render_pipeline(scene: bpy.types.Scene) -> Iterator[None]:
    """The render result is the rendered view layer: no user compositor, no sequencer strips."""
    with changed(scene.render, use_compositing=False, use_sequencer=False):
        yield


def render_view_layer(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> None:
    """Render the current frame of one view layer into Blender's Render Result."""
    bpy.ops.render.render(layer=view_layer.name, scene=scene.name)
