"""Stylepass Blender extension: G-buffer passes, export, and (later) stylisation.

Importing this package does not import bpy, so its Blender-free modules
(``export_format``, ``frame_selection``, ``atomic_files``, ``headless_protocol``) serve
``stylepass.core`` outside Blender too. Blender calls ``register``/``unregister``.
"""


def register() -> None:
    from . import registration

    registration.register()


def unregister() -> None:
    from . import registration

    registration.unregister()
