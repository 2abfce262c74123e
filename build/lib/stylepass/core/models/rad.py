"""RAD-conditioned enhancement generator, after "Enhancing Photorealism Enhancement" (Richter et
al. 2021), redesigned to be cheap enough for real time.

Structure (S = len(widths) scales, scale s has resolution H / 2^s):

* :class:`GBufferEncoder`: one 1x1 stream per material class (selected per pixel from the
  material-id pass), then a shared convolutional trunk that produces G-buffer features at every
  scale.
* :class:`ModulationHead`: per scale, one 3x3 convolution turns the G-buffer features into a
  per-pixel scale ``gamma`` and shift ``beta``. They are computed once per scale and shared by every
  RAD layer of that scale (EPE recomputes them in each of its 128-channel full-resolution layers,
  which is 81% of its cost). ``modulation_per_layer``, ``modulation_layers`` and
  ``modulation_kernel`` give EPE's own layout instead (a head per RAD layer, each with a stack of
  3x3 convolutions before a 1x1 projection); the benchmark's EPE-sized baseline uses them.
* :func:`rad_modulate`: rendering-aware denormalisation, ``channel_norm(x) * (1 + gamma) + beta``
  with a parameter-free per-pixel channel norm (no spatial statistics, so crops and full frames
  agree).
* Image branch: a U-shaped multi-scale path of :class:`RADResBlock` s, narrow at full resolution.
  The head is zero-initialised and added to the input: an untrained model is the identity.

The default widths cost about 0.2 TFLOP per 1080p frame (EPE: about 22 TFLOP per 960x540 frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .inputs import material_classes
from .norms import channel_norm
from .padding import crop_to, pad_to_multiple


def rad_modulate(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Rendering-aware denormalisation: channel_norm(x) * (1 + gamma) + beta.

    x, gamma, beta: (B, C, H, W). Returns (B, C, H, W).
    """
    return channel_norm(x) * (1.0 + gamma) + beta


def select_material_streams(streams: torch.Tensor, classes: torch.Tensor, width: int) -> torch.Tensor:
    """Pick, at every pixel, the stream of that pixel's material class.

    streams: (B, K * width, H, W), K stacked per-class streams; classes: (B, H, W) long in [0, K).
    Returns (B, width, H, W).
    """
    batch, _, height, width_px = streams.shape
    stacked = streams.view(batch, -1, width, height, width_px)
    index = classes[:, None, None].expand(batch, 1, width, height, width_px)
    return stacked.gather(1, index).squeeze(1)


