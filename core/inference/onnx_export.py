"""ONNX export of a stylepass generator, for game engines (Unity Inference Engine, Unreal NNE).

The ONNX graph takes the raw buffers an engine has and does, inside the graph, everything that
:func:`stylepass.core.models.inputs.frame_to_tensors` and
:func:`stylepass.core.inference.predict.stylise_frame` do around the generator: tone map, depth
and motion normalisation, the valid-mask channel, material ids to classes, padding to the
generator's multiple and cropping back. Every input is a float32 NCHW tensor (a render
texture), with dynamic batch, height and width:

=============  ============  ============================================================
input          shape         values
=============  ============  ============================================================
beauty         (N, 3, H, W)  scene-linear HDR RGB, >= 0 (NaN/inf count as 0)
albedo         (N, 3, H, W)  diffuse colour, [0, 1]                     (if the model uses it)
normal         (N, 3, H, W)  camera space, unit length, +X right, +Y up, +Z towards the viewer
depth          (N, 1, H, W)  distance from the camera, any unit (divided in the graph by the
                             frame's largest valid depth)
motion         (N, 4, H, W)  pixels: previous x, y, next x, y (divided by max(H, W) in graph)
valid          (N, 1, H, W)  1 where geometry was hit, 0 for background   (any G-buffer pass)
material_id    (N, 1, H, W)  integer-valued material ids, 0 = none         (RAD models only)
=============  ============  ============================================================

Two more inputs have defaults (initializers that a caller may override), for a frame run in
tiles, where each tile must be normalised like the whole frame:

=================  =====  ===============================================================
frame_depth_far    (1,)   the whole frame's largest valid depth; 0 (default): the input's own
                          (models with depth only)
frame_extent       (1,)   max(H, W) of the whole frame in pixels; 0 (default): the input's own
                          (models with motion only)
=================  =====  ===============================================================

Outputs: ``rgb`` (N, 3, H, W), the stylised image in the model range [0, 1] (tone-mapped
x / (1 + x)), and ``rgb_linear`` (N, 3, H, W), the same image scene-linear (>= 0, at most 1e4),
ready to go back into the engine's HDR chain before its own tone mapper. The metadata_props of
the model say all of this again (keys ``stylepass.*``), see :func:`onnx_metadata`.

Export path: the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). It
needs only the ``onnx`` package (not onnxscript) and works on torch 2.11 and 2.13, and it keeps
the generators' shape arithmetic (padding to a multiple of 2^k) symbolic. The dynamo exporter
fails on that padding (its data-dependent ``if`` on the input size), so it is not used.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from stylepass.blender_addon.contract.atomic_files import write_atomic
from stylepass.core.inference.predict import predict
from stylepass.core.io.colour import inverse_tonemap, tonemap
from stylepass.core.models.config import ModelConfig, RADConfig, model_config_to_dict
from stylepass.core.models.inputs import PASS_CHANNELS, frame_to_tensors

from .onnx_styliser import pass_feed

# Unity's Inference Engine (Sentis) imports opsets 7 to 15; Unreal NNE's ONNX Runtime reads them too.
OPSET = 15
# Largest |ONNX - PyTorch| accepted on the model-range output `rgb` (and on rgb_linear tone-mapped).
TOLERANCE = 1e-3
# Sizes every export is checked at: odd sizes exercise the in-graph padding, the second
# size proves the height and width axes are dynamic.
CHECK_SIZES: tuple[tuple[int, int], ...] = ((67, 93), (48, 130))
INSTALL_HINT = "pip install onnx onnxruntime  (python build.py setup installs both)"
OUTPUTS = ("rgb", "rgb_linear")


class OnnxUnavailableError(RuntimeError):
    """onnx or onnxruntime is not installed; the message says how to install them."""


class OnnxMismatchError(RuntimeError):
    """The exported ONNX graph does not reproduce PyTorch within :data:`TOLERANCE`."""


@dataclass(frozen=True)
class OnnxInput:
    """One graph input: name, channels (dim 1 of an (N, C, H, W) float32 tensor), meaning."""

    name: str
    channels: int
    values: str


# Inputs with a default of 0 (see the module docstring), by the pass that needs them.
FRAME_INPUTS = {
    "depth": OnnxInput("frame_depth_far", 1, "the whole frame's largest valid depth when the input is a "
                       "tile of it; 0 (default): the input's own"),
    "motion": OnnxInput("frame_extent", 1, "max(H, W) of the whole frame in pixels when the input is a tile "
                        "of it; 0 (default): the input's own"),
}


_PASS_VALUES = {
    "albedo": "diffuse colour [0, 1]",
    "glossy_albedo": "glossy (specular) colour [0, 1]",
    "normal": "camera-space unit normal [-1, 1], +X right, +Y up, +Z towards the viewer",
    "depth": "distance from the camera, any unit (normalised in the graph by the frame's largest valid depth)",
    "motion": "screen motion in pixels: previous x, y, next x, y (divided by max(H, W) in the graph)",
}


def onnx_inputs(config: ModelConfig) -> list[OnnxInput]:
    """The graph inputs a model config needs, in graph order."""
    inputs = [OnnxInput("beauty", 3, "scene-linear HDR RGB >= 0")]
    inputs += [OnnxInput(name, PASS_CHANNELS[name], _PASS_VALUES[name]) for name in config.gbuffer_passes]
    if uses_gbuffers(config):
        inputs.append(OnnxInput("valid", 1, "1 where geometry was hit, 0 for background"))
    if isinstance(config, RADConfig):
        inputs.append(OnnxInput("material_id", 1, "integer-valued material ids as float, 0 = none"))
    return inputs


def frame_inputs(config: ModelConfig) -> list[OnnxInput]:
    """The defaulted inputs (shape (1,), default 0) a model config's graph has, after :func:`onnx_inputs`."""
    return [FRAME_INPUTS[name] for name in config.gbuffer_passes if name in FRAME_INPUTS]


