"""Build the Blender extension zips: the add-on, a torch-free runtime for its stylise worker, the
presets' ONNX models and the wheels that runtime needs, put together by Blender's own builder.

``python build.py package`` runs this file (standard library only: it runs in the Python of the
bpy 5.2 environment, whose wheel ships Blender's extension tools). What one zip holds:

=======================  ======================================================================
``./`` (the add-on)       ``blender_addon/`` as it is (UI, operators, scene code, contract)
``runtime/stylepass/``    the worker's code: ``core/io``, ``core/inference`` and the add-on's
                          ``contract`` (no torch: ONNX Runtime runs the models)
``presets/NAME/``         each trained preset's ``model/model.onnx``, ``thumbnail.png``, ``CARD.md``
``wheels/``               onnxruntime, OpenEXR and Pillow for Python 3.11 (Blender 4.5) and 3.13
                          (Blender 5.x), for the zip's platform
``engine/``               Stylepass's own wheel, which Install training engine puts into the
                          training engine's venv beside torch (Blender does not install it)
=======================  ======================================================================

Blender installs the wheels that match its Python and platform when the extension is installed;
the add-on starts the worker in Blender's own Python with them (``blender_addon/live/worker_runtime``).

Wheels come from PyPI through pip at build time (never at run time) into ``.build/wheels``,
where later builds find them without the network. One zip per platform
(``blender_ext.py build --split-platforms``); each is checked with ``blender_ext.py validate``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHEEL_CACHE = ROOT / ".build" / "wheels"
STAGE = ROOT / ".build" / "extension"
MANIFEST = "blender_manifest.toml"

# What the worker needs beyond Blender's own Python (which has numpy), pinned to what the tests run.
RUNTIME_WHEELS = ("onnxruntime==1.32.0", "OpenEXR==3.5.3", "Pillow==13.0.0")
# Blender's Pythons: 4.5 LTS has 3.11, 5.x has 3.13.
PYTHONS = ("3.11", "3.13")
# Blender's platform names -> the wheel platform tags pip may pick for them.
PLATFORMS: dict[str, tuple[str, ...]] = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": tuple(f"macosx_{major}_0_arm64" for major in (11, 12, 13, 14, 15)),
}
# What the worker imports (with their parents' __init__.py); the rest of the core needs torch.
RUNTIME_PACKAGES = ("core/io", "core/inference", "blender_addon/contract")
# Modules of those packages that need torch: left out of the zip (the worker runs ONNX Runtime).
TORCH_MODULES = ("predict.py", "torch_styliser.py", "onnx_export.py")
# int8: when made; dataset.toml: the render the preset was trained on (the panel warns on another)
PRESET_FILES = ("model/model.onnx", "model/model.int8.onnx", "thumbnail.png", "CARD.md", "dataset.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def say(message: str) -> None:
    print(f"[package] {message}", flush=True)


def blender_ext() -> Path:
    """blender_ext.py of the bpy wheel this Python has (Blender's extension builder and validator)."""
    spec = importlib.util.find_spec("bpy")  # found, not imported (that takes seconds)
    folders = [Path(folder) for folder in (spec.submodule_search_locations or [])] if spec else []
    pattern = "*/scripts/addons_core/bl_pkg/cli/blender_ext.py"
    found = sorted(path for folder in folders for path in folder.glob(pattern))
    if not found:
        raise SystemExit("[package] blender_ext.py not found in the bpy wheel: run `python build.py setup`")
    return found[-1]


def download_wheels(platform: str, python: str) -> list[Path]:
    """The runtime wheels for one platform and Python, from the cache or PyPI (pip, binary only)."""
    folder = WHEEL_CACHE / platform / python
    wanted = {requirement.split("==")[0].lower(): requirement for requirement in RUNTIME_WHEELS}

    def cached() -> dict[str, Path]:
        found = {}
        for wheel in folder.glob("*.whl") if folder.is_dir() else []:
            name, version = wheel.name.split("-")[:2]
            if wanted.get(name.lower(), "").endswith(f"=={version}"):
                found[name.lower()] = wheel
        return found

    missing = [wanted[name] for name in wanted if name not in cached()]
    if missing:
        say(f"downloading {', '.join(missing)} for {platform}, Python {python}")
        tags = [argument for tag in PLATFORMS[platform] for argument in ("--platform", tag)]
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--python-version", python, *tags, "--dest", str(folder), *missing], check=True)
    found = cached()
    if len(found) != len(wanted):
        raise SystemExit(f"[package] no wheel of {', '.join(sorted(set(wanted) - set(found)))} for {platform}, "
                         f"Python {python}")
    return sorted(found.values())


def stage_source(stage: Path, platforms: list[str]) -> None:
    """Lay out the extension's source folder (see the module docstring) at `stage`."""
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(ROOT / "blender_addon", stage, ignore=IGNORED)
    runtime = stage / "runtime" / "stylepass"  # a namespace package, as installed
    for package in RUNTIME_PACKAGES:
        shutil.copytree(ROOT / package, runtime / package, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", ".*", *TORCH_MODULES))
        parent = Path(package).parent
        shutil.copy2(ROOT / parent / "__init__.py", runtime / parent / "__init__.py")
    for preset in sorted((ROOT / "presets").iterdir()):
        if (preset / PRESET_FILES[0]).is_file():
            check_current_onnx(preset / "model", stage / "runtime")
            for name in (name for name in PRESET_FILES if (preset / name).is_file()):
                (stage / "presets" / preset.name / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(preset / name, stage / "presets" / preset.name / name)
    build_engine_wheel(stage / "engine")
    wheels = [wheel for platform in platforms for python in PYTHONS for wheel in download_wheels(platform, python)]
    (stage / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, stage / "wheels" / wheel.name)
    write_manifest(stage / MANIFEST, platforms, [f"./wheels/{wheel.name}" for wheel in wheels])


def build_engine_wheel(folder: Path) -> None:
    """Stylepass's own wheel, for Install training engine (not one Blender installs: not in ``wheels``),
    built from a copy of the sources so that no build/ folder is left in the checkout."""
    with tempfile.TemporaryDirectory(prefix="stylepass-wheel-") as temp:
        source = Path(temp) / "stylepass"
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, source / name)
        for package in ("core", "training", "blender_addon"):
            shutil.copytree(ROOT / package, source / package, ignore=IGNORED)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder),
                        str(source)], check=True)


