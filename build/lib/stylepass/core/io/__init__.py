"""Files in and out (Blender-free; torch only inside the one function that turns a frame into
tensors): OpenEXR, G-buffer exports, Cryptomatte, previews,
atomic image writes and dataset folders."""
