#!/usr/bin/env python3
"""One entry point for Stylepass: set-up, tests, the demo and packaging.

    python build.py setup     # .venv (core, torch, CLI) and .blender/4.5, .blender/5.2 (bpy + add-on)
    python build.py test      # the whole test suite, on both Blender versions
    python build.py demo      # the main job on a built-in demo scene
    python build.py package   # dist/stylepass-<version>.zip, the Blender extension

Standard library only: it runs before anything is installed. Set-up is idempotent and
quick when done; each environment is rebuilt only when what it was built from changed.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import runpy
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BLENDER_ENVS = ROOT / ".blender"
ADDON = ROOT / "blender_addon"
RESULTS = ROOT / ".build" / "test-results"
DEMO_OUT = ROOT / "demo_output"
READY_MARKER = ".stylepass-ready.json"

# torch: a CPU build lies on this project's machines' disk as torch==2.13.0. CUDA users
# set STYLEPASS_TORCH (e.g. "torch==2.11.0" or "torch>=2.11") to keep or get their build.
TORCH_REQUIREMENT = os.environ.get("STYLEPASS_TORCH", "torch==2.13.0")


@dataclass(frozen=True)
class BlenderTarget:
    """A supported Blender: its bpy wheel and the Python it needs."""

    version: str
    bpy: str
    python: str  # "3.11"


BLENDERS = (
    BlenderTarget("4.5", "bpy==4.5.*", "3.11"),
    BlenderTarget("5.2", "bpy==5.2.*", "3.13"),
)


def say(message: str) -> None:
    print(f"[build] {message}", flush=True)


def run(argv: list[str | Path], **kwargs: object) -> None:
    subprocess.run([str(a) for a in argv], check=True, **kwargs)  # type: ignore[call-overload]


def bin_python(env: Path) -> Path:
    return env / "bin" / "python"


def find_python(version: str) -> Path:
    """A Python interpreter of ``version`` ("3.11"): this one, one on PATH, or a pyenv one."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return base_python()
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(glob.glob(str(pyenv / f"{version}.*" / "bin" / "python")), reverse=True)
    for candidate in candidates:
        if candidate and _runs_as(candidate, version):
            return Path(candidate)
    raise SystemExit(f"[build] Python {version} is needed but was not found: install it "
                     f"(e.g. `pyenv install {version}`) or put python{version} on PATH")


def _runs_as(python: str, version: str) -> bool:
    """Whether ``python`` starts and is ``version`` (pyenv shims exist for inactive versions)."""
    try:
        found = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return found.returncode == 0 and found.stdout.strip() == version


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_ready(env: Path, stamp: str) -> bool:
    marker = env / READY_MARKER
    return bin_python(env).exists() and marker.exists() and json.loads(marker.read_text()).get("stamp") == stamp


def mark_ready(env: Path, stamp: str) -> None:
    (env / READY_MARKER).write_text(json.dumps({"stamp": stamp}) + "\n")


def base_python() -> Path:
    """The interpreter running this script, or the one its virtual environment was made from (a
    venv rebuilt by its own Python would delete the interpreter that is rebuilding it)."""
    return Path(getattr(sys, "_base_executable", None) or sys.executable)


def make_venv(env: Path, python: Path) -> None:
    if env.exists():
        shutil.rmtree(env)
    say(f"creating {env.relative_to(ROOT)} with {python}")
    run([python, "-m", "venv", env])
    run([bin_python(env), "-m", "pip", "install", "-q", "--upgrade", "pip"])


