"""What goes into a render (bpy): passes, render settings, material ids, the camera record,
G-buffer export, procedural scenes, scene loading, dataset targets and compositor nodes."""
