"""Turn a training run (or a model dir) into a deployable model dir: model.safetensors +
config.json, and optionally model.onnx for game engines (see :mod:`stylepass.core.inference.onnx_export`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from stylepass.core.io.model_files import MODEL_CONFIG, MODEL_WEIGHTS, ONNX_MODEL, source_digest
from stylepass.core.models.config import ConfigError, ModelConfig, build_generator
from stylepass.core.models.serialization import load_model, load_tensors, save_model

from ..loop.checkpoint import latest_checkpoint
from ..loop.config import load_config
from ..loop.trainer import RESOLVED_CONFIG


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote: the model dir, the ONNX file (if asked) and its check."""

    out_dir: Path
    onnx_path: Path | None = None
    onnx_max_diff: float | None = None


def load_run_generator(run_dir: Path) -> tuple[nn.Module, ModelConfig]:
    """The generator of a run's newest checkpoint (CPU, eval mode) and its model config."""
    config = load_config(run_dir / RESOLVED_CONFIG)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(f"{run_dir} has no checkpoint yet: train it first")
    generator = build_generator(config.model)
    generator.load_state_dict(load_tensors(checkpoint / "generator.safetensors"))
    return generator.eval(), config.model


def load_source(source: Path) -> tuple[nn.Module, ModelConfig, bool]:
    """Load a training run or a model dir; returns (generator, config, whether it is a model dir)."""
    source = Path(source)
    if (source / RESOLVED_CONFIG).is_file():
        generator, config = load_run_generator(source)
        return generator, config, False
    if (source / MODEL_CONFIG).is_file():
        generator, config = load_model(source)
        return generator, config, True
    raise ConfigError(
        f"{source} is not a training run ({RESOLVED_CONFIG} not found) nor a model dir "
        f"({MODEL_WEIGHTS} + {MODEL_CONFIG}); give a run folder from `stylepass train` or a "
        "model folder such as presets/toon/model"
    )


def export_model(source: Path, out_dir: Path, onnx: bool = False) -> ExportResult:
    """Export a run's newest checkpoint, or re-export a model dir, to `out_dir`.

    Writes model.safetensors + config.json (skipped when `out_dir` is the source model dir
    itself) and, with `onnx`, model.onnx checked against PyTorch in onnxruntime. Every file is
    written atomically. The ONNX packages are checked before anything is written.
    """
    if onnx:
        from stylepass.core.inference.onnx_export import require_onnx

        require_onnx()
    generator, config, is_model_dir = load_source(Path(source))
    out_dir = Path(out_dir)
    if not (is_model_dir and out_dir.resolve() == Path(source).resolve()):
        save_model(generator, config, out_dir)
    if not onnx:
        return ExportResult(out_dir)
    from stylepass.core.inference.onnx_export import export_onnx

    onnx_path = out_dir / ONNX_MODEL
    worst = export_onnx(generator, config, onnx_path, source_digest(out_dir))
    return ExportResult(out_dir, onnx_path, worst)
