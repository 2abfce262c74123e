"""The extension zip from `build.py package` installs and enables in a clean Blender."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_packaged_extension_installs_and_registers(tmp_path):
    subprocess.run([sys.executable, str(REPO / "build.py"), "package"], check=True, capture_output=True)
    archive = next((REPO / "dist").glob("stylepass-*.zip"))
    code = textwrap.dedent(f"""
        import bpy
        bpy.ops.extensions.package_install_files(filepath={str(archive)!r}, repo="user_default",
                                                 enable_on_install=True)
        assert hasattr(bpy.types, "STYLEPASS_PT_render_panel"), "panel not registered"
        assert "export_gbuffers" in dir(bpy.ops.stylepass)
        bpy.ops.preferences.addon_disable(module="bl_ext.user_default.stylepass")
        assert not hasattr(bpy.types, "STYLEPASS_PT_render_panel")
        print("INSTALLED-OK")
    """)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "INSTALLED-OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    installed = tmp_path / "user" / "extensions" / "user_default" / "stylepass"
    assert (installed / "blender_manifest.toml").is_file() and not installed.is_symlink()
