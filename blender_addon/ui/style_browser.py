"""The style browser (bpy): the presets as thumbnails to click, and a folder picker for a model
folder. Both set ``scene.stylepass.model`` (a preset name or a folder), which the stylise jobs read.

Presets are the folders of :func:`~..live.worker_runtime.presets_folder` that hold a model, with
their ``thumbnail.png`` as the icon. Icons live in a ``bpy.utils.previews`` collection while the
add-on is registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy_extras.io_utils import ImportHelper

from .. import ADDON_DIR
from ..contract.worker_protocol import has_model
from ..live.worker_runtime import available_presets, presets_folder

_icons: Any = None  # bpy.utils.previews.ImagePreviewCollection, while registered
_items: list[tuple[str, str, str, int, int]] = []  # kept alive: Blender holds pointers into enum items
_items_key: tuple[Any, ...] = ()  # what _items was built from


def preset_items(_self: Any, _context: bpy.types.Context | None) -> list[tuple[str, str, str, int, int]]:
    """EnumProperty items of the presets: (name, label, description, icon id, index).

    Built again only when the presets change (Blender calls this on every redraw and keeps
    pointers into the strings of the list it got, so the list is kept, not rebuilt, otherwise).
    """
    global _items_key
    folder = presets_folder(ADDON_DIR)
    presets = available_presets(folder) if folder else []
    key = (tuple((p.name, _mtime(p / "thumbnail.png"), _mtime(p / "CARD.md")) for p in presets), _icons is not None)
    if key == _items_key and _items:
        return _items
    _items_key = key
    _items.clear()
    for index, preset in enumerate(presets):
        icon = 0
        thumbnail = preset / "thumbnail.png"
        if _icons is not None and thumbnail.is_file():
            if preset.name not in _icons:
                _icons.load(preset.name, str(thumbnail), "IMAGE")
            icon = _icons[preset.name].icon_id
        _items.append((preset.name, preset.name.capitalize(), describe(preset), icon, index))
    if not _items:
        _items.append(("NONE", "No presets", "No preset with a model was found beside the add-on", 0, 0))
    return _items


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.is_file() else 0


def describe(preset: Path) -> str:
    """The first sentence of the preset's card (its title line skipped), or its name."""
    card = preset / "CARD.md"
    if card.is_file():
        for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip() and not line.startswith("#"):
                return line.strip().split(". ")[0][:200]
    return preset.name


def on_preset_picked(settings: bpy.types.PropertyGroup, _context: bpy.types.Context) -> None:
    """The browser's pick becomes the style to stylise with."""
    if settings.style_preset != "NONE":
        settings.model = settings.style_preset


class STYLEPASS_OT_choose_model_folder(bpy.types.Operator, ImportHelper):
    """Stylise with a model folder (model.onnx, or model.safetensors + config.json)"""

    bl_idname = "stylepass.choose_model_folder"
    bl_label = "Model folder..."
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH")  # type: ignore[valid-type]
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN"})  # type: ignore[valid-type]
    use_filter_folder = True

    def execute(self, context: bpy.types.Context) -> set[str]:
        folder = Path(bpy.path.abspath(self.directory or self.filepath))
        if folder.is_file():
            folder = folder.parent
        if not has_model(folder):
            self.report({"ERROR"}, f"Stylepass: {folder} holds no model (model.onnx, or model.safetensors + "
                                   "config.json from `stylepass export-model` or Train style)")
            return {"CANCELLED"}
        context.scene.stylepass.model = str(folder)
        return {"FINISHED"}


def register_icons() -> None:
    global _icons
    import bpy.utils.previews

    _icons = bpy.utils.previews.new()


def unregister_icons() -> None:
    global _icons, _items_key
    if _icons is not None:
        import bpy.utils.previews

        bpy.utils.previews.remove(_icons)
        _icons = None
    _items.clear()
    _items_key = ()


CLASSES = (STYLEPASS_OT_choose_model_folder,)
