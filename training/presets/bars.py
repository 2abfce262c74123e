"""The quality bars a rebuilt preset must clear on its held-out real assets before it is installed.

``presets/NAME/bars.toml`` (every key optional; a missing file means the defaults)::

    min_psnr_gain_db = 3.0   # model PSNR minus the untouched input's, on every scene
    min_ssim_gain = 0.0      # model SSIM minus the input's, on every scene (> this, so 0 means "beats")
    min_psnr_db = 0.0        # model PSNR on every scene (toon asks 28)
    min_detail_ratio = 0.0   # model fine-detail ratio on every scene (style presets ask 0.7)
    beat_denoise = false     # also beat Blender's Denoise node in PSNR and SSIM on every scene
    beat_peer = false        # also beat the peer render (real_assets.toml's [peer]) in PSNR and SSIM

Every bar is checked scene by scene against ``stylepass evaluate``'s report (``scenes``: per-scene
means of ``psnr``, ``ssim`` and ``detail`` for ``model``, ``input`` and, for enhance, ``denoise`` and
``peer``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

BARS_FILE = "bars.toml"


class BarsError(ValueError):
    """bars.toml cannot be read or has an unknown key or a wrong value; the message says which."""


@dataclasses.dataclass(frozen=True)
class QualityBars:
    """What every held-out scene must show (see the module docstring)."""

    min_psnr_gain_db: float = 3.0
    min_ssim_gain: float = 0.0
    min_psnr_db: float = 0.0
    min_detail_ratio: float = 0.0
    beat_denoise: bool = False
    beat_peer: bool = False


def load_bars(preset: Path) -> QualityBars:
    """``preset/bars.toml`` as QualityBars (defaults for absent keys or file); BarsError when it is
    unreadable, has an unknown key or a value of the wrong type."""
    path = Path(preset) / BARS_FILE
    if not path.is_file():
        return QualityBars()
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise BarsError(f"{path}: cannot be read as TOML ({error})") from None
    fields = {field.name: field.type for field in dataclasses.fields(QualityBars)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BarsError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    for key, value in data.items():
        wanted_bool = fields[key] in (bool, "bool")
        ok = isinstance(value, bool) if wanted_bool else (isinstance(value, (int, float))
                                                          and not isinstance(value, bool))
        if not ok:
            raise BarsError(f"{path}: {key} = {value!r}: expected {'true or false' if wanted_bool else 'a number'}")
    bars: dict[str, Any] = {key: (value if isinstance(value, bool) else float(value)) for key, value in data.items()}
    return QualityBars(**bars)


def missed_bars(report: dict[str, Any], bars: QualityBars) -> list[str]:
    """One line per scene and bar the model misses in an evaluate report (empty: every bar is met)."""
    missed = []
    for scene, figures in report["scenes"].items():
        model, base = figures["model"], figures["input"]
        gain = model["psnr"] - base["psnr"]
        if gain < bars.min_psnr_gain_db:
            missed.append(f"{scene}: PSNR {model['psnr']:.2f} dB is {gain:+.2f} dB over the untouched input "
                          f"({base['psnr']:.2f} dB); the bar is +{bars.min_psnr_gain_db:.2f} dB")
        if model["ssim"] - base["ssim"] <= bars.min_ssim_gain:
            missed.append(f"{scene}: SSIM {model['ssim']:.4f} does not beat the untouched input's "
                          f"{base['ssim']:.4f} by more than {bars.min_ssim_gain:.4f}")
        if model["psnr"] < bars.min_psnr_db:
            missed.append(f"{scene}: PSNR {model['psnr']:.2f} dB is under the bar of {bars.min_psnr_db:.2f} dB")
        if "detail" in model and model["detail"] < bars.min_detail_ratio:
            missed.append(f"{scene}: keeps {model['detail']:.2f} of the target's fine detail; the bar is "
                          f"{bars.min_detail_ratio:.2f}")
        for wanted, method, name, absent in (
                (bars.beat_denoise, "denoise", "Denoise", "evaluate ran with --no-denoise"),
                (bars.beat_peer, "peer", "peer", "the dataset's recipe has no [peer] render")):
            peer = figures.get(method)
            if wanted and peer is None:
                missed.append(f"{scene}: no {name} baseline in the report to beat ({absent})")
            elif wanted and (model["psnr"] <= peer["psnr"] or model["ssim"] <= peer["ssim"]):
                missed.append(f"{scene}: {model['psnr']:.2f} dB / {model['ssim']:.4f} does not beat the {name} "
                              f"{'node' if method == 'denoise' else 'render'}'s {peer['psnr']:.2f} dB / "
                              f"{peer['ssim']:.4f}")
    return missed
