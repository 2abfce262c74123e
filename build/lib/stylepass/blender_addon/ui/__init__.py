"""What the artist sees in Blender (bpy): the panel, its properties, operators and registration."""
