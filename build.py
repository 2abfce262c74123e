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
import shutil
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ElementTree
import zipfile
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
    stamp = fingerprint((ROOT / "pyproject.toml").read_text(), TORCH_REQUIREMENT, sys.version)
    if is_ready(VENV, stamp):
        return
    make_venv(VENV, base_python())
    say(f"installing {TORCH_REQUIREMENT} (set STYLEPASS_TORCH to choose another build)")
    run([bin_python(VENV), "-m", "pip", "install", "-q", TORCH_REQUIREMENT])
    say("installing stylepass (editable), test tools and the ONNX export extra")
    run([bin_python(VENV), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test,onnx]"])
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
            total = int(suite.get("tests", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            result.failed += failed
            result.skipped += skipped
            result.passed += total - failed - skipped
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
DEMO_SHEET_FRAMES = "1,6,12"
BLEND_PRESET_ORDER = ("toon", "painterly", "sketch", "enhance")  # which preset the demo .blend shows


def run_stylepass(*arguments: str | Path) -> int:
    """Run the installed `stylepass` CLI; returns its exit code."""
    return subprocess.run([str(VENV / "bin" / "stylepass"), *map(str, arguments)], cwd=ROOT).returncode


def presets_dir() -> Path:
    """The presets folder (``STYLEPASS_PRESETS`` overrides it, as for `stylepass stylise`)."""
    return Path(os.environ.get("STYLEPASS_PRESETS", ROOT / "presets"))


def trained_presets() -> list[str]:
    """Presets that have trained weights (PRESETS/NAME/model/config.json), the .blend's choice first."""
    found = {path.parent.parent.name for path in presets_dir().glob("*/model/config.json")}
    order = {name: index for index, name in enumerate(BLEND_PRESET_ORDER)}
    return sorted(found, key=lambda name: (order.get(name, len(order)), name))


def demo(args: argparse.Namespace) -> int:
    """The main job: render the built-in demo scene (12 frames), stylise it with every shipped
    preset that has trained weights, and write a side-by-side sheet and a .blend whose
    compositor holds the "Stylepass: <preset>" node group."""
    setup(args)
    out = Path(args.out).resolve()
    gbuffers = out / "gbuffers"
    say("rendering the built-in demo scene and exporting its G-buffers")
    code = run_stylepass("export", "demo", "--out", gbuffers, "--resolution", args.resolution, "--samples", "16")
    if code:
        return code
    presets = trained_presets()
    if not presets:
        say(f"no shipped preset has trained weights yet (`python build.py train-preset NAME` makes one); "
            f"the G-buffers are in {gbuffers}")
        return 0
    for name in presets:
        say(f"stylising with the {name} preset")
        code = run_stylepass("stylise", gbuffers, "--preset", name, "--out", out / "stylised" / name)
        if code:
            return code
    sheet = out / "side_by_side.png"
    code = run_stylepass("compare", gbuffers, "--frames", DEMO_SHEET_FRAMES, "--out", sheet, "--stylised",
                         *(f"{name}={out / 'stylised' / name}" for name in presets))
    if code:
        return code
    blend = out / "demo.blend"
    code = run_stylepass("compose", "demo", "--stylised", out / "stylised" / presets[0], "--name", presets[0],
                         "--out", blend, "--resolution", args.resolution)
    if code:
        return code
    say(f"G-buffers: {gbuffers}")
    for name in presets:
        say(f"{name}: {out / 'stylised' / name} (stylised_<frame>.exr, scene-linear, and .png previews)")
    say(f"side by side: {sheet}")
    say(f"open in Blender: {blend} (compositor: Stylepass: {presets[0]}; Strength on the group node)")
    return 0


def package(args: argparse.Namespace) -> int:
    """Zip the add-on as a Blender extension (install with Blender's 'Install from Disk')."""
    manifest = tomllib.loads((ADDON / "blender_manifest.toml").read_text())
    dist = ROOT / "dist"
    dist.mkdir(exist_ok=True)
    archive = dist / f"stylepass-{manifest['version']}.zip"
    temp = archive.with_name(f".{archive.name}.partial")
    with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(ADDON.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                bundle.write(path, path.relative_to(ADDON).as_posix())
    os.replace(temp, archive)
    say(f"Blender extension: {archive}")
    return 0


# --- train-preset: rebuild a shipped preset from scratch ----------------------------------------
# python build.py train-preset NAME: dataset (stylepass dataset) -> training (stylepass train,
# resumable) -> export (stylepass export-model, renamed atomically onto presets/NAME/model/) ->
# held-out real assets (presets/NAME/real_assets.toml: the shared glTF assets, never trained on,
# scored by stylepass evaluate; presets/NAME/real_assets.json + real_assets.png) ->
# presets/NAME/CARD.md and presets/NAME/thumbnail.png. Work files: .build/presets/NAME/ (for
# another --presets-dir: DIR/.build/NAME/). Re-running the same command resumes every stage;
# other --pairs/--resolution/--steps/--device start the work folder afresh.

PRESETS_DIR = ROOT / "presets"
PRESET_STAGES = ("dataset", "training", "export", "real assets", "card", "thumbnail")
# Defaults per device: CPU gives a small but working model in minutes on 2 cores; CUDA a larger run.
PRESET_RUN_DEFAULTS = {
    "cpu": {"pairs": 48, "resolution": "128x128", "steps": None, "crop": 128, "batch": None},
    "cuda": {"pairs": 400, "resolution": "256x256", "steps": 20000, "crop": 256, "batch": 8},
}
PRESET_KINDS = {"enhance": "a fast render (Cycles, 8 samples, direct light only) made to look like a "
                           "256-sample path-traced render with global illumination (RAD generator)",
                "toon": "flat colour bands and ink lines (pix2pix U-Net)",
                "painterly": "the brush-stroke look of a Kuwahara filter (pix2pix U-Net)",
                "sketch": "pencil lines on paper white (pix2pix U-Net)"}

# Runs in .venv (torch): validation baseline, speed and thumbnail. argv: MODE ARGS...
_PRESET_HELPER = r'''
import json, sys, time
from pathlib import Path
mode, args = sys.argv[1], sys.argv[2:]
if mode == "baseline":  # the untouched input vs the targets of the val split, as validation crops them
    from stylepass.training.evaluate.metrics import psnr, ssim
    from stylepass.training.data.paired_dataset import PairedDataset
    data, max_size = Path(args[0]), int(args[1])
    val = PairedDataset(data, "val", ())
    sums = {"psnr": 0.0, "ssim": 0.0}
    for index in range(len(val)):
        item = val.load_pair(index)
        if max_size:
            h, w = item["image"].shape[-2:]
            top, left = max(0, (h - max_size) // 2), max(0, (w - max_size) // 2)
            item = {k: v[..., top:top + max_size, left:left + max_size] for k, v in item.items()}
        image, target = item["image"][None].float(), item["target"][None].float()
        sums["psnr"] += float(psnr(image, target).clamp(max=100.0).sum())
        sums["ssim"] += float(ssim(image, target).sum())
    print(json.dumps({"pairs": len(val), **{k: v / max(1, len(val)) for k, v in sums.items()}}))
elif mode == "speed":  # ms per 512x512 frame (median of 5 after a warm-up), random inputs
    import torch
    from stylepass.core.inference.predict import predict, resolve_device
    from stylepass.core.models.inputs import gbuffer_channels
    from stylepass.core.models.serialization import load_model
    device = resolve_device(args[1])
    model, config = load_model(Path(args[0]), device)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 512, 512, generator=generator).to(device)
    gbuffers = torch.rand(1, gbuffer_channels(config.gbuffer_passes), 512, 512, generator=generator).to(device)
    ids = torch.zeros(1, 512, 512, dtype=torch.long, device=device)
    times = []
    with torch.no_grad():
        for run in range(6):
            start = time.perf_counter()
            predict(model, image, gbuffers, ids)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if run:
                times.append((time.perf_counter() - start) * 1000.0)
    print(json.dumps({"ms": sorted(times)[len(times) // 2], "device": str(device),
                      "threads": torch.get_num_threads()}))
elif mode == "thumbnail":  # input | output | target of one validation pair
    # All three as Blender's Standard view shows them: scene-linear clipped to [0, 1], sRGB curve
    # (PNG targets as stored). The stylise PNG previews tone-map instead, which greys out whites.
    import numpy as np
    from PIL import Image
    from stylepass.core.io.colour import encode_srgb, to_rgb8
    from stylepass.core.io.exr_file import read_exr
    from stylepass.core.io.gbuffer import read_gbuffer
    from stylepass.core.io.preview_images import exr_rgb
    def standard_view(linear):
        return to_rgb8(encode_srgb(np.nan_to_num(linear)))
    frame, output, target, out = (Path(a) for a in args[:4])
    if target.suffix.lower() == ".exr":
        target_rgb = standard_view(exr_rgb(read_exr(target)))
    else:
        target_rgb = np.asarray(Image.open(target).convert("RGB"))
    panels = [standard_view(read_gbuffer(frame).beauty), standard_view(exr_rgb(read_exr(output))), target_rgb]
    height = max(p.shape[0] for p in panels)
    gap = np.full((height, 4, 3), 255, np.uint8)
    row = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    scale = max(1, 256 // height)
    picture = Image.fromarray(row).resize((row.shape[1] * scale, row.shape[0] * scale), Image.NEAREST)
    partial = out.with_name(out.name + ".partial.png")
    picture.save(partial)
    partial.replace(out)
'''


class PresetStageError(Exception):
    """A train-preset stage failed; the message names the stage."""


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _dump_toml(data: dict[str, dict[str, object]]) -> str:
    """Tables of scalars and lists (all a training config holds) as TOML text."""
    lines = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def _stage(name: str, argv: list[str | Path], log: Path | None = None) -> float:
    """Run one stage's command; returns its wall time in seconds, raises PresetStageError on failure."""
    say(f"[{name}] {' '.join(str(a) for a in argv)}")
    start = time.monotonic()
    code = subprocess.run([str(a) for a in argv], cwd=ROOT).returncode
    if code != 0:
        raise PresetStageError(f"stage '{name}' failed (exit code {code})"
                               + (f"; see {log}" if log else ""))
    return time.monotonic() - start


def _helper(stage: str, *args: object) -> dict:
    result = subprocess.run([str(bin_python(VENV)), "-c", _PRESET_HELPER, *[str(a) for a in args]],
                            cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise PresetStageError(f"stage '{stage}' failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout) if result.stdout.strip() else {}


def _parse_resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"[build] --resolution {text!r}: expected WxH, e.g. 128x128") from None
    if width < 16 or height < 16:
        raise SystemExit("[build] --resolution: at least 16x16")
    return width, height


def _real_assets_section(real: dict | None) -> str:
    """The card's figures on held-out real assets (the means of `stylepass evaluate`'s report)."""
    if real is None:
        return ""
    names = {"model": "this model", "input": "untouched input", "denoise": "Blender's Denoise node on the input"}
    rows = "\n".join(f"| {names[method]} | {real['means'][method]['psnr']:.2f} | {real['means'][method]['ssim']:.4f} |"
                     for method in names if method in real["means"])
    denoise_note = ("\nThe inputs are rendered with Cycles' own denoiser on (Blender's default), so the Denoise node "
                    "changes little:\nwhat the model adds is the missing indirect light, not less noise.\n"
                    if "denoise" in real["means"] else "")
    verdict = ("The model beats the untouched input on both." if real["beats_input"] else
               "**The model does not beat the untouched input on both figures here: treat it as unfinished.**")
    return f"""
## Quality on held-out real assets ({real['count']} scenes, {real['resolution']})

The shared glTF assets ({', '.join(real['assets'])}), never used in training, in procedural rooms
(`real_assets.toml`), rendered and scored like the validation split by
`stylepass evaluate` ([report](real_assets.json)). {verdict}

| | PSNR (dB) | SSIM |
|---|---|---|
{rows}
{denoise_note}
`real_assets.png`: {' | '.join(real['columns'])} of the first scenes.
"""


def _preset_card(name: str, info: dict) -> str:
    m, b, s = info["metrics"], info["baseline"], info["speed"]
    passes = ", ".join(["beauty (Combined)", *info["passes"], "material ids", "valid mask (alpha)"])
    device_words = "CPU" if info["device"] == "cpu" else "CUDA GPU"
    size_note = ("a small model trained on the CPU of a 2-core machine for a few minutes: it gets the "
                 "gist of the style, not its finesse; `python build.py train-preset "
                 f"{name} --device cuda` on a GPU machine trains the larger run" if info["device"] == "cpu"
                 else "trained on a GPU")
    dataset_note = (f"{info['dataset_s']:.0f} s" if not info["dataset_resumed"]
                    else f"{info['dataset_s']:.0f} s (checking a dataset rendered earlier by the same "
                         "`stylepass dataset` command, not timed here)")
    return f"""# {name}

{PRESET_KINDS.get(name, name)}.

**This is {size_note}.** Every figure below was measured by the run that made this model
(`python build.py train-preset {info['command_args']}`).

## Passes it needs

{passes}: the frame exports of the Stylepass add-on (`stylepass export`) have them all.
Model: `model/model.safetensors` + `model/config.json` ({info['model_family']}, {info['weights_mb']:.1f} MB of weights).

## How it was trained

| | |
|---|---|
| dataset | `dataset.toml`: {info['pairs']} procedural scenes at {info['resolution']} ({info['train_pairs']} train, {info['val_pairs']} validation, split by scene) |
| training | `train.toml`: {info['steps']} steps, batch {info['batch']}, {info['crop']} px crops |
| device | {device_words} ({info['device_name']}) |
| time | dataset {dataset_note}; training {info['train_s']:.0f} s (wall, summed over resumed runs); export {info['export_s']:.1f} s |

## Quality (validation split, {info['val_pairs']} held-out scenes, full {info['resolution']} frames)

| | PSNR (dB) | SSIM |
|---|---|---|
| this model | {m['psnr']:.2f} | {m['ssim']:.4f} |
| untouched input | {b['psnr']:.2f} | {b['ssim']:.4f} |

Model figures: `val/psnr` and `val/ssim` of the run's final validation (step {m['step']}); input
figures: the same metric functions (`stylepass.training.evaluate.metrics`) on the same pairs, with the
input's tone-mapped beauty in place of the output. Procedural validation scenes; the real assets
follow.
{_real_assets_section(info.get("real_assets"))}
## Speed

{s['ms']:.0f} ms per 512x512 frame on the {device_words} ({s['device']}, {s['threads']} threads;
median of 5 after a warm-up, whole frame, no tiling).

`thumbnail.png`: input | output | target of the first validation pair.
"""


def _evaluate_real_assets(stylepass: Path, preset: Path, work: Path, model_dir: Path,
                          args: argparse.Namespace) -> dict | None:
    """Render presets/NAME/real_assets.toml (resumable) and score the model on it with `stylepass
    evaluate`; writes presets/NAME/real_assets.json (the report) and real_assets.png (its sheet).
    Returns the card's summary, or None when the preset has no real_assets.toml."""
    recipe = preset / "real_assets.toml"
    if not recipe.is_file():
        say(f"[real assets] {recipe} not found: no figures on real assets in the card")
        return None
    data, evaluation = work / "real_assets", work / "real_assets_eval"
    say(f"[real assets] held-out real assets from {recipe} into {data}")
    _stage("real assets", [stylepass, "dataset", recipe, "--out", data, "--blender", args.blender])
    _stage("real assets", [stylepass, "evaluate", model_dir, "--data", data, "--out", evaluation,
                           "--device", args.device, "--blender", args.blender, "--sheet-rows", "3"])
    report = json.loads((evaluation / "report.json").read_text())
    for name, source in (("real_assets.json", evaluation / "report.json"), ("real_assets.png", evaluation / report["sheet"])):
        shutil.copyfile(source, preset / f".{name}.partial")
        os.replace(preset / f".{name}.partial", preset / name)
    means = report["means"]
    recipe_record = report["dataset"]["identity"]["recipe"]
    width, height = recipe_record["dataset"]["resolution"]
    real = {"means": means, "count": report["count"], "resolution": f"{width}x{height}",
            "assets": sorted({Path(a).stem for a in recipe_record["scenes"]["assets"]}),
            "columns": ["input", "output", "target"] + (["denoise"] if "denoise" in means else []),
            "beats_input": all(means["model"][k] > means["input"][k] for k in ("psnr", "ssim"))}
    summary = ", ".join(f"{method} {means[method]['psnr']:.2f} dB / {means[method]['ssim']:.4f}"
                        for method in ("model", "input", "denoise") if method in means)
    say(f"[real assets] {summary}" + ("" if real["beats_input"] else
                                      " - WARNING: the model does not beat the untouched input"))
    return real


def train_preset(args: argparse.Namespace) -> int:
    """Rebuild presets/NAME (dataset, training, export, card, thumbnail); resumable."""
    presets_dir = Path(args.presets_dir).resolve() if args.presets_dir else PRESETS_DIR
    preset = presets_dir / args.name
    recipe, train_config = preset / "dataset.toml", preset / "train.toml"
    for path in (recipe, train_config):
        if not path.is_file():
            say(f"preset {args.name}: {path} not found")
            return 2
    stylepass = VENV / "bin" / "stylepass"
    if not stylepass.exists():
        say(f"{stylepass} not found: run `python build.py setup` first")
        return 4
    defaults = PRESET_RUN_DEFAULTS[args.device]
    config = tomllib.loads(train_config.read_text())
    pairs = args.pairs or defaults["pairs"]
    resolution = args.resolution or defaults["resolution"]
    width, height = _parse_resolution(resolution)
    steps = args.steps or defaults["steps"] or int(config.get("train", {}).get("steps", 20000))
    work = (ROOT / ".build" / "presets" / args.name if presets_dir == PRESETS_DIR
            else presets_dir / ".build" / args.name)
    dataset, run_dir = work / "dataset", work / "run"

    # The run's own config: the preset's, with crops that fit the frames and this run's steps.
    train_section = dict(config.get("train", {}))
    crop = min(int(train_section.get("crop_size", defaults["crop"])), width, height)
    if args.device == "cuda":
        crop = min(defaults["crop"], width, height)
        train_section["batch_size"] = defaults["batch"]
    train_section.update(steps=steps, crop_size=crop)
    config["train"] = train_section

    # Same settings but more steps: the dataset and the run resume (the trainer allows raising steps).
    # Other training settings: the run starts afresh on the datasets already rendered.
    settings = _dump_toml({**config, "train": {k: v for k, v in train_section.items() if k != "steps"}})
    real_recipe = preset / "real_assets.toml"
    params = {"pairs": pairs, "resolution": f"{width}x{height}", "blender": args.blender,
              "recipe": recipe.read_text(), "real_assets": real_recipe.read_text() if real_recipe.is_file() else None,
              "device": args.device, "settings": settings}
    params_file = work / "params.json"
    if params_file.is_file():
        old = json.loads(params_file.read_text())
        if any(old.get(key) != params[key] for key in ("pairs", "resolution", "blender", "recipe", "real_assets")):
            say(f"dataset settings differ from the previous run in {work}: starting afresh")
            shutil.rmtree(work)
        elif old != params:
            say(f"training settings differ from the previous run in {work}: training afresh on its datasets")
            shutil.rmtree(run_dir, ignore_errors=True)
            times_file = work / "times.json"
            if times_file.is_file():
                kept = {k: v for k, v in json.loads(times_file.read_text()).items() if k == "dataset"}
                times_file.write_text(json.dumps(kept))
    work.mkdir(parents=True, exist_ok=True)
    params_file.write_text(json.dumps(params, indent=1))
    run_config = work / "train.toml"
    run_config.write_text(f"# generated by build.py train-preset from {train_config}\n" + _dump_toml(config))
    command_args = " ".join([args.name, f"--pairs {pairs}", f"--steps {steps}", f"--resolution {width}x{height}",
                             f"--device {args.device}", f"--blender {args.blender}"])
    times_file = work / "times.json"  # stage seconds summed over the invocations of these settings
    times = json.loads(times_file.read_text()) if times_file.is_file() else {}

    def add_time(stage: str, seconds: float) -> float:
        times[stage] = times.get(stage, 0.0) + seconds
        times_file.write_text(json.dumps(times))
        return times[stage]

    try:
        # 1. dataset
        say(f"[dataset] {pairs} pairs at {width}x{height} from {recipe} into {dataset}")
        dataset_resumed = (dataset / "pairs.jsonl").is_file() and "dataset" not in times
        dataset_s = _stage("dataset", [stylepass, "dataset", recipe, "--out", dataset, "--count", pairs,
                                       "--resolution", f"{width}x{height}", "--blender", args.blender])
        dataset_s = add_time("dataset", dataset_s)
        rows = [json.loads(line) for line in (dataset / "pairs.jsonl").read_text().splitlines() if line.strip()]
        val_rows = [r for r in rows if r["split"] == "val"]
        if not val_rows:
            raise PresetStageError("stage 'dataset': no validation pairs (every 1/validation_fraction-th scene "
                                   "is one): raise --pairs")

        # 2. training (resumes a stopped run of the same settings)
        resume = (run_dir / "checkpoints" / "latest.json").is_file()
        say(f"[training] {steps} steps on {args.device}, crops {crop} px"
            + (f", resuming {run_dir}" if resume else f", run folder {run_dir}"))
        train_s = _stage("training", [stylepass, "train", run_config, "--data", dataset, "--out", run_dir,
                                      "--steps", steps, "--device", args.device, *(["--resume"] if resume else [])])
        train_s = add_time("training", train_s)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        finals = [r for r in records if "val/psnr" in r]
        if not finals or finals[-1]["step"] != steps:
            raise PresetStageError(f"stage 'training': no validation metrics at step {steps} in {run_dir}/metrics.jsonl")
        metrics = {"psnr": finals[-1]["val/psnr"], "ssim": finals[-1]["val/ssim"], "step": steps}

        # 3. export: into a temp folder, then renamed onto presets/NAME/model/
        model_dir = preset / "model"
        temp_model = preset / ".model.partial"
        shutil.rmtree(temp_model, ignore_errors=True)
        export_s = _stage("export", [stylepass, "export-model", run_dir, "--out", temp_model])
        old = preset / ".model.old"
        shutil.rmtree(old, ignore_errors=True)
        if model_dir.exists():
            os.replace(model_dir, old)
        os.replace(temp_model, model_dir)
        shutil.rmtree(old, ignore_errors=True)
        weights_mb = (model_dir / "model.safetensors").stat().st_size / 1e6
        model_config = json.loads((model_dir / "config.json").read_text())["model"]
        say(f"[export] {model_dir} ({weights_mb:.1f} MB)")

        # 4. held-out real assets: dataset from real_assets.toml, then stylepass evaluate
        real_assets = _evaluate_real_assets(stylepass, preset, work, model_dir, args)

        # 5. card: baseline on the same validation pairs, speed on this device
        say("[card] untouched-input baseline on the validation pairs; speed at 512x512")
        val_max = int(train_section.get("val_max_size", 512))
        baseline = _helper("card", "baseline", dataset, val_max)
        speed = _helper("card", "speed", model_dir, args.device)
        device_name = "this machine's CPU" if args.device == "cpu" else "GPU"
        info = {"command_args": command_args, "metrics": metrics, "baseline": baseline, "speed": speed,
                "passes": list(model_config.get("gbuffer_passes", [])), "device": args.device,
                "device_name": f"{device_name}, {os.cpu_count()} cores" if args.device == "cpu" else device_name,
                "model_family": "RAD generator" if model_config.get("family") == "rad" else "pix2pix U-Net",
                "weights_mb": weights_mb, "pairs": len(rows), "train_pairs": len(rows) - len(val_rows),
                "val_pairs": len(val_rows), "resolution": f"{width}x{height}", "steps": steps,
                "batch": train_section.get("batch_size", 4), "crop": crop, "dataset_s": dataset_s,
                "dataset_resumed": dataset_resumed, "train_s": train_s, "export_s": export_s,
                "real_assets": real_assets}
        card = preset / "CARD.md"
        card.with_name("CARD.md.partial").write_text(_preset_card(args.name, info))
        os.replace(card.with_name("CARD.md.partial"), card)
        (work / "card.json").write_text(json.dumps(info, indent=1))
        say(f"[card] {card}: PSNR {metrics['psnr']:.2f} dB / SSIM {metrics['ssim']:.4f} "
            f"(input {baseline['psnr']:.2f} / {baseline['ssim']:.4f}), {speed['ms']:.0f} ms per 512x512 frame")

        # 6. thumbnail: input | output | target of the first validation pair
        frame = dataset / val_rows[0]["input"]
        stylised = work / "thumbnail"
        shutil.rmtree(stylised, ignore_errors=True)
        _stage("thumbnail", [stylepass, "stylise", frame, "--model", model_dir, "--out", stylised,
                             "--device", args.device])
        output = next(stylised.glob("stylised_*.exr"), None)
        if output is None:
            raise PresetStageError(f"stage 'thumbnail': stylise wrote no EXR in {stylised}")
        _helper("thumbnail", "thumbnail", frame, output, dataset / val_rows[0]["target"], preset / "thumbnail.png")
        say(f"[thumbnail] {preset / 'thumbnail.png'}")
    except PresetStageError as error:
        say(f"train-preset {args.name}: {error}")
        return 1
    say(f"preset {args.name} rebuilt in {preset}")
    return 0


def add_train_preset_parser(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "train-preset", help="rebuild presets/NAME from scratch: dataset, training, export, card, thumbnail")
    command.set_defaults(handler=train_preset)
    command.add_argument("name", help="preset folder name (enhance, toon, painterly, sketch)")
    command.add_argument("--pairs", type=int, help="procedural scenes to render (default: 48 on cpu, 400 on cuda)")
    command.add_argument("--steps", type=int, help="training steps (default: train.toml's on cpu, 20000 on cuda)")
    command.add_argument("--resolution", help="WxH of the dataset frames (default: 128x128 on cpu, 256x256 on cuda)")
    command.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    command.add_argument("--blender", choices=[t.version for t in BLENDERS], default="5.2",
                         help="Blender that renders the dataset (default 5.2)")
    command.add_argument("--presets-dir", help="folder that holds the presets (default: presets/)")


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
        if name == "test":
            command.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
        if name == "demo":
            command.add_argument("--out", default=str(DEMO_OUT), help="where the results go (default: demo_output/)")
            command.add_argument("--resolution", default=DEMO_RESOLUTION, help="WxH (default: %(default)s)")
    add_train_preset_parser(commands)
    args = parser.parse_args()
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
