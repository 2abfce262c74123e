"""pix2pix U-Net generator (Isola et al. 2017), fully convolutional and deterministic at inference.

Differences from the paper: no batch norm and no dropout (the same frame always gives the same
output, train or eval mode alike); parameter-free normalisation from :mod:`.norms`; bilinear
upsampling + 3x3 convolution instead of transposed convolutions (no checkerboard artefacts).
Any input size works: the input is padded to a multiple of 2^depth and the output cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .guides import edge_guides
from .kuwahara import KuwaharaFilter
from .norms import make_norm
from .padding import crop_to, pad_to_multiple

RESIDUAL_EPS = 1e-3  # the input is clamped to [eps, 1 - eps] before its logit (finite, +-6.9)
# Demodulated output: softplus(bias) at the start, so the untrained model paints half the albedo and
# half the render, and training learns, pixel by pixel, the style's light on the surfaces' own colours
# and how much of the render to keep where the albedo pass is blind (metals, glass, emission).
SHADING_START = 0.5
RENDER_START = 0.5
BASE_START = 0.01
GLOSSY_SHADING_START = 0.1  # the glossy colour of plastics and paint is a faint grey: start with little of it


def level_width(base_width: int, level: int, max_multiplier: int = 8) -> int:
    """Channels at U-Net level `level` (0 = full resolution): base * 2^level, capped at base * 8."""
    return base_width * min(2**level, max_multiplier)


class DownBlock(nn.Module):
    """Stride-2 4x4 convolution, norm, LeakyReLU(0.2): (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)
        self.norm = make_norm(norm, out_channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class UpBlock(nn.Module):
    """Bilinear x2 upsample, 3x3 conv over [upsampled, skip] channels, norm, ReLU: -> (B, C_out, 2H, 2W)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1)
        # A Python int, not up.shape[1]: an ONNX trace then slices the weights by constants, which
        # the export folds into two fixed convolutions (ONNX Runtime packs those for its fast
        # blocked layout; weights sliced at run time by a traced shape cost 3x on the CPU).
        self.split = in_channels
        self.norm = make_norm(norm, out_channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # conv(cat([up, skip])) computed as conv_up(up) + conv_skip(skip) with the two halves of
        # the same weights: no full-resolution concatenated copy (a 1080p frame on the CPU: about
        # 20% faster); the weights and their names are those of the one convolution.
        up = self.up(x)
        weight, split = self.conv.weight, self.split
        out = F.conv2d(up, weight[:, :split], self.conv.bias, padding=1)
        out = out + F.conv2d(skip, weight[:, split:], None, padding=1)
        return self.act(self.norm(out))


def positive(x: torch.Tensor) -> torch.Tensor:
    """Softplus, ``log(1 + exp(x))`` (> 0, any shape), written as ``relu(x) + log1p(exp(-|x|))``: the
    same values to float rounding, and in ONNX Runtime twice as fast as its Softplus operator, which is
    not vectorised (55 against 119 ms over a 12-channel 1080p head on 2 cores; issue 16)."""
    return F.relu(x) + torch.log1p(torch.exp(-x.abs()))


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


class UNetGenerator(nn.Module):
    """U-Net styliser: image (+ optional G-buffers) -> stylised image, model range [0, 1).

    forward(image (B, 3, H, W) in [0, 1], gbuffers (B, C_g, H, W) or None, material_id ignored)
    returns (B, 3, H, W) in [0, 1). With `gbuffer_channels` > 0 the G-buffers are concatenated to
    the image as extra input channels; `pass_slices` says which channels hold which pass (needed by
    the two options below). Outputs, one of:

    - plain: sigmoid of the head;
    - `residual`: the head's output is added to the input's logit before the sigmoid, and the head
      starts at zero: the untrained model is the identity, and training learns only what the style
      changes;
    - `demodulated` (Deep Shading, Nalbach et al. 2017): the head predicts a shading s, a render gain
      g and a base b (3 channels each, softplus, so >= 0) and the output is
      ``albedo * s + render * g + b`` in scene-linear, tone-mapped to the model range. Surface colour
      comes straight from the albedo pass, so the style's flat colours stay crisp and the render's
      reflections and noise need not leak through; g keeps the render where the albedo pass is blind
      (metals, glass, emission: their Diffuse Color is black), b adds what neither has (lines, sky).
      When the model reads ``glossy_albedo`` (the colour of metals and coats), the head predicts a
      second shading s_g for it (12 channels): ``albedo * s + glossy_albedo * s_g + render * g + b``,
      so a metal gets flat bands of its own colour instead of the render's reflections.

    With `edge_guides` the depth and normal edges of :mod:`.guides` (2 channels) join the inputs.
    With `kuwahara_radius` > 0 a fixed generalized Kuwahara filter (:mod:`.kuwahara`) of that
    radius ends the network: the network learns the colours, the filter lays them down as paint.
    """

    def __init__(
        self, base_width: int = 64, depth: int = 7, gbuffer_channels: int = 0, norm: str = "channel",
        residual: bool = False, demodulated: bool = False, edge_guides: bool = False,
        pass_slices: Mapping[str, tuple[int, int]] | None = None, kuwahara_radius: int = 0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"U-Net depth must be >= 1, got {depth}")
        slices = dict(pass_slices or {})
        needed = (["albedo"] if demodulated else []) + (["depth", "normal"] if edge_guides else [])
        if missing := [name for name in needed if name not in slices]:
            raise ValueError(f"the U-Net's options need the G-buffer pass(es) {', '.join(missing)}")
        if residual and demodulated:
            raise ValueError("a U-Net output is residual or demodulated, not both")
        self.depth = depth
        self.multiple = 2**depth  # inputs are padded to a multiple of this
        self.gbuffer_channels = gbuffer_channels
        self.pass_slices = slices
        self.demodulated = demodulated
        self.edge_guides = edge_guides
        self.kuwahara = KuwaharaFilter(kuwahara_radius) if kuwahara_radius > 0 else None
        in_channels = 3 + gbuffer_channels + (2 if edge_guides else 0)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, base_width, 3, padding=1), nn.LeakyReLU(0.2))
        widths = [level_width(base_width, level) for level in range(depth + 1)]
        self.downs = nn.ModuleList(
            DownBlock(widths[level], widths[level + 1], norm) for level in range(depth)
        )
        self.ups = nn.ModuleList(
            UpBlock(widths[level + 1], widths[level], widths[level], norm)
            for level in reversed(range(depth))
        )
        self.glossy = demodulated and "glossy_albedo" in slices
        self.head = nn.Conv2d(base_width, (12 if self.glossy else 9) if demodulated else 3, 3, padding=1)
        head_bias = self.head.bias
        assert head_bias is not None  # a Conv2d has one unless made with bias=False
        self.residual = residual
        if residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(head_bias)
        if demodulated:
            with torch.no_grad():
                self.head.weight.mul_(0.1)  # start close to the half-albedo, half-render picture
                head_bias[:3] = _inverse_softplus(SHADING_START)
                head_bias[3:6] = _inverse_softplus(RENDER_START)
                head_bias[6:9] = _inverse_softplus(BASE_START)
                head_bias[9:] = _inverse_softplus(GLOSSY_SHADING_START)

    def _pass(self, gbuffers: torch.Tensor, name: str) -> torch.Tensor:
        start, stop = self.pass_slices[name]
        return gbuffers[:, start:stop].to(torch.float32)

    def _demodulated(self, out: torch.Tensor, image: torch.Tensor, gbuffers: torch.Tensor) -> torch.Tensor:
        """The demodulated output (see the class docstring) in the model range, (N, 3, H, W) in [0, 1).

        out: the head's (N, 9 or 12, H, W); image: the input (N, 3, H, W) in [0, 1]."""
        terms = positive(out.float()).split(3, dim=1)
        shading, gain, base = terms[:3]
        render = image.float().clamp(0.0, 1.0 - RESIDUAL_EPS)
        render = render / (1.0 - render)  # the model range back to scene-linear
        linear = self._pass(gbuffers, "albedo") * shading + render * gain + base
        if self.glossy:
            linear = linear + self._pass(gbuffers, "glossy_albedo") * terms[3]
        return (linear / (1.0 + linear)).to(out.dtype)

    def forward(
        self,
        image: torch.Tensor,
        gbuffers: torch.Tensor | None = None,
        material_id: torch.Tensor | None = None,
    ) -> torch.Tensor:
        del material_id  # the U-Net does not use per-material streams
        x = image
        if self.gbuffer_channels:
            if gbuffers is None or gbuffers.shape[1] != self.gbuffer_channels:
                got = None if gbuffers is None else gbuffers.shape[1]
                raise ValueError(f"expected {self.gbuffer_channels} G-buffer channels, got {got}")
            x = torch.cat([image, gbuffers.to(image.dtype)], dim=1)
        if self.edge_guides:
            assert gbuffers is not None
            guides = edge_guides(self._pass(gbuffers, "depth"), self._pass(gbuffers, "normal"))
            x = torch.cat([x, guides.to(x.dtype)], dim=1)
        x, size = pad_to_multiple(x, self.multiple)
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up in self.ups:
            h = up(h, skips.pop())
        out = crop_to(self.head(h), size)
        if self.demodulated:
            assert gbuffers is not None
            styled = self._demodulated(out, image, gbuffers)
        else:
            if self.residual:
                out = out + torch.logit(image.clamp(RESIDUAL_EPS, 1 - RESIDUAL_EPS))
            styled = torch.sigmoid(out)
        return styled if self.kuwahara is None else self.kuwahara(styled)
