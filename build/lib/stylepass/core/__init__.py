"""Stylepass core: G-buffer I/O, models and inference. Never imports bpy."""