def uses_gbuffers(config: ModelConfig) -> bool:
    """Whether the generator takes a G-buffer stack (RAD always does: at least the valid mask)."""
    return isinstance(config, RADConfig) or bool(config.gbuffer_passes)


def require_onnx() -> tuple[Any, Any]:
    """Import and return (onnx, onnxruntime); OnnxUnavailableError with the install line if missing."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise OnnxUnavailableError(
            f"ONNX export needs the onnx and onnxruntime packages ({error.name or error} is missing): "
            f"install them with  {INSTALL_HINT}"
        ) from None
    return onnx, onnxruntime


class EngineGraph(nn.Module):
    """A generator plus the frame preparation around it, as one module for ONNX export.

    forward(*inputs) takes the tensors of :func:`onnx_inputs` in that order (each (N, C, H, W)
    float32), then those of :func:`frame_inputs` (each (1,), 0 for the input's own), and returns
    (rgb (N, 3, H, W) in [0, 1], rgb_linear (N, 3, H, W) >= 0). It computes
    what ``frame_to_tensors`` + ``predict`` + ``inverse_tonemap`` compute on a frame.
    """

    def __init__(self, generator: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.generator = generator.eval()
        self.passes = tuple(config.gbuffer_passes)
        self.uses_gbuffers = uses_gbuffers(config)
        self.names = [spec.name for spec in [*onnx_inputs(config), *frame_inputs(config)]]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        named = dict(zip(self.names, inputs, strict=True))
        beauty = torch.nan_to_num(named["beauty"], nan=0.0, posinf=0.0, neginf=0.0)
        image = tonemap(beauty)
        gbuffers = self._gbuffers(named) if self.uses_gbuffers else None
        material = named.get("material_id")
        material_id = torch.zeros_like(image[:, 0], dtype=torch.long) if material is None else (
            torch.round(material[:, 0]).to(torch.long)
        )
        rgb = self.generator(image, gbuffers, material_id).clamp(0.0, 1.0)
        return rgb, inverse_tonemap(rgb)

    def _gbuffers(self, named: dict[str, torch.Tensor]) -> torch.Tensor:
        """Stack the passes + valid mask like ``stack_gbuffers``: (N, C_g, H, W)."""
        mask = named["valid"] > 0.5
        valid = mask.to(torch.float32)
        planes = []
        for name in self.passes:
            data = named[name]
            if name == "depth":
                data = torch.where(mask, data, torch.zeros_like(data))  # also drops inf sky depth
                far = torch.amax(data, dim=(1, 2, 3), keepdim=True)
                given = named["frame_depth_far"].reshape(1, 1, 1, 1)
                far = torch.where(given > 0, given, far)
                data = data / torch.where(far > 0, far, torch.ones_like(far))
            elif name == "motion":
                extent = torch.maximum(_dim(data, -2), _dim(data, -1))
                given = named["frame_extent"].reshape(1, 1, 1, 1)
                data = data / torch.where(given > 0, given, extent)
            planes.append(data)
        planes.append(valid)
        return torch.cat(planes, dim=1)


def _dim(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Size of `x` along `axis` as a float32 scalar tensor (stays symbolic when traced)."""
    return torch.scalar_tensor(x.shape[axis], dtype=torch.float32)


def sample_frame(config: ModelConfig, height: int, width: int, seed: int = 0) -> SimpleNamespace:
    """A random frame with the attributes of ``GBufferFrame`` that `config` needs, to check exports.

    beauty is HDR (up to 8, one NaN and one inf pixel); about 20 % of the pixels are background,
    with depth 1e9 there (an engine's far plane; the graph must ignore it) and 1..50 elsewhere;
    material ids 0..19; motion about +-20 pixels.
    """
    rng = np.random.default_rng(seed)
    beauty = (rng.random((3, height, width), dtype=np.float32) ** 3 * 8.0).astype(np.float32)
    beauty[0, 0, 0], beauty[1, -1, -1] = np.nan, np.inf
    normal = rng.normal(size=(3, height, width)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=0, keepdims=True) + 1e-6
    valid = rng.random((height, width)) > 0.2
    return SimpleNamespace(
        beauty=beauty,
        albedo=rng.random((3, height, width), dtype=np.float32),
        glossy_albedo=rng.random((3, height, width), dtype=np.float32),
        normal=np.where(valid, normal, 0.0).astype(np.float32),
        depth=np.where(valid, 1.0 + 49.0 * rng.random((height, width)), 1e9).astype(np.float32),
        valid=valid,
        material_id=rng.integers(0, 20, size=(height, width)).astype(np.int32),
        motion=(rng.normal(size=(4, height, width)) * 20.0).astype(np.float32),
    )


def frame_feed(frame: Any, config: ModelConfig) -> dict[str, np.ndarray]:
    """The ONNX inputs for one frame (``GBufferFrame`` attributes): name -> (1, C, H, W) float32
    (the defaulted inputs left at their defaults)."""
    return pass_feed(frame, [spec.name for spec in onnx_inputs(config)])


def torch_reference(generator: nn.Module, config: ModelConfig, frame: Any) -> np.ndarray:
    """The model-range output (1, 3, H, W) of stylepass's own pipeline (frame_to_tensors + predict)."""
    tensors = frame_to_tensors(frame, config.gbuffer_passes)
    batch = {k: v[None] for k, v in tensors.items()}
    return predict(generator, batch["image"], batch["gbuffers"], batch["material_id"]).numpy()


def onnx_metadata(config: ModelConfig, multiple: int, source_digest: str | None) -> dict[str, str]:
    """metadata_props of an exported model: how an engine feeds it, and what it came from.

    multiple: the generator's padding multiple (tiles start on its grid); source_digest: the
    :func:`~stylepass.core.io.model_files.source_digest` of the model folder, so that a runtime can
    tell an ONNX file older than the weights and config beside it (None: exported without a folder).
    """
    inputs = [
        {"name": s.name, "shape": ["N", s.channels, "H", "W"], "dtype": "float32", "values": s.values}
        for s in onnx_inputs(config)
    ] + [{"name": s.name, "shape": [1], "dtype": "float32", "values": s.values, "default": 0.0}
         for s in frame_inputs(config)]
    outputs = [
        {"name": "rgb", "shape": ["N", 3, "H", "W"], "dtype": "float32",
         "values": "stylised RGB in the model range [0, 1] (tone-mapped x / (1 + x))"},
        {"name": "rgb_linear", "shape": ["N", 3, "H", "W"], "dtype": "float32",
         "values": "stylised scene-linear HDR RGB >= 0 (rgb / (1 - rgb), at most 1e4)"},
    ]
    metadata = {
        "stylepass.version": _stylepass_version(),
        "stylepass.family": config.family,
        "stylepass.multiple": str(multiple),
        "stylepass.model_config": json.dumps(model_config_to_dict(config), sort_keys=True),
        "stylepass.inputs": json.dumps(inputs),
        "stylepass.outputs": json.dumps(outputs),
        "stylepass.layout": "NCHW float32; channel order RGB / XYZ; dynamic N, H, W (any H, W >= 1)",
        "stylepass.tolerance": f"checked against PyTorch at {CHECK_SIZES}: max |diff| <= {TOLERANCE} on rgb",
    }
    if source_digest is not None:
        metadata["stylepass.source_digest"] = source_digest
    return metadata


def export_onnx(generator: nn.Module, config: ModelConfig, path: Path, source_digest: str | None = None) -> float:
    """Write `generator` as an ONNX model at `path` (atomically) and check it in onnxruntime.

    source_digest: recorded in the metadata (see :func:`onnx_metadata`).

    The graph is traced at an odd size (so the padding to the generator's multiple is part of
    it), then run in onnxruntime at every size of :data:`CHECK_SIZES` and compared with
    :func:`torch_reference`. Returns the largest difference found. Raises OnnxUnavailableError
    (packages missing) or OnnxMismatchError (difference above :data:`TOLERANCE`); in both cases,
    and on any other error, nothing is left at `path` or beside it.
    """
    onnx, onnxruntime = require_onnx()
    path = Path(path)
    generator = generator.cpu().eval()
    graph = EngineGraph(generator, config)
    names = graph.names

    def export_and_check(tmp: Path) -> float:
        trace_feed = frame_feed(sample_frame(config, *CHECK_SIZES[0]), config)
        defaults = {spec.name: np.zeros(1, dtype=np.float32) for spec in frame_inputs(config)}
        args = tuple(torch.from_numpy({**trace_feed, **defaults}[name]) for name in names)
        axes = {name: {0: "batch", 2: "height", 3: "width"} for name in [*trace_feed, *OUTPUTS]}
        with warnings.catch_warnings(), torch.no_grad():
            # The legacy exporter is deprecated (see the module docstring for why it is used) and
            # warns about the traced `if` on the padding size, which the odd trace size settles.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                graph, args, str(tmp), input_names=names, output_names=list(OUTPUTS),
                dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True,
            )
        model = onnx.load(str(tmp))
        _inline_squeeze_ifs(model)
        model.graph.initializer.extend(onnx.numpy_helper.from_array(value, name) for name, value in defaults.items())
        for output in model.graph.output:  # the exporter leaves the channel count symbolic
            output.type.tensor_type.shape.dim[1].dim_value = 3
        model.producer_name = "stylepass"
        model.producer_version = _stylepass_version()
        model.doc_string = "Stylepass generator with frame preparation; see metadata_props stylepass.*"
        onnx.helper.set_model_props(model, onnx_metadata(config, int(getattr(generator, "multiple", 1)),
                                                         source_digest))
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        return verify_onnx(tmp, generator, config, onnxruntime.InferenceSession)

    return write_atomic(path, export_and_check)


