"""Stylepass Blender extension: render passes, G-buffer export, training datasets, painted
keyframes, stylisation through the compositor and train-style.

Importing this package does not import bpy, so its Blender-free ``contract`` subpackage serves
``stylepass.core`` and ``stylepass.training`` outside Blender too. Blender calls
``register``/``unregister``.
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