def _conv_stack(in_width: int, width: int, layers: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """`layers` x (LeakyReLU(0.2), 3x3 conv); the first maps in_width -> width with `stride`."""
    modules: list[nn.Module] = []
    for index in range(layers):
        modules += [nn.LeakyReLU(0.2), nn.Conv2d(in_width if index == 0 else width, width, 3,
                                                 stride=stride if index == 0 else 1, padding=1, groups=groups)]
    return modules


class GBufferEncoder(nn.Module):
    """G-buffers + material classes -> list of G-buffer features, one per scale.

    forward(gbuffers (B, C_g, H, W), classes (B, H, W) long in [0, num_materials)) returns
    [(B, widths[s], H / 2^s, W / 2^s) for s in range(len(widths))]; H and W must be multiples of
    2^(len(widths) - 1).

    layers: 3x3 convolutions per scale (at a coarser scale the first has stride 2).
    stream_layers: layers of each material's stream: a 1x1 convolution, then 3x3 convolutions of
    width widths[0] (one group per material, so the streams stay separate).
    """

    def __init__(
        self, in_channels: int, num_materials: int, widths: Sequence[int], layers: int = 1, stream_layers: int = 1
    ) -> None:
        super().__init__()
        self.width0 = widths[0]
        streams = nn.Conv2d(in_channels, num_materials * widths[0], 1)
        self.streams: nn.Module = streams
        if stream_layers > 1:
            stacked = num_materials * widths[0]
            self.streams = nn.Sequential(
                streams, *_conv_stack(stacked, stacked, stream_layers - 1, groups=num_materials)
            )
        self.trunk = nn.Sequential(*_conv_stack(widths[0], widths[0], layers))
        self.downs = nn.ModuleList(
            nn.Sequential(*_conv_stack(widths[s - 1], widths[s], layers, stride=2)) for s in range(1, len(widths))
        )

    def forward(self, gbuffers: torch.Tensor, classes: torch.Tensor) -> list[torch.Tensor]:
        features = [self.trunk(select_material_streams(self.streams(gbuffers), classes, self.width0))]
        for down in self.downs:
            features.append(down(features[-1]))
        return features


Modulation = tuple[torch.Tensor, torch.Tensor]  # (gamma, beta), each (B, C, H, W)


class ModulationHead(nn.Module):
    """G-buffer features (B, C_g, H, W) -> (gamma, beta), each (B, C, H, W).

    layers: residual 3x3 convolutions on the features first, x -> LeakyReLU(x + conv(x)) (EPE: 3);
    kernel: size of the convolution that gives gamma and beta (EPE: 1).
    """

    def __init__(self, gbuffer_width: int, width: int, layers: int = 0, kernel: int = 3) -> None:
        super().__init__()
        self.trunk = nn.ModuleList(nn.Conv2d(gbuffer_width, gbuffer_width, 3, padding=1) for _ in range(layers))
        self.conv = nn.Conv2d(gbuffer_width, 2 * width, kernel, padding=kernel // 2)

    def forward(self, features: torch.Tensor) -> Modulation:
        for conv in self.trunk:
            features = F.leaky_relu(features + conv(features), 0.2)
        gamma, beta = self.conv(features).chunk(2, dim=1)
        return gamma, beta


class RADResBlock(nn.Module):
    """x + conv(act(rad(conv(act(rad(x)))))), (B, C, H, W); each rad has its (gamma, beta)
    (the same pair twice when the scale shares one)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor, first: Modulation, second: Modulation) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(rad_modulate(x, *first), 0.2))
        h = self.conv2(F.leaky_relu(rad_modulate(h, *second), 0.2))
        return x + h


class RADGenerator(nn.Module):
    """Enhancement generator: image + G-buffers + material ids -> enhanced image (model range).

    forward(image (B, 3, H, W) in [0, 1], gbuffers (B, C_g, H, W), material_id (B, H, W) integer
    ids) returns image + residual, (B, 3, H, W), roughly [0, 1] (not clamped; clamp before
    inverse tone mapping). Any H, W >= 1: inputs are padded to a multiple of 2^(scales - 1).

    The last five arguments shape the G-buffer side (see :class:`GBufferEncoder` and
    :class:`ModulationHead`); modulation_per_layer gives every RAD layer its own head instead of
    one per scale. Their defaults are the cheap design above.
    """

    def __init__(
        self,
        gbuffer_channels: int,
        widths: Sequence[int] = (16, 32, 64),
        blocks: Sequence[int] = (1, 2, 3),
        gbuffer_widths: Sequence[int] = (16, 16, 32),
        num_materials: int = 8,
        gbuffer_encoder_layers: int = 1,
        material_stream_layers: int = 1,
        modulation_per_layer: bool = False,
        modulation_layers: int = 0,
        modulation_kernel: int = 3,
    ) -> None:
        super().__init__()
        if not (len(widths) == len(blocks) == len(gbuffer_widths)) or not widths:
            raise ValueError("widths, blocks and gbuffer_widths need one entry per scale, same length")
        self.num_materials = num_materials
        self.gbuffer_channels = gbuffer_channels
        self.multiple = 2 ** (len(widths) - 1)  # inputs are padded to a multiple of this
        self.encoder = GBufferEncoder(
            gbuffer_channels, num_materials, gbuffer_widths, gbuffer_encoder_layers, material_stream_layers
        )
        self.modulation_per_layer = modulation_per_layer

        def head(g: int, w: int) -> ModulationHead:
            return ModulationHead(g, w, modulation_layers, modulation_kernel)

        # modulations[s]: the scale's shared head, or one head per RAD layer (2 per block).
        self.modulations = nn.ModuleList(
            nn.ModuleList(head(g, w) for _ in range(2 * n)) if modulation_per_layer else head(g, w)
            for g, w, n in zip(gbuffer_widths, widths, blocks, strict=True)
        )
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1)
        self.downs = nn.ModuleList(
            nn.Conv2d(widths[s - 1], widths[s], 3, stride=2, padding=1) for s in range(1, len(widths))
        )
        self.ups = nn.ModuleList(nn.Conv2d(widths[s + 1], widths[s], 1) for s in range(len(widths) - 1))
        self.stages = nn.ModuleList(
            nn.ModuleList(RADResBlock(w) for _ in range(n)) for w, n in zip(widths, blocks, strict=True)
        )
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1, bias=False)
        nn.init.zeros_(self.head.weight)

    def forward(
        self, image: torch.Tensor, gbuffers: torch.Tensor, material_id: torch.Tensor
    ) -> torch.Tensor:
        if gbuffers.shape[1] != self.gbuffer_channels:
            raise ValueError(
                f"expected {self.gbuffer_channels} G-buffer channels, got {gbuffers.shape[1]}"
            )
        x, size = pad_to_multiple(image, self.multiple)
        g, _ = pad_to_multiple(gbuffers.to(image.dtype), self.multiple)
        classes, _ = pad_to_multiple(material_classes(material_id, self.num_materials), self.multiple)
        features = self.encoder(g, classes)
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(F.leaky_relu(skips[-1], 0.2)))
        last = len(self.stages) - 1
        h = self._stage(last, skips[last], features[last])
        for scale in reversed(range(last)):
            up = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = self._stage(scale, skips[scale] + self.ups[scale](up), features[scale])
        return crop_to(x + self.head(F.leaky_relu(h, 0.2)), size)

    def _stage(self, scale: int, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Run the RAD blocks of one scale, modulated from that scale's G-buffer features."""
        blocks = cast(nn.ModuleList, self.stages[scale])
        if self.modulation_per_layer:
            heads = cast(nn.ModuleList, self.modulations[scale])  # 2 per block
            for index, block in enumerate(blocks):
                x = block(x, heads[2 * index](features), heads[2 * index + 1](features))
            return x
        shared = self.modulations[scale](features)
        for block in blocks:
            x = block(x, shared, shared)
        return x
