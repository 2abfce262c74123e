"""Stylepass Blender extension: G-buffer passes, export, and (later) stylisation.

Importing this package does not import bpy, so its Blender-free modules
(``export_format``, ``frame_selection``, ``atomic_files``, ``headless_protocol``) serve
``stylepass.core`` outside Blender too. Blender calls ``register``/``unregister``.
"""

# This add-on's module name ("bl_ext.user_default.stylepass" when installed): the id of its
# preferences, whichever subpackage asks.
ADDON_ID = __name__


def register() -> None:
    from .ui import registration

    registration.register()


def unregister() -> None:
    from .ui import registration

    registration.unregister()