def check_current_onnx(model: Path, runtime: Path) -> None:
    """Refuse to ship a preset's model.onnx older than its weights and config, or a model.int8.onnx
    quantized from another model.onnx (the zip carries the ONNX files alone, so nothing could tell
    later). runtime: the staged ``runtime/`` folder, whose copy of the core gives the digests' one
    definition."""
    if str(runtime) not in sys.path:
        sys.path.insert(0, str(runtime))
    from stylepass.core.io.model_files import file_digest, source_digest

    text = (model / "model.onnx").read_bytes()
    if b"stylepass.source_digest" not in text or source_digest(model).encode() not in text:
        raise SystemExit(f"[package] {model / 'model.onnx'} was not exported from the weights and config beside it: "
                         f"run `stylepass export-model {model} --out {model} --onnx` first")
    int8 = model / Path(PRESET_FILES[1]).name
    if int8.is_file() and file_digest(model / "model.onnx").encode() not in int8.read_bytes():
        raise SystemExit(f"[package] {int8} was not quantized from the model.onnx beside it (the extension would "
                         f"refuse it): run `stylepass quantize {model} --data DATASET` on the preset's dataset first")


def write_manifest(path: Path, platforms: list[str], wheels: list[str]) -> None:
    """The add-on's manifest with ``platforms`` and ``wheels`` added as top-level keys (before its first table)."""
    lines = path.read_text().splitlines()
    first_table = next(index for index, line in enumerate(lines) if line.startswith("["))
    added = ["platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]",
             "wheels = [", *(f'    "{wheel}",' for wheel in wheels), "]", ""]
    path.write_text("\n".join(lines[:first_table] + added + lines[first_table:]) + "\n")


def build(platforms: list[str], out: Path) -> list[Path]:
    """Stage, build with Blender's builder (one zip per platform), validate each zip; returns them."""
    tool = blender_ext()
    stage_source(STAGE, platforms)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("stylepass-*.zip"):
        old.unlink()
    subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(STAGE), "--output-dir", str(out),
                    "--split-platforms"], check=True, stdout=subprocess.DEVNULL)
    archives = sorted(out.glob("stylepass-*.zip"))
    for archive in archives:
        subprocess.run([sys.executable, str(tool), "validate", str(archive)], check=True, stdout=subprocess.DEVNULL)
        say(f"{archive} ({archive.stat().st_size / 1e6:.0f} MB), validated by Blender's blender_ext.py")
    return archives


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Stylepass Blender extension zips (one per platform).")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS), dest="platforms",
                        help="only this platform (repeatable; default: all of them)")
    parser.add_argument("--out", default=str(ROOT / "dist"), help="where the zips go (default: dist/)")
    args = parser.parse_args(argv)
    build(args.platforms or list(PLATFORMS), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
