"""A preset's ``CARD.md``: what it does, the passes it needs, how it was trained, its quality on the
validation split and on held-out real assets, its speed. Every figure comes from the run that made it.

The card is written from the run's ``info`` (also saved as ``.build/presets/NAME/card.json``):

- ``command_args``: the ``train-preset`` arguments that reproduce the run;
- ``metrics``: ``{"psnr", "ssim", "step"}`` of the run's final validation;
- ``baseline``: ``{"pairs", "psnr", "ssim"}`` of the untouched input on the same pairs;
- ``speed``: ``{"ms", "device", "threads"}`` per 512x512 frame;
- ``real_assets``: :func:`stylepass.training.presets.pipeline.evaluate_real_assets`'s summary, or None;
- the run's settings and times: ``passes``, ``device``, ``device_name``, ``model_family``, ``weights_mb``,
  ``pairs``, ``train_pairs``, ``val_pairs``, ``resolution``, ``steps``, ``batch``, ``crop``, ``dataset_s``,
  ``dataset_resumed``, ``train_s``, ``export_s``.
"""

from __future__ import annotations

from typing import Any

# What each shipped preset does: the card's first line.
PRESET_KINDS = {"enhance": "a real-time render (Eevee, 16 samples, ray tracing on) made to look like a "
                           "256-sample Cycles path-traced render with global illumination (RAD generator)",
                "toon": "flat colour bands and ink lines (pix2pix U-Net)",
                "painterly": "the brush-stroke look of a Kuwahara filter (pix2pix U-Net)",
                "sketch": "pencil lines on paper white (pix2pix U-Net)"}


def render_words(render: dict[str, Any]) -> str:
    """A recipe's fast render (``{"engine", "samples", "indirect"}``) in words: ``Eevee, 16 samples, ray
    tracing on``."""
    light = ("ray tracing" if render["engine"] == "eevee" else "indirect light") + (
        " on" if render["indirect"] else " off")
    return f"{render['engine'].capitalize()}, {render['samples']} samples, {light}"


def cost_section(real: dict[str, Any]) -> str:
    """Per-frame cost of the model's path (input render + model) beside the peer's and the target's."""
    seconds = real.get("render_seconds")
    if not seconds or real.get("model_seconds") is None:
        return ""
    def shown(value: float | None) -> str:
        return "not timed" if value is None else f"{value:.2f} s"

    with_model = None if seconds["input"] is None else seconds["input"] + real["model_seconds"]
    eevee_note = ("\nEevee renders here through software OpenGL (no GPU), far slower than on an artist's GPU, where "
                  "it runs in real time:\ncompare the two Eevee renders with each other, not with Cycles.\n"
                  if (real.get("peer") or {}).get("engine") == "eevee" else "")
    return f"""
Cost per frame at this size on this machine (render wall times recorded by `stylepass dataset`, the
input and peer each the second of two renders, once Eevee's shaders are compiled; the model timed by `stylepass
evaluate` in {real['runtime']}, median):

| | seconds |
|---|---|
| input render | {shown(seconds['input'])} |
| this model on it | {real['model_seconds']:.2f} s |
| **input + model** | **{shown(with_model)}** |
| the peer render | {shown(seconds['peer'])} |
| the target render | {shown(seconds['target'])} |
{eevee_note}"""


def int8_section(real: dict[str, Any]) -> str:
    """The int8 model's figures (``stylepass stylise --precision int8``) beside float32's, same scenes."""
    int8 = real.get("int8")
    if not int8:
        return ""
    fp32, fast = real["means"]["model"], int8["means"]
    return f"""
The int8 model (`model.int8.onnx`, `stylepass stylise --precision int8`: its convolutions in int8,
the fast path on a CPU) on the same scenes:

| | PSNR (dB) | SSIM | fine detail |
|---|---|---|---|
| float32 | {fp32['psnr']:.2f} | {fp32['ssim']:.4f} | {fp32['detail']:.2f} |
| int8 | {fast['psnr']:.2f} | {fast['ssim']:.4f} | {fast['detail']:.2f} |
"""


