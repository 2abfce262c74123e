"""Turn a training run into a deployable model dir (model.safetensors + config.json)."""

from __future__ import annotations

from pathlib import Path

from stylepass.core.models.config import ConfigError, build_generator
from stylepass.core.models.serialization import load_tensors, save_model

from .checkpoint import latest_checkpoint
from .config import load_config
from .trainer import RESOLVED_CONFIG


def export_run(run_dir: Path, out_dir: Path) -> Path:
    """Write the generator of the run's newest checkpoint to `out_dir`; returns `out_dir`."""
    run_dir = Path(run_dir)
    config_path = run_dir / RESOLVED_CONFIG
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} is not a training run: {RESOLVED_CONFIG} not found")
    config = load_config(config_path)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(f"{run_dir} has no checkpoint yet: train it first")
    generator = build_generator(config.model)
    generator.load_state_dict(load_tensors(checkpoint / "generator.safetensors"))
    return save_model(generator, config.model, Path(out_dir))
