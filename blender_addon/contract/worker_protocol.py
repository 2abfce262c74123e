"""The stylise worker's protocol (Blender-free): JSON lines on the worker's stdin/stdout.

Blender never imports torch or onnxruntime: the add-on starts a worker process (Blender's own
Python with the extension's wheels, or a developer's venv) running
``python -m stylepass.core.inference.worker`` and talks to it one JSON object per line.

Worker -> client, once at start::

    {"event": "ready", "onnxruntime": "1.32.0", "torch": "2.13.0" | null, "cuda": false, "devices": ["cpu"],
     "python": "/.../python"}

("cuda": whether ONNX Runtime has its CUDA provider; "torch": the installed version, not imported.)

Client -> worker requests carry an ``id``; the worker answers each with exactly one final
reply ``{"id": n, "ok": true, ...}`` or ``{"id": n, "ok": false, "error": "...", "kind": ERROR_KIND}``,
possibly preceded by ``{"id": n, "event": "progress", "done": k, "total": t}`` lines:

- ``{"id": n, "cmd": "load", "model": DIR}`` or ``{"id": n, "cmd": "load", "preset": NAME}``,
  optional ``"device": "auto"|"cpu"|"cuda"|"cuda:N"``, ``"tile": int|null`` and
  ``"engine": "onnx"|"torch"`` (default onnx) and ``"precision": "fp32"|"int8"`` (default fp32; int8:
  the folder's ``model.int8.onnx``, ONNX Runtime only) -> ``{"ok": true, "model": {"name": str, "family":
  str, "passes": [...], "runtime": "onnxruntime 1.32.0 (CPUExecutionProvider)"}, "device": "cpu"}``
- ``{"id": n, "cmd": "stylise", "input": EXR, "output": EXR, "preview": PNG|null}``: one
  exported frame in, a stylised scene-linear half-float EXR (and an sRGB preview) out,
  written atomically -> ``{"ok": true, "output": EXR, "seconds": float, "timings": {"read": s,
  "stylise": s, "write": s}}`` (seconds in all; ``stylise``: to the device, the model and back)
- ``{"id": n, "cmd": "shutdown"}`` -> ``{"ok": true}``, then the worker exits.

Anything the worker prints that is not such a line (warnings, tracebacks) goes to stderr.
A worker whose Python cannot import onnxruntime exits with :data:`NO_RUNTIME_EXIT_CODE` before the
ready line, with one line on stderr saying so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WORKER_MODULE = "stylepass.core.inference.worker"
NO_RUNTIME_EXIT_CODE = 3  # the worker's exit status when onnxruntime cannot be imported

ENGINES = ("onnx", "torch")  # what runs a model: ONNX Runtime (the default) or torch
PRESETS_ENV = "STYLEPASS_PRESETS"  # the presets folder the worker (and the CLI) read

# A model folder's files: the generator for ONNX Runtime, and its weights and config for torch.
ONNX_MODEL = "model.onnx"
INT8_MODEL = "model.int8.onnx"  # model.onnx quantized to int8 (`stylepass quantize`); optional
PRECISIONS = ("fp32", "int8")  # which ONNX file runs: model.onnx or model.int8.onnx
MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"


def has_model(folder: Path) -> bool:
    """Whether a folder holds a model one of the runtimes can run (ONNX, or safetensors + config)."""
    return (folder / ONNX_MODEL).is_file() or ((folder / MODEL_WEIGHTS).is_file() and (folder / MODEL_CONFIG).is_file())

# Values of "kind" in an error reply, so the add-on can offer the right fix.
ERROR_KINDS = (
    "bad_request",     # malformed or unknown command
    "bad_model",       # model folder or preset missing, not a Stylepass model, not safetensors, bad config
    "no_cuda",         # CUDA asked for but not available: offer the CPU
    "missing_passes",  # the frame lacks passes the model needs: offer "Set up passes"
    "bad_input",       # the frame cannot be read
    "out_of_memory",   # even the smallest tiles did not fit
    "failed",          # anything else (a bug): the message has the details
)
# The kinds that mean the request or the user's files are wrong (exit code 2 in the CLI: fix and
# re-run); the others are failures worth a retry or a bug report.
BAD_INPUT_KINDS = frozenset({"bad_request", "bad_model", "no_cuda", "missing_passes", "bad_input"})


def encode(message: dict[str, Any]) -> str:
    """One protocol line (no newline)."""
    return json.dumps(message, sort_keys=True)


def decode(line: str) -> dict[str, Any] | None:
    """The message on a line, or None when the line is not a protocol message."""
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None
