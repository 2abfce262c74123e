"""Training checkpoints: safetensors + JSON only, each checkpoint a folder renamed into place.

Layout::

    RUN/checkpoints/step-00001000/
        generator.safetensors, discriminator.safetensors    module state dicts
        optim_generator.safetensors, ...                    optimiser tensors (Adam moments, steps)
        rng.safetensors                                     torch CPU/CUDA and NumPy RNG states
        state.json                                          step, optimiser param groups, Python RNG
    RUN/checkpoints/latest.json                             {"step": 1000, "dir": "step-00001000"}

A checkpoint folder is built under a temporary name and renamed when complete, then
``latest.json`` is replaced atomically (both with ``atomic_files``): a crash or Ctrl-C at any
moment leaves the previous checkpoint valid. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stylepass.blender_addon.contract.atomic_files import write_folder_atomic, write_json_atomic
from stylepass.core.models.serialization import load_tensors, save_tensors_atomic

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"


class CheckpointError(ValueError):
    """A checkpoint is missing or inconsistent."""


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser state dict into tensors ("state.<param>.<key>") and JSON metadata."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{param_id}.{key}"] = value
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Inverse of :func:`optimizer_to_tensors`: load the state into `optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Current torch (CPU, every CUDA device), NumPy and Python RNG states: (tensors, JSON)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{index}"] = cuda_state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    meta = {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    return tensors, meta


def restore_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where the devices exist)."""
    torch.set_rng_state(tensors["torch_cpu"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


def checkpoint_dir_name(step: int) -> str:
    """Folder name of the checkpoint at `step`."""
    return f"step-{step:08d}"


def save_checkpoint(
    run_dir: Path,
    step: int,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write the checkpoint of `step` (see module docstring); keep the newest `keep`. Returns its dir."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".*"):  # temporary folders left by a process killed while saving
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)

    def write_files(folder: Path) -> None:
        for name, module in modules.items():
            save_tensors_atomic(folder / f"{name}.safetensors", module.state_dict())
        optim_meta = {}
        for name, optimizer in optimizers.items():
            tensors, optim_meta[name] = optimizer_to_tensors(optimizer)
            save_tensors_atomic(folder / f"optim_{name}.safetensors", tensors)
        rng_tensors, rng_meta = rng_state()
        save_tensors_atomic(folder / "rng.safetensors", rng_tensors)
        state = {"step": step, "optimizers": optim_meta, "rng": rng_meta, "extra": extra or {}}
        write_json_atomic(folder / "state.json", state)

    final = root / checkpoint_dir_name(step)
    write_folder_atomic(final, write_files)
    write_json_atomic(root / LATEST, {"step": step, "dir": final.name})
    _prune(root, keep, final.name)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``latest.json`` points to, or None when the run has no checkpoint."""
    pointer = Path(run_dir) / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["dir"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{pointer} is damaged ({type(error).__name__}: {error}); delete it to start the run "
                              "again, or point it at a checkpoint folder beside it: {\"dir\": \"step-...\"}") from None
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise CheckpointError(f"{pointer} names {name!r}: a checkpoint is a folder beside it (step-...), never a path")
    directory = pointer.parent / name
    if not (directory / "state.json").is_file():
        raise CheckpointError(f"{pointer} points to {directory}, which is not a complete checkpoint")
    return directory


def load_checkpoint(
    directory: Path,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
) -> dict[str, Any]:
    """Load a checkpoint into `modules` and `optimizers` and restore RNG states; returns state.json.

    Tensors are read on the CPU; load_state_dict moves them to the parameters' devices.
    """
    directory = Path(directory)
    state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    for name, module in modules.items():
        module.load_state_dict(load_tensors(directory / f"{name}.safetensors"))
    for name, optimizer in optimizers.items():
        tensors = load_tensors(directory / f"optim_{name}.safetensors")
        optimizer_from_tensors(optimizer, tensors, state["optimizers"][name])
    restore_rng_state(load_tensors(directory / "rng.safetensors"), state["rng"])
    return state


def _prune(root: Path, keep: int, current: str) -> None:
    """Delete all but the newest `keep` checkpoint folders (never `current`)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for folder in folders[: max(0, len(folders) - keep)]:
        if folder.name != current:
            shutil.rmtree(folder, ignore_errors=True)
