"""Stylepass Blender extension: render passes, G-buffer export, training datasets, painted
keyframes, stylisation through the compositor and train-style.

Importing this package does not import bpy, so its Blender-free ``contract`` subpackage serves
``stylepass.core`` and ``stylepass.training`` outside Blender too. Blender calls
``register``/``unregister``.
"""

from pathlib import Path

# This add-on's module name ("bl_ext.user_default.stylepass" when installed): the id of its
# preferences, whichever subpackage asks.
ADDON_ID = __name__
# The folder the add-on lives in (as installed: a link into a source checkout stays a link).
ADDON_DIR = Path(__file__).parent


def register() -> None:
    from .ui import registration

    registration.register()


def unregister() -> None:
    from .ui import registration

    registration.unregister()
