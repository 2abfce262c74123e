"""The baselines ``stylepass bench`` compares against, built in Stylepass's own code.

* :data:`EPE_LAYOUT`: our :class:`~stylepass.core.models.rad.RADGenerator` configured to the
  published layout of the official "Enhancing Photorealism Enhancement" generator (Richter et
  al. 2021, github isl-org/PhotorealismEnhancement, ``train_pfd2cs.yaml``: an HRNet-style image
  branch of 4 stages, channels 16/32/64/128, 4 basic blocks per branch and stage, so 16/12/8/4
  RAD blocks at the four scales; every one of its 80 RAD layers has its own stack of three
  128-channel 3x3 residual convolutions on the G-buffer features and 1x1 projections to scale and
  shift; a G-buffer encoder with 12 per-class streams and a 128-channel trunk per scale).
  About 44.4 M parameters against the published 44.7 M (EPE's 32 GTA G-buffer channels become
  our 12; its group norms our per-pixel channel norm; its cross-scale fusion our U-shaped path).
* :class:`ReferenceUNet`: pix2pix's ``unet_256`` (Isola et al. 2017, github
  junyanz/pytorch-CycleGAN-and-pix2pix): 8 stride-2 4x4 downsamplings from 64 channels (capped
  at 512), 4x4 transposed convolutions up, batch norm, dropout 0.5 in the three innermost
  decoder blocks; 54,413,955 parameters. Written from the paper's description; it differs from
  our :class:`~stylepass.core.models.unet.UNetGenerator` in too many ways (transposed
  convolutions, batch norm, dropout, no stem) for a config option.
* :class:`ReferencePatchGAN`: pix2pix's "basic" 70x70 discriminator (3 layers, 64 channels,
  batch norm), the reference's training partner; 2,768,705 parameters for 6 input channels.
"""

from __future__ import annotations

import torch
from torch import nn

from stylepass.core.models.config import RADConfig
from stylepass.core.models.padding import crop_to, pad_to_multiple

EPE_PUBLISHED_PARAMETERS = 44_700_000  # "about 44.7 M" (the official generator for PfD -> Cityscapes)
EPE_PUBLISHED_TFLOP_960x540 = 22.0  # "about 22 TFLOP per 960x540 frame" (the performance issue)
UNET_256_PARAMETERS = 54_413_955  # pix2pix print_network: "54.414 M"

EPE_LAYOUT = RADConfig(
    gbuffer_passes=("albedo", "normal", "depth", "motion"),
    widths=(16, 32, 64, 128),
    blocks=(16, 12, 8, 4),
    gbuffer_widths=(128, 128, 128, 128),
    num_materials=12,
    gbuffer_encoder_layers=4,
    material_stream_layers=3,
    modulation_per_layer=True,
    modulation_layers=3,
    modulation_kernel=1,
)


class ReferenceUNet(nn.Module):
    """pix2pix U-Net (``unet_256`` by default): image (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1].

    The published network works in [-1, 1] (tanh output); inputs are mapped there and outputs
    back. Inputs are padded to a multiple of 2^downsamplings (256) and cropped back. ``gbuffers``
    and ``material_id`` are accepted, so it runs where our generators do, and ignored.
    """

    def __init__(self, downsamplings: int = 8, base_width: int = 64, dropout: float = 0.5,
                 in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        if downsamplings < 5:
            raise ValueError(f"the reference U-Net needs >= 5 downsamplings, got {downsamplings}")
        self.multiple = 2**downsamplings
        widths = [base_width * min(2**level, 8) for level in range(downsamplings)]
        innermost = downsamplings - 1
        downs: list[nn.Module] = []
        ups: list[nn.Module] = []
        for level in range(downsamplings):
            outer = in_channels if level == 0 else widths[level - 1]
            conv = nn.Conv2d(outer, widths[level], 4, 2, 1, bias=False)
            if level == 0:
                downs.append(conv)
            elif level == innermost:
                downs.append(nn.Sequential(nn.LeakyReLU(0.2), conv))
            else:
                downs.append(nn.Sequential(nn.LeakyReLU(0.2), conv, nn.BatchNorm2d(widths[level])))
            up_in = widths[level] if level == innermost else 2 * widths[level]
            if level == 0:
                ups.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1), nn.Tanh()))
            else:
                layers = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
                if innermost - 3 <= level < innermost:
                    layers.append(nn.Dropout(dropout))
                ups.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)
        self.ups = nn.ModuleList(ups)

    def forward(self, image: torch.Tensor, gbuffers: torch.Tensor | None = None,
                material_id: torch.Tensor | None = None) -> torch.Tensor:
        del gbuffers, material_id
        x, size = pad_to_multiple(image * 2.0 - 1.0, self.multiple)
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x)
        for level in reversed(range(len(self.ups))):
            x = self.ups[level](x)
            if level > 0:
                x = torch.cat([skips[level], x], 1)
        return crop_to((x + 1.0) * 0.5, size)


class ReferencePatchGAN(nn.Module):
    """pix2pix basic discriminator: (B, C_in, H, W) -> (B, 1, H', W') scores, batch norm."""

    def __init__(self, in_channels: int = 6, base_width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_width, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = base_width
        for index in range(1, n_layers + 1):
            out_width = base_width * min(2**index, 8)
            stride = 2 if index < n_layers else 1
            layers += [nn.Conv2d(width, out_width, 4, stride, 1, bias=False), nn.BatchNorm2d(out_width),
                       nn.LeakyReLU(0.2)]
            width = out_width
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def parameter_count(module: nn.Module) -> int:
    """Number of parameters of `module`."""
    return sum(p.numel() for p in module.parameters())
