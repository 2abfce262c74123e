"""PatchGAN discriminator (pix2pix): one real/fake score per overlapping patch."""

from __future__ import annotations

import torch
from torch import nn


class PatchGANDiscriminator(nn.Module):
    """(B, C_in, H, W) -> (B, 1, H', W') unbounded scores, one per receptive-field patch.

    n_layers=3 with 4x4 kernels gives the paper's 70x70 receptive field. Spectral normalisation on
    every convolution keeps the discriminator Lipschitz without batch statistics, so small batches
    and 1-image batches train the same way. Inputs must be at least 2^(n_layers + 1) pixels on each
    side (32 px for n_layers=3).
    """

    def __init__(self, in_channels: int, base_width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        layers: list[nn.Module] = [sn(nn.Conv2d(in_channels, base_width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        width = base_width
        for index in range(1, n_layers + 1):
            out_width = base_width * min(2**index, 8)
            stride = 2 if index < n_layers else 1
            layers += [sn(nn.Conv2d(width, out_width, 4, stride, 1)), nn.LeakyReLU(0.2)]
            width = out_width
        layers.append(sn(nn.Conv2d(width, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
