"""Generators: any input size, deterministic, batch-independent, cheap at 1080p."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from stylepass.core.models import RADConfig, UNetConfig, build_generator
from stylepass.core.models.guides import edge_guides
from stylepass.core.models.inputs import gbuffer_channels
from stylepass.core.models.norms import channel_norm
from stylepass.core.models.unet import UNetGenerator, positive

TINY = {
    "unet": UNetConfig(base_width=4, depth=4, gbuffer_passes=("albedo", "depth")),
    "unet_group_norm": UNetConfig(base_width=4, depth=4, gbuffer_passes=("albedo", "depth"), norm="group"),
    "unet_demodulated": UNetConfig(base_width=4, depth=4, gbuffer_passes=("normal", "albedo", "depth"),
                                   demodulated=True, edge_guides=True),
    "unet_demodulated_glossy": UNetConfig(base_width=4, depth=4, demodulated=True,
                                          gbuffer_passes=("glossy_albedo", "albedo", "normal")),
    "rad": RADConfig(widths=(4, 8, 8), blocks=(1, 1, 1), gbuffer_widths=(4, 4, 4), num_materials=4),
}
SIZES = [(1, 1), (1, 2), (2, 3), (5, 7), (17, 33), (31, 64), (1, 2048), (3, 2048), (2047, 3)]


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values (the RAD head starts at zero: the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return model


def inputs(config, height: int, width: int, batch: int = 1, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=generator)
    gbuffers = torch.rand(batch, gbuffer_channels(config.gbuffer_passes), height, width, generator=generator)
    material = torch.randint(0, 9, (batch, height, width), generator=generator)
    return image, gbuffers, material


@pytest.mark.parametrize("family", TINY)
@pytest.mark.parametrize("size", SIZES)
def test_any_size_gives_same_size_finite_output(family: str, size: tuple[int, int]) -> None:
    config = TINY[family]
    model = randomise(build_generator(config)).eval()
    with torch.no_grad():
        out = model(*inputs(config, *size))
    assert out.shape == (1, 3, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("family", TINY)
def test_inference_is_deterministic_and_mode_independent(family: str) -> None:
    config = TINY[family]
    model = randomise(build_generator(config))
    x = inputs(config, 37, 45)
    with torch.no_grad():
        train_out = model.train()(*x)
        first = model.eval()(*x)
        second = model(*x)
    assert torch.equal(first, second)
    assert torch.equal(first, train_out)  # no batch norm, no dropout


@pytest.mark.parametrize("family", TINY)
def test_batch_items_do_not_influence_each_other(family: str) -> None:
    config = TINY[family]
    model = randomise(build_generator(config)).eval()
    image, gbuffers, material = inputs(config, 24, 40, batch=3)
    with torch.no_grad():
        together = model(image, gbuffers, material)
        alone = model(image[1:2], gbuffers[1:2], material[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5)


def test_rad_generator_starts_as_identity_and_uses_gbuffers_and_materials() -> None:
    config = TINY["rad"]
    model = build_generator(config).eval()
    image, gbuffers, material = inputs(config, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(image, gbuffers, material), image)
        randomise(model)
        base = model(image, gbuffers, material)
        other_material = model(image, gbuffers, (material + 1) % 4)
        other_gbuffers = model(image, gbuffers.flip(-1), material)
    assert (base - other_material).abs().max() > 1e-3
    assert (base - other_gbuffers).abs().max() > 1e-3


def test_residual_unet_starts_as_identity_and_learns_a_change() -> None:
    config = UNetConfig(gbuffer_passes=("albedo", "normal"), base_width=8, depth=3, residual=True)
    model = build_generator(config)
    image, gbuffers, material = inputs(config, 19, 23)
    image = image.clamp(0.01, 0.99)  # away from the clamp of the logit
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(image, gbuffers, material), image, atol=1e-6, rtol=0)
    # One optimiser step towards a darker target moves the output there (the head is trainable).
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    target = image * 0.5
    before = (model(image, gbuffers, material) - target).abs().mean()
    for _ in range(5):
        optimiser.zero_grad()
        (model(image, gbuffers, material) - target).abs().mean().backward()
        optimiser.step()
    assert (model(image, gbuffers, material) - target).abs().mean() < before * 0.9


def test_demodulated_unet_mixes_albedo_and_render_and_keeps_the_colours() -> None:
    """Untrained, the output is half the albedo plus half the render plus 0.01, tone-mapped; with the
    render's gain at zero the surface colour passes through exactly, e.g. under a darker band."""
    config = UNetConfig(gbuffer_passes=("normal", "albedo", "depth"), base_width=8, depth=3, demodulated=True)
    model = build_generator(config).eval()
    image, gbuffers, material = inputs(config, 21, 18)
    albedo = gbuffers[:, 3:6]
    image = image.clamp(max=0.9)
    start = 0.5 * albedo + 0.5 * image / (1 - image) + 0.01
    with torch.no_grad():
        torch.testing.assert_close(model(image, gbuffers, material), start / (1 + start), atol=0.03, rtol=0)
        model.head.weight.zero_()  # shading exactly 0.5, gain and base exactly 0 (the biases' inverse softplus)
        model.head.bias.copy_(torch.log(torch.expm1(torch.tensor([0.5] * 3 + [1e-6] * 6))))
        half = albedo * 0.5
        torch.testing.assert_close(model(image, gbuffers, material), half / (1 + half), atol=1e-5, rtol=0)


