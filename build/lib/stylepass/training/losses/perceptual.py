"""VGG16 perceptual loss, LPIPS-VGG and KID features from LOCAL safetensors weights (never downloaded).

Weights file layout (torchvision key names, so a converted torchvision VGG16 state dict works):
``features.{i}.weight`` / ``features.{i}.bias`` for the VGG16 convolutions i in
0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28. Only the layers up to the deepest one used need
to be present. LPIPS additionally needs ``lin{k}.weight`` of shape (1, C_k, 1, 1), k = 0..4 (the
linear calibration layers of Zhang et al. 2018).

Convert once, in a trusted environment, e.g.
``safetensors.torch.save_file(torchvision.models.vgg16(weights=...).state_dict(), "vgg16.safetensors")``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stylepass.core.models.serialization import ModelFileError, load_tensors

# VGG16 "features": conv output widths, "M" = 2x2 max-pool.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Indices (in torchvision's features Sequential) of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
RELU_TAPS = (3, 8, 15, 22, 29)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class MissingWeightsError(FileNotFoundError):
    """A local weights file the config asks for is absent or incomplete."""


def build_vgg16_features(last_index: int) -> nn.Sequential:
    """VGG16 ``features`` layers 0..last_index (torchvision indexing), random weights."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.ReLU()]
            in_channels = int(item)
    return nn.Sequential(*layers[: last_index + 1])


def load_vgg16_features(weights: Path, last_index: int) -> nn.Sequential:
    """VGG16 features up to `last_index`, weights from a local safetensors file, frozen, eval."""
    weights = Path(weights)
    if not weights.is_file():
        raise MissingWeightsError(
            f"VGG16 weights not found at {weights}. Stylepass never downloads weights: convert a "
            "VGG16 state dict to safetensors locally and point the config at it, or turn off "
            "what needs it (loss.perceptual = 0.0, or remove metrics.lpips_weights / metrics.kid_weights)."
        )
    try:
        state = load_tensors(weights)
    except ModelFileError as error:
        raise MissingWeightsError(str(error)) from None
    net = build_vgg16_features(last_index)
    wanted = {k: v for k, v in state.items() if k.startswith("features.")}
    wanted = {k[len("features."):]: v for k, v in wanted.items() if int(k.split(".")[1]) <= last_index}
    missing, _ = net.load_state_dict(wanted, strict=False)
    if missing:
        raise MissingWeightsError(f"{weights} lacks VGG16 layers: {', '.join('features.' + m for m in missing)}")
    return net.eval().requires_grad_(False)


def vgg_taps(net: nn.Sequential, image: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
    """Run `net` on ImageNet-normalised `image` (B, 3, H, W) in [0, 1]; features at `taps`."""
    mean = image.new_tensor(_IMAGENET_MEAN)[None, :, None, None]
    std = image.new_tensor(_IMAGENET_STD)[None, :, None, None]
    x = (image - mean) / std
    out = []
    for index, layer in enumerate(net):
        x = layer(x)
        if index in taps:
            out.append(x)
    return out


class PerceptualLoss(nn.Module):
    """Mean L1 between VGG16 relu1_2..relu4_3 features of prediction and target (scalar).

    Inputs (B, 3, H, W) in [0, 1]. The VGG is frozen; gradients flow to the prediction only.
    """

    def __init__(self, weights: Path, taps: tuple[int, ...] = RELU_TAPS[:4]) -> None:
        super().__init__()
        self.taps = taps
        self.net = load_vgg16_features(weights, max(taps))

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred_feats = vgg_taps(self.net, prediction.float(), self.taps)
        with torch.no_grad():
            target_feats = vgg_taps(self.net, target.float(), self.taps)
        return torch.stack([F.l1_loss(p, t) for p, t in zip(pred_feats, target_feats, strict=True)]).mean()


class LPIPS(nn.Module):
    """LPIPS-VGG distance (Zhang et al. 2018) per image, shape (B,); inputs (B, 3, H, W) in [0, 1]."""

    _SHIFT = (-0.030, -0.088, -0.188)
    _SCALE = (0.458, 0.448, 0.450)

    def __init__(self, weights: Path) -> None:
        super().__init__()
        self.net = load_vgg16_features(weights, max(RELU_TAPS))
        state = load_tensors(Path(weights))
        names = [f"lin{k}.weight" for k in range(len(RELU_TAPS))]
        absent = [n for n in names if n not in state]
        if absent:
            raise MissingWeightsError(f"{weights} lacks the LPIPS linear layers: {', '.join(absent)}")
        self.lins = nn.ParameterList(nn.Parameter(state[n].float(), requires_grad=False) for n in names)

    @torch.no_grad()
    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        def scaled(img: torch.Tensor) -> torch.Tensor:
            # LPIPS expects [-1, 1] inputs and applies its own scaling layer; vgg_taps applies
            # ImageNet normalisation, so undo that by feeding the equivalent [0, 1] image.
            shift = img.new_tensor(self._SHIFT)[None, :, None, None]
            scale = img.new_tensor(self._SCALE)[None, :, None, None]
            lpips_input = ((img * 2.0 - 1.0) - shift) / scale
            mean = img.new_tensor(_IMAGENET_MEAN)[None, :, None, None]
            std = img.new_tensor(_IMAGENET_STD)[None, :, None, None]
            return lpips_input * std + mean

        feats_p = vgg_taps(self.net, scaled(prediction.float()), RELU_TAPS)
        feats_t = vgg_taps(self.net, scaled(target.float()), RELU_TAPS)
        total = prediction.new_zeros(prediction.shape[0])
        for lin, fp, ft in zip(self.lins, feats_p, feats_t, strict=True):
            fp = fp / (fp.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            ft = ft / (ft.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + F.conv2d((fp - ft).pow(2), lin).mean(dim=(1, 2, 3))
        return total


class VGGPooledFeatures(nn.Module):
    """Image descriptors for KID: spatial mean of VGG16 relu5_3, (B, 3, H >= 16, W >= 16) -> (B, 512).

    KID is usually computed on Inception-v3 features; these VGG16 features keep to the weights
    stylepass already uses, so values compare between stylepass runs, not with published KIDs.
    """

    def __init__(self, weights: Path) -> None:
        super().__init__()
        self.net = load_vgg16_features(weights, RELU_TAPS[-1])

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return vgg_taps(self.net, images.float(), RELU_TAPS[-1:])[0].mean(dim=(2, 3))
