"""The sRGB transfer function (IEC 61966-2-1) and the models' tone map, one definition each for
numpy arrays and torch tensors.

sRGB: both directions take and return values in [0, 1] (inputs are clipped there first), with the same
type as they were given: ``np.ndarray`` in, ``np.ndarray`` out; ``torch.Tensor`` in, ``torch.Tensor``
out (differentiable, on the tensor's device). Any shape. torch is never imported here: a tensor's own
methods do the work, so this module serves the torch-free paths too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

Array = TypeVar("Array", np.ndarray, "torch.Tensor")

_LINEAR_LIMIT = 0.0031308  # linear values up to this are encoded by the straight segment
_ENCODED_LIMIT = 0.04045   # the same point, encoded
_SLOPE = 12.92
_GAMMA = 2.4


def _where(condition: Array, a: Array, b: Array) -> Array:
    if isinstance(condition, np.ndarray):
        return np.where(condition, a, b)
    return a.where(condition, b)


def _clip(x: Array, low: float, high: float) -> Array:
    if isinstance(x, np.ndarray):
        return np.clip(x, low, high)
    return x.clamp(low, high)


def encode_srgb(linear: Array) -> Array:
    """Linear values -> sRGB-encoded values, both in [0, 1] (NaN is not handled: clean first)."""
    x = _clip(linear, 0.0, 1.0)
    # The power runs on values >= the limit only, so its gradient stays finite at 0.
    curved = 1.055 * _clip(x, _LINEAR_LIMIT, 1.0) ** (1 / _GAMMA) - 0.055
    return _where(x <= _LINEAR_LIMIT, _SLOPE * x, curved)


def decode_srgb(encoded: Array) -> Array:
    """sRGB-encoded values -> linear values, both in [0, 1]."""
    x = _clip(encoded, 0.0, 1.0)
    curved = ((_clip(x, _ENCODED_LIMIT, 1.0) + 0.055) / 1.055) ** _GAMMA
    return _where(x <= _ENCODED_LIMIT, x / _SLOPE, curved)


# Largest model-range value that inverse_tonemap maps back (x <= 1e4).
_MAX_MODEL_VALUE = 1.0 - 1e-4


def tonemap(linear: Array) -> Array:
    """Scene-linear HDR (>= 0, negatives clamped to 0) to the models' range [0, 1): x / (1 + x)."""
    x = _clip(linear, 0.0, float("inf"))
    return x / (1.0 + x)


def inverse_tonemap(model_range: Array) -> Array:
    """The models' range back to scene-linear: y / (1 - y), with y clipped to [0, 1 - 1e-4]."""
    y = _clip(model_range, 0.0, _MAX_MODEL_VALUE)
    return y / (1.0 - y)


def to_rgb8(encoded: np.ndarray) -> np.ndarray:
    """Encoded (3, H, W) values in [0, 1] -> (H, W, 3) uint8, rounded to nearest."""
    return (np.clip(encoded, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
