"""One optimisation step of a generator (and its PatchGAN discriminator), shared by the training
loop and the benchmark.

Order: generator forward; if there is a discriminator, its step on real vs generated samples
(paired: (input, x) pairs as in pix2pix; unpaired: x alone); then the generator step on the
weighted loss terms. Every loss passes `check_finite` before its optimiser steps, so a NaN never
reaches the weights. On CUDA the forwards run under bf16 autocast (unless `mixed_precision` is
off, as for the benchmark's float32 reference); losses are float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from stylepass.core.inference.predict import autocast_for

from ..losses import cartoon
from ..losses.gan import discriminator_loss, generator_adversarial_loss, gradient_l1, l1_loss, total_variation
from ..losses.perceptual import PerceptualLoss
from .config import LossSection

Batch = dict[str, torch.Tensor]
FiniteCheck = Callable[[dict[str, torch.Tensor], int], None]


def discriminator_input(image: torch.Tensor, x: torch.Tensor, paired: bool) -> torch.Tensor:
    """What the discriminator judges: (input, x) pairs when paired (pix2pix), x alone otherwise."""
    return torch.cat([image, x], 1) if paired else x


class GeneratorLosses:
    """The generator's loss terms and their weights for one [loss] config section."""

    def __init__(self, weights: LossSection, device: torch.device) -> None:
        self.weights = weights
        self.perceptual = (
            PerceptualLoss(Path(weights.perceptual_weights)).to(device)
            if weights.perceptual > 0 and weights.perceptual_weights
            else None
        )

    def terms(
        self, fake: torch.Tensor, image: torch.Tensor, target: torch.Tensor | None, fake_scores: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """Unweighted terms whose weight is > 0, each a float32 scalar.

        fake, image: (B, 3, H, W); target: (B, 3, H, W) for paired runs, None for unpaired ones
        (the config forbids the target-based terms there); fake_scores: the discriminator's
        scores of `fake`, or None without a discriminator.
        """
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.l1 > 0 and target is not None:
            terms["l1"] = l1_loss(fake, target)
        if w.gradient > 0 and target is not None:
            terms["gradient"] = gradient_l1(fake, target)
        if w.content > 0:
            terms["content"] = l1_loss(fake, image)
        if fake_scores is not None:
            terms["adversarial"] = generator_adversarial_loss(fake_scores, w.adversarial_kind)
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(fake, image if target is None else target)
        if w.total_variation > 0:
            terms["total_variation"] = total_variation(fake)
        if w.surface > 0 and target is not None:
            terms["surface"] = cartoon.surface_loss(fake, target)
        if w.texture > 0 and target is not None:
            terms["texture"] = cartoon.texture_loss(fake, target)
        if w.structure > 0:
            terms["structure"] = cartoon.structure_loss(fake)
        return terms

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of `terms`, a scalar."""
        return torch.stack([getattr(self.weights, name) * value for name, value in terms.items()]).sum()


class TrainingStep:
    """Callable doing one step on a batch; returns the detached losses to log ("loss/<name>").

    generator / discriminator: the plain modules (the discriminator's generator-step forward runs
    on the plain module, outside DDP); g_train / d_train: what runs the training forwards (the
    DDP wrappers under torchrun, else the same modules). batch: ``image``, ``gbuffers``,
    ``material_id``, ``target`` on the device.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None,
        optimizers: Mapping[str, torch.optim.Optimizer],
        losses: GeneratorLosses,
        paired: bool,
        device: torch.device,
        check_finite: FiniteCheck,
        g_train: nn.Module | None = None,
        d_train: nn.Module | None = None,
        mixed_precision: bool = True,
    ) -> None:
        self.generator, self.discriminator = generator, discriminator
        self.mixed_precision = mixed_precision
        self.g_train = g_train or generator
        self.d_train = d_train or discriminator
        self.optimizers, self.losses = optimizers, losses
        self.paired, self.device, self.check_finite = paired, device, check_finite

    def __call__(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        image, target = batch["image"], batch["target"]
        with self._autocast():
            fake = self.g_train(image, batch["gbuffers"], batch["material_id"])
        logged: dict[str, torch.Tensor] = {}
        fake_scores = None
        if self.discriminator is not None and self.d_train is not None:
            d_loss = self._discriminator_step(image, target, fake.detach(), step)
            self.discriminator.requires_grad_(False)
            with self._autocast():
                fake_scores = self.discriminator(discriminator_input(image, fake, self.paired)).float()
            self.discriminator.requires_grad_(True)
            logged["loss/discriminator"] = d_loss.detach()
        terms = self.losses.terms(fake.float(), image, target if self.paired else None, fake_scores)
        g_total = self.losses.total(terms)
        self.check_finite({"generator": g_total, **terms}, step)
        optimizer = self.optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        g_total.backward()
        optimizer.step()
        logged["loss/generator"] = g_total.detach()
        logged.update({f"loss/{name}": value.detach() for name, value in terms.items()})
        return logged

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        return autocast_for(self.device) if self.mixed_precision else contextlib.nullcontext()

    def _discriminator_step(
        self, image: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, step: int
    ) -> torch.Tensor:
        assert self.d_train is not None
        pairs = torch.cat(
            [discriminator_input(image, real, self.paired), discriminator_input(image, fake, self.paired)]
        )
        with self._autocast():
            scores = self.d_train(pairs)
        real_scores, fake_scores = scores.float().chunk(2)
        d_loss = discriminator_loss(real_scores, fake_scores, self.losses.weights.adversarial_kind)
        self.check_finite({"discriminator": d_loss}, step)
        optimizer = self.optimizers["discriminator"]
        optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        optimizer.step()
        return d_loss