def verify_onnx(
    path: Path, generator: nn.Module, config: ModelConfig, session_factory: Callable[..., Any],
    sizes: Sequence[tuple[int, int]] = CHECK_SIZES,
) -> float:
    """Run the ONNX model at `sizes` and compare with PyTorch; returns the largest |difference|.

    Checks ``rgb`` against :func:`torch_reference` and ``rgb_linear`` tone-mapped back against
    the same. Raises OnnxMismatchError above :data:`TOLERANCE` or on a wrong output shape.
    """
    session = session_factory(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed, (height, width) in enumerate(sizes):
        frame = sample_frame(config, height, width, seed=seed)
        reference = torch_reference(generator, config, frame)
        rgb, rgb_linear = session.run(list(OUTPUTS), frame_feed(frame, config))
        if rgb.shape != reference.shape or rgb_linear.shape != reference.shape:
            raise OnnxMismatchError(
                f"ONNX output shape {rgb.shape} at {height}x{width}, expected {reference.shape}"
            )
        diff = max(
            float(np.abs(rgb - reference).max()),
            float(np.abs(rgb_linear / (1.0 + rgb_linear) - reference).max()),
        )
        if not np.isfinite(diff) or diff > TOLERANCE:
            raise OnnxMismatchError(
                f"ONNX output differs from PyTorch by {diff:.3g} at {height}x{width} "
                f"(allowed {TOLERANCE}); the ONNX file was not written"
            )
        worst = max(worst, diff)
    return worst


def _inline_squeeze_ifs(model: Any) -> None:
    """Replace each ``If(dim == 1, Squeeze(x), Identity(x))`` by its Squeeze branch, in place.

    The exporter guards ``squeeze(1)`` on a dynamic shape with such an ``If``; in these
    generators the squeezed dim is 1 by construction (one selected material stream), and
    control flow is what game-engine runtimes support least. The check against PyTorch after
    the export covers this rewrite.
    """
    rewritten = []
    for node in model.graph.node:
        branches = {attribute.name: attribute.g for attribute in node.attribute} if node.op_type == "If" else {}
        if branches and _is_squeeze_guard(branches["then_branch"], branches["else_branch"]):
            inlined = [_copy(inner) for inner in branches["then_branch"].node]
            next(n for n in inlined if n.op_type == "Squeeze").output[0] = node.output[0]
            rewritten += inlined
        else:
            rewritten.append(_copy(node))
    del model.graph.node[:]
    model.graph.node.extend(rewritten)


def _copy(message: Any) -> Any:
    """A detached copy of a protobuf message."""
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _is_squeeze_guard(then_branch: Any, else_branch: Any) -> bool:
    """Whether the branches are (Constant axes, Squeeze(x)) and Identity(x), nothing else."""
    then_ops = sorted(n.op_type for n in then_branch.node)
    if then_ops != ["Constant", "Squeeze"] or [n.op_type for n in else_branch.node] != ["Identity"]:
        return False
    squeeze = next(n for n in then_branch.node if n.op_type == "Squeeze")
    return squeeze.input[0] == else_branch.node[0].input[0]


def _stylepass_version() -> str:
    try:
        return version("stylepass")
    except PackageNotFoundError:
        return "unknown"