def real_assets_section(real: dict[str, Any] | None) -> str:
    """The card's figures on held-out real assets (the means of `stylepass evaluate`'s report)."""
    if real is None:
        return ""
    names = {"model": "this model", "input": "untouched input", "denoise": "Blender's Denoise node on the input",
             "peer": "the peer: " + (render_words(real["peer"]) if real.get("peer") else "the render a user "
                                     "would pick instead")}
    rows = "\n".join(f"| {names[method]} | {real['means'][method]['psnr']:.2f} | {real['means'][method]['ssim']:.4f} | "
                     f"{real['means'][method]['detail']:.2f} |" for method in names if method in real["means"])
    denoise_note = ("\nThe Denoise node takes noise away, nothing more: light the fast render lacks (bounces, "
                    "reflections) it cannot add.\n" if "denoise" in real["means"] else "")
    if "peer" in real["means"]:
        denoise_note += ("\nThe peer is what a user would render instead of running the model, at about the same "
                         "cost: the same scene, re-rendered with the settings above.\n" + cost_section(real))
    verdict = ("The model beats the untouched input on both." if real["beats_input"] else
               "**The model does not beat the untouched input on both figures here: treat it as unfinished.**")
    missed = real.get("missed_bars", [])
    bars = ("Quality bars (`bars.toml`), scene by scene: all met.\n" if not missed else
            "**Quality bars (`bars.toml`) missed (installed with `--accept-worse`):**\n\n"
            + "".join(f"- {line}\n" for line in missed))
    return f"""
## Quality on held-out real assets ({real['count']} scenes, {real['resolution']})

The shared glTF assets ({', '.join(real['assets'])}), never used in training, in procedural rooms
(`real_assets.toml`), rendered and scored like the validation split by
`stylepass evaluate` ([report](real_assets.json)). {verdict}

| | PSNR (dB) | SSIM | fine detail (output / target) |
|---|---|---|---|
{rows}
{denoise_note}
{bars}
`real_assets.png`: {' | '.join(real['columns'])} of the first scenes.
{int8_section(real)}"""


def preset_card(name: str, info: dict[str, Any]) -> str:
    """The Markdown of presets/``name``/CARD.md from the run's ``info`` (keys: this module's docstring)."""
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
    dataset_row = (f"`dataset.toml`: {info['pairs']} procedural scenes at {info['resolution']} "
                   f"({info['train_pairs']} train, {info['val_pairs']} validation, split by scene)")
    time_row = (f"dataset {dataset_note}; training {info['train_s']:.0f} s (wall, summed over resumed runs); "
                f"export {info['export_s']:.1f} s")
    return f"""# {name}

{PRESET_KINDS.get(name, name)}.

**This is {size_note}.** Every figure below was measured by the run that made this model
(`python build.py train-preset {info['command_args']}`).

## Passes it needs

{passes}: the frame exports of the Stylepass add-on (`stylepass export`) have them all.
Model: `model/model.safetensors` + `model/config.json` ({info['model_family']}, \
{info['weights_mb']:.1f} MB of weights), and `model/model.onnx` for ONNX Runtime.

## How it was trained

| | |
|---|---|
| dataset | {dataset_row} |
| training | `train.toml`: {info['steps']} steps, batch {info['batch']}, {info['crop']} px crops |
| device | {device_words} ({info['device_name']}) |
| time | {time_row} |

## Quality (validation split, {info['val_pairs']} held-out scenes, full {info['resolution']} frames)

| | PSNR (dB) | SSIM |
|---|---|---|
| this model | {m['psnr']:.2f} | {m['ssim']:.4f} |
| untouched input | {b['psnr']:.2f} | {b['ssim']:.4f} |

Model figures: `val/psnr` and `val/ssim` of the run's final validation (step {m['step']}); input
figures: the same metric functions (`stylepass.training.evaluate.metrics`) on the same pairs, with the
input's tone-mapped beauty in place of the output. Procedural validation scenes; the real assets
follow.
{real_assets_section(info.get("real_assets"))}
## Speed

{s['ms']:.0f} ms per 512x512 frame on the {device_words} ({s['device']}, {s['threads']} threads;
median of 5 after a warm-up, whole frame, no tiling).

`thumbnail.png`: input | output | target of the first validation pair.
"""
