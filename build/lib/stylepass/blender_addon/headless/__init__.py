"""Jobs that ``headless_main.py`` runs inside a background Blender (bpy): export, dataset,
denoise and compose."""
