"""The live link from a running Blender to the core's Python: the stylise worker client,
the stylise and train-style jobs, and stylise-on-render."""
