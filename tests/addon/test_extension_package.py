"""The artist's path: the zip from `build.py package` (built and validated by Blender's own tools)
installs with Blender's installer into a clean Blender and stylises a real asset with a shipped
preset, in Blender's own Python with the extension's ONNX Runtime: no .venv, no torch, no
stylepass on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ASSET = REPO.parent / "shared" / "assets" / "gltf" / "BoomBox" / "BoomBox.gltf"

INSTALL_AND_STYLISE = """
import importlib, importlib.util, json, sys
import bpy

assert importlib.util.find_spec("stylepass") is None and importlib.util.find_spec("torch") is None
bpy.ops.extensions.package_install_files(filepath=ARCHIVE, repo="user_default", enable_on_install=True)
assert hasattr(bpy.types, "STYLEPASS_PT_render_panel"), "panel not registered"
ext = importlib.import_module("bl_ext.user_default.stylepass")
for submodule in ("scene.scene_loading", "scene.compositor_nodes", "live.stylise_job"):
    importlib.import_module("bl_ext.user_default.stylepass." + submodule)
preferences = bpy.context.preferences.addons["bl_ext.user_default.stylepass"].preferences
assert preferences.worker_python == ""  # nothing configured
runtime = ext.live.stylise_job.worker_runtime()

scene = ext.scene.scene_loading.import_gltf_scene(ASSET)
scene.render.resolution_x, scene.render.resolution_y = 96, 96
scene.cycles.samples = 4
scene.stylepass.output_dir = OUT
scene.stylepass.model = "toon"
scene.stylepass.device = "cpu"
scene.stylepass.precision = "int8"  # the shipped model.int8.onnx, through the extension's ONNX Runtime
assert bpy.ops.stylepass.setup_passes() == {"FINISHED"}
assert bpy.ops.stylepass.stylise() == {"FINISHED"}, bpy.context.window_manager.stylepass_job.message

nodes = ext.scene.compositor_nodes
group = nodes.installed_group(scene)
image = nodes.installed_image(scene)
pixels = list(image.pixels)
print("RESULT " + json.dumps({
    "runtime": runtime.description, "python": str(runtime.python), "group": group.name,
    "image": bpy.path.abspath(image.filepath), "size": list(image.size), "pixels": pixels[0::97],
    "loaded": sorted(name for name in ("torch", "onnxruntime") if name in sys.modules),
}))
"""


def test_the_zip_installs_in_a_clean_blender_and_stylises_a_real_asset(tmp_path):
    subprocess.run([sys.executable, str(REPO / "build.py"), "package", "--platform", "linux-x64"], check=True,
                   capture_output=True)
    version = tomllib.loads((REPO / "blender_addon" / "blender_manifest.toml").read_text())["version"]
    archive = REPO / "dist" / f"stylepass-{version}-linux_x64.zip"
    assert archive.is_file()

    code = f"ARCHIVE, ASSET, OUT = {str(archive)!r}, {str(ASSET)!r}, {str(tmp_path / 'export')!r}\n"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYTHON", "STYLEPASS"))}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")  # a fresh user folder
    done = subprocess.run([sys.executable, "-c", code + textwrap.dedent(INSTALL_AND_STYLISE)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[0].removeprefix("RESULT "))

    installed = tmp_path / "user" / "extensions" / "user_default" / "stylepass"
    assert (installed / "presets" / "toon" / "model" / "model.onnx").is_file() and not installed.is_symlink()
    assert (installed / "presets" / "toon" / "model" / "model.int8.onnx").is_file()
    assert result["runtime"] == "Blender's Python with the extension's ONNX Runtime"
    assert result["python"] == sys.executable
    assert result["loaded"] == [], "Blender's process imported torch or onnxruntime"
    assert result["group"] == "Stylepass: toon"
    stylised = Path(result["image"])
    assert stylised.name == "stylised_000001.exr" and stylised.with_suffix(".png").is_file()
    assert result["size"] == [96, 96]
    values = result["pixels"]
    assert all(value == value and value >= 0 for value in values) and max(values) > min(values)
