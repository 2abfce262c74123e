"""The extension's Blender-free contract: formats, options, protocols and file rules that the
add-on and ``stylepass.core``/``stylepass.training`` share. Standard library only; never imports bpy."""