def setup_core_env() -> None:
    """`.venv`: torch, the stylepass distribution (editable) with its CLI, pytest."""
    # What the venv is installed from: pyproject's project table and package map (not tool settings
    # such as ruff's: editing those must not rebuild it), the torch requirement, this Python.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    stamp = fingerprint(pyproject["project"], pyproject["tool"]["setuptools"], TORCH_REQUIREMENT, sys.version)
    if is_ready(VENV, stamp):
        return
    make_venv(VENV, base_python())
    say(f"installing {TORCH_REQUIREMENT} (set STYLEPASS_TORCH to choose another build)")
    run([bin_python(VENV), "-m", "pip", "install", "-q", TORCH_REQUIREMENT])
    say("installing stylepass (editable), test tools and the ONNX export extra")
    run([bin_python(VENV), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"])
    mark_ready(VENV, stamp)


def extension_link(env: Path) -> Path:
    return env / "user" / "extensions" / "user_default" / "stylepass"


def install_addon(env: Path) -> None:
    """Install the add-on as a user extension of this bpy environment (a link to the source)."""
    link = extension_link(env)
    link.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(ADDON, link.parent)
    if link.is_symlink() and os.readlink(link) == target:
        return
    if link.is_symlink() or link.exists():
        link.unlink() if link.is_symlink() else shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)


def setup_blender_env(target: BlenderTarget) -> None:
    """`.blender/<version>`: bpy from PyPI, pytest, and the add-on installed as an extension."""
    env = BLENDER_ENVS / target.version
    stamp = fingerprint(target.bpy, target.python)
    if not is_ready(env, stamp):
        make_venv(env, find_python(target.python))
        say(f"installing {target.bpy} into {env.relative_to(ROOT)} (about 1 GB)")
        run([bin_python(env), "-m", "pip", "install", "-q", target.bpy, "pytest>=8"])
        mark_ready(env, stamp)
    install_addon(env)


def selected_blenders(versions: list[str] | None) -> list[BlenderTarget]:
    if not versions:
        return list(BLENDERS)
    known = {t.version: t for t in BLENDERS}
    unknown = [v for v in versions if v not in known]
    if unknown:
        raise SystemExit(f"[build] unknown Blender {', '.join(unknown)}; supported: {', '.join(known)}")
    return [known[v] for v in versions]


def setup(args: argparse.Namespace) -> int:
    setup_core_env()
    for target in selected_blenders(args.blender):
        setup_blender_env(target)
    say(f"ready: {VENV.relative_to(ROOT)}/bin/stylepass, Blender "
        f"{', '.join(t.version for t in selected_blenders(args.blender))} in {BLENDER_ENVS.relative_to(ROOT)}/")
    return 0


@dataclass
class SuiteResult:
    name: str
    returncode: int
    passed: int = 0
    failed: int = 0
    skipped: int = 0


def run_pytest(name: str, python: Path, pytest_args: list[str], env: dict[str, str]) -> SuiteResult:
    """Run one pytest session and count its results from its JUnit XML."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = RESULTS / f"{name}.xml"
    report.unlink(missing_ok=True)
    say(f"suite {name}")
    code = subprocess.run([str(python), "-m", "pytest", f"--junitxml={report}", *pytest_args],
                          cwd=ROOT, env=env).returncode
    result = SuiteResult(name, code)
    if report.exists():
        for suite in ElementTree.parse(report).getroot().iter("testsuite"):
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            result.failed, result.skipped = result.failed + failed, result.skipped + skipped
            result.passed += int(suite.get("tests", 0)) - failed - skipped
    return result


def test(args: argparse.Namespace) -> int:
    setup(args)
    targets = selected_blenders(args.blender)
    env = {**os.environ, "STYLEPASS_TEST_BLENDERS": ",".join(t.version for t in targets)}
    extra = args.pytest_args
    results = [run_pytest("core", bin_python(VENV), ["tests", "--ignore=tests/addon", *extra], env)]
    for target in targets:
        blender_env = BLENDER_ENVS / target.version
        results.append(run_pytest(
            f"addon-blender-{target.version}", bin_python(blender_env), ["tests/addon", *extra],
            {**env, "BLENDER_USER_RESOURCES": str(blender_env / "user")}))
    ok = True
    for result in results:
        # pytest exit 5 means no test ran: that is a failure here, never a silent pass.
        suite_ok = result.returncode == 0 and result.passed > 0
        ok &= suite_ok
        say(f"{result.name}: {result.passed} passed, {result.failed} failed, {result.skipped} skipped"
            f"{'' if suite_ok else f' (exit code {result.returncode}: FAILED)'}")
    print(f"total: {sum(r.passed for r in results)} passed, {sum(r.failed for r in results)} failed, "
          f"{sum(r.skipped for r in results)} skipped", flush=True)
    return 0 if ok else 1


DEMO_RESOLUTION = "640x360"
DEMO_SHEET_FRAMES = "1,6,11"
DEMO_SHEET_SHARD = "1/5"  # frames 1, 6 and 11 of 1-12: all that is rendered in engines other than Cycles
BLEND_PRESET_ORDER = ("toon", "painterly", "sketch", "enhance")  # which preset the demo .blend shows


def run_stylepass(*arguments: str | Path) -> int:
    """Run the installed `stylepass` CLI; returns its exit code."""
    return subprocess.run([str(VENV / "bin" / "stylepass"), *map(str, arguments)], cwd=ROOT).returncode


def run_in_turn(*commands: tuple[str | Path, ...]) -> int:
    """Run `stylepass` commands one after another; stops at the first that fails (its exit code)."""
    return next((code for command in commands if (code := run_stylepass(*command))), 0)


def trained_presets() -> list[str]:
    """Presets that have trained weights (PRESETS/NAME/model/config.json), the .blend's choice first;
    ``STYLEPASS_PRESETS`` names another presets folder, as for `stylepass stylise`."""
    presets = Path(os.environ.get("STYLEPASS_PRESETS", ROOT / "presets"))
    found = {path.parent.parent.name for path in presets.glob("*/model/config.json")}
    order = {name: index for index, name in enumerate(BLEND_PRESET_ORDER)}
    return sorted(found, key=lambda name: (order.get(name, len(order)), name))


def preset_engine(name: str) -> str:
    """The engine of the renders a preset was trained on: its dataset.toml's [input] engine."""
    recipe = Path(os.environ.get("STYLEPASS_PRESETS", ROOT / "presets")) / name / "dataset.toml"
    return tomllib.loads(recipe.read_text()).get("input", {}).get("engine", "cycles") if recipe.is_file() else "cycles"


def demo(args: argparse.Namespace) -> int:
    """The main job: render the built-in demo scene (12 frames) in each engine the shipped presets
    were trained on (Cycles; Eevee for enhance), stylise it with every preset that has trained
    weights, and write a side-by-side sheet and a .blend whose compositor holds the
    "Stylepass: <preset>" node group."""
    setup(args)
    out = Path(args.out).resolve()
    presets = trained_presets()
    engines = {name: preset_engine(name) for name in presets}  # each preset gets the render it was trained on
    exports = {engine: out / ("gbuffers" if engine == "cycles" else f"gbuffers_{engine}")
               for engine in ("cycles", *sorted(set(engines.values()) - {"cycles"}))}
    for engine, folder in exports.items():  # Eevee (software GL without a GPU): the sheet's frames only
        say(f"rendering the built-in demo scene in {engine.capitalize()} and exporting its G-buffers")
        if code := run_stylepass("export", "demo", "--out", folder, "--engine", engine, "--resolution",
                                 args.resolution, "--samples", "16",
                                 *(() if engine == "cycles" else ("--shard", DEMO_SHEET_SHARD))):
            return code
    gbuffers = exports["cycles"]
    if not presets:
        say(f"no shipped preset has trained weights yet (`python build.py train-preset NAME` makes one); "
            f"the G-buffers are in {gbuffers}")
        return 0
    say(f"stylising with the preset(s) {', '.join(presets)}")
    sheet, blend = out / "side_by_side.png", out / "demo.blend"
    shown = next((name for name in presets if engines[name] == "cycles"), presets[0])  # all 12 frames
    columns = [f"{name}={out / 'stylised' / name}" for name in presets if engines[name] == "cycles"]
    for engine in [e for e in exports if e != "cycles"]:  # another engine's render, then what its presets made of it
        columns += [f"{engine} render={exports[engine]}", *(f"{name}={out / 'stylised' / name}"
                                                           for name in presets if engines[name] == engine)]
    code = run_in_turn(
        *(("stylise", exports[engines[name]], "--preset", name, "--out", out / "stylised" / name)
          for name in presets),
        ("compare", gbuffers, "--frames", DEMO_SHEET_FRAMES, "--out", sheet, "--stylised", *columns),
        ("compose", "demo", "--stylised", out / "stylised" / shown, "--name", shown, "--out", blend,
         "--resolution", args.resolution))
    if code:
        return code
    say(f"G-buffers: {gbuffers}")
    for name in presets:
        say(f"{name}: {out / 'stylised' / name} (stylised_<frame>.exr, scene-linear, and .png previews)")
    say(f"side by side: {sheet}")
    say(f"open in Blender: {blend} (compositor: Stylepass: {shown}; Strength on the group node)")
    return 0


def package(args: argparse.Namespace) -> int:
    """The Blender extension zips in dist/, one per platform, built and validated by Blender's own
    tools (training/deploy/extension_package.py, run in the bpy 5.2 environment's Python)."""
    target = selected_blenders(["5.2"])[0]
    setup_blender_env(target)
    platforms = [argument for platform in args.platform or [] for argument in ("--platform", platform)]
    return subprocess.run([bin_python(BLENDER_ENVS / target.version), ROOT / "training" / "deploy" /
                           "extension_package.py", *platforms]).returncode


# --- train-preset: set-up, then `stylepass train-preset` (stylepass.training.presets), same arguments.
# Its options come from its own module, standard library only so that it runs here before set-up.
TRAIN_PRESET_COMMAND = ROOT / "core" / "cli" / "train_preset_command.py"


def train_preset(args: argparse.Namespace) -> int:
    """Set up .venv and the dataset's Blender, then run `stylepass train-preset`; returns its exit code."""
    setup_core_env()
    setup_blender_env(selected_blenders([args.blender])[0])
    return run_stylepass("train-preset", *sys.argv[2:])  # as given: build.py has no options before a command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, help_text in (
        ("setup", setup, "create .venv and the Blender environments"),
        ("test", test, "run every test suite (after setup)"),
        ("demo", demo, "run the main job on the built-in demo scene"),
        ("package", package, "build the Blender extension zip in dist/"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.set_defaults(handler=handler)
        if name != "package":
            command.add_argument("--blender", action="append", metavar="VERSION",
                                 help="only this Blender (4.5 or 5.2); repeatable; default: all")
        if name == "package":
            command.add_argument("--platform", action="append", metavar="PLATFORM",
                                 help="only this platform: linux-x64, windows-x64 or macos-arm64 (repeatable)")
        if name == "test":
            command.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
        if name == "demo":
            command.add_argument("--out", default=str(DEMO_OUT), help="where the results go (default: demo_output/)")
            command.add_argument("--resolution", default=DEMO_RESOLUTION, help="WxH (default: %(default)s)")
    train_preset_options = runpy.run_path(str(TRAIN_PRESET_COMMAND))
    command = commands.add_parser("train-preset", help=train_preset_options["HELP"])
    command.set_defaults(handler=train_preset)
    train_preset_options["add_arguments"](command, [t.version for t in BLENDERS])
    args = parser.parse_args()
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