def test_positive_is_softplus_and_exports_without_the_softplus_operator() -> None:
    """The demodulated head's softplus, in a form ONNX Runtime runs twice as fast (see unet.positive)."""
    x = torch.cat([torch.linspace(-100, 100, 2001), torch.randn(1000) * 5])
    torch.testing.assert_close(positive(x), torch.nn.functional.softplus(x), atol=2e-6, rtol=1e-6)
    assert torch.isfinite(positive(torch.tensor([-1e4, 1e4, 0.0]))).all()
    ops = {node.kind() for node in torch.jit.trace(positive, (x,)).graph.nodes()}
    assert "aten::softplus" not in ops


def test_demodulated_unet_gives_metals_their_glossy_colour() -> None:
    """With glossy_albedo the head has a fourth term, the glossy colour's own shading: a metal (diffuse
    colour 0, glossy colour c) comes out as c x its shading, without the render, while a plastic with
    no glossy colour keeps its diffuse colour x shading."""
    config = UNetConfig(gbuffer_passes=("albedo", "glossy_albedo", "normal"), base_width=8, depth=3,
                        demodulated=True)
    model = build_generator(config).eval()
    assert model.head.out_channels == 12
    image, gbuffers, material = inputs(config, 16, 20)
    image = image.clamp(max=0.9)  # the render x gain (1e-6) term stays below the tolerance
    gbuffers[:, 0:3, :, :10] = 0.0  # the left half is metal: black diffuse colour
    gbuffers[:, 3:6, :, 10:] = 0.0  # the right half is plastic without a glossy colour
    with torch.no_grad():
        model.head.weight.zero_()  # shadings 0.5 and 0.25, no render (gain 0), no base
        model.head.bias.copy_(torch.log(torch.expm1(torch.tensor([0.5] * 3 + [1e-6] * 6 + [0.25] * 3))))
        linear = gbuffers[:, 0:3] * 0.5 + gbuffers[:, 3:6] * 0.25
        torch.testing.assert_close(model(image, gbuffers, material), linear / (1 + linear), atol=1e-5, rtol=0)
        metal = model(image, gbuffers, material)[..., :10]
        assert metal.amax() > 0.05  # without the glossy term this half would be black


def test_unet_options_need_their_passes() -> None:
    with pytest.raises(ValueError, match="need the G-buffer pass"):
        UNetGenerator(4, 2, gbuffer_channels(("normal",)), demodulated=True, pass_slices={"normal": (0, 3)})
    with pytest.raises(ValueError, match="residual or demodulated"):
        UNetGenerator(4, 2, 4, residual=True, demodulated=True, pass_slices={"albedo": (0, 3)})


def test_edge_guides_mark_silhouettes_and_creases_only() -> None:
    depth = torch.full((1, 1, 8, 8), 0.5)
    depth[..., 4:] = 0.25  # a silhouette between columns 3 and 4
    normal = torch.zeros(1, 3, 8, 8)
    normal[:, 2] = 1.0
    normal[:, :, 6:, :] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]  # a 90 degree crease at rows 5/6
    edges = edge_guides(depth, normal)
    assert edges.shape == (1, 2, 8, 8) and float(edges.min()) >= 0 and float(edges.max()) < 1
    assert (edges[0, 0, :, 3] > 0.9).all() and float(edges[0, 0, :, :3].max()) == 0.0  # depth jump, nothing else
    assert (edges[0, 1, 5, :] > 0.9).all() and float(edges[0, 1, :5].max()) == 0.0  # the crease row only
    with pytest.raises(ValueError, match="edge_guides expects"):
        edge_guides(normal, depth)


def test_wrong_gbuffer_channel_count_is_named() -> None:
    for config in TINY.values():
        model = build_generator(config)
        image, gbuffers, material = inputs(config, 8, 8)
        with pytest.raises(ValueError, match=f"expected {gbuffers.shape[1]} G-buffer channels, got 2"):
            model(image, gbuffers[:, :2], material)


def test_channel_norm_is_per_pixel() -> None:
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    y = channel_norm(x)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 5, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=1, unbiased=False), torch.ones(2, 5, 7), atol=1e-3, rtol=0)
    torch.testing.assert_close(channel_norm(x[..., 1:3, 2:4]), y[..., 1:3, 2:4])


def test_default_rad_generator_is_cheap_at_1080p() -> None:
    """The real-time budget: far below EPE's ~22 TFLOP per 960x540 frame."""
    model = build_generator(RADConfig()).to("meta")
    height, width = 1080, 1920
    channels = gbuffer_channels(RADConfig().gbuffer_passes)
    with FlopCounterMode(display=False) as counter:
        model(
            torch.empty(1, 3, height, width, device="meta"),
            torch.empty(1, channels, height, width, device="meta"),
            torch.zeros(1, height, width, dtype=torch.long, device="meta"),
        )
    tflop = counter.get_total_flops() / 1e12
    assert 0.05 < tflop < 0.3, tflop


@pytest.mark.parametrize("family", TINY)
def test_channels_last_and_bf16_autocast_paths(family: str) -> None:
    """What CUDA runs (channels_last, bf16 autocast), checked with the CPU's implementations."""
    config = TINY[family]
    model = randomise(build_generator(config)).eval()
    image, gbuffers, material = inputs(config, 21, 34)
    with torch.no_grad():
        reference = model(image, gbuffers, material)
        model_cl = model.to(memory_format=torch.channels_last)
        channels_last = model_cl(
            image.contiguous(memory_format=torch.channels_last),
            gbuffers.contiguous(memory_format=torch.channels_last),
            material,
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model_cl(image, gbuffers, material)
    torch.testing.assert_close(channels_last, reference, rtol=1e-4, atol=1e-4)
    assert bf16.shape == reference.shape and torch.isfinite(bf16).all()
    assert (bf16.float() - reference).abs().mean() < 0.05 * reference.abs().mean() + 1e-3
