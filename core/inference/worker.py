"""The stylise worker: ``python -m stylepass.core.inference.worker`` serves the worker protocol.

The Blender add-on starts this process in the core's Python and talks to it in JSON lines
(:mod:`stylepass.blender_addon.contract.worker_protocol`): a ready line first, then one reply per
request (load a model once, stylise many frames with a progress line per tile, shut down).

- stdout carries protocol lines only: file descriptor 1 and ``sys.stdout`` are pointed at
  stderr before anything else runs, so stray prints, warnings and C-level output go there.
- Every failure of a request is an error reply with a ``kind``; the worker keeps serving.
- End of stdin or a closed stdout (the add-on went away) ends the worker quietly, exit 0.
- Models run in ONNX Runtime (numpy + onnxruntime: what the Blender extension ships), or in torch
  when a load request asks for ``"engine": "torch"``. Without a usable onnxruntime the worker
  prints one line on stderr and exits with
  :data:`~stylepass.blender_addon.contract.worker_protocol.NO_RUNTIME_EXIT_CODE` (3), before the ready line.

This module imports only the standard library at the top, so that the runtime check can run.
"""

from __future__ import annotations

import gc
import io
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

from stylepass.blender_addon.contract.worker_protocol import NO_RUNTIME_EXIT_CODE, decode, encode

if TYPE_CHECKING:
    from .stylise import Styliser

Send = Callable[[dict[str, Any]], None]
SETUP_HINT = ("reinstall the Stylepass extension (its wheels bring onnxruntime), or run python build.py setup "
              "and choose that Python in the add-on preferences")


def runtime_import_problem() -> str | None:
    """None when onnxruntime and the stylise core import; else a one-line message saying why not."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        if error.name == "onnxruntime":
            return f"onnxruntime is not installed in {sys.executable}: {SETUP_HINT}"
        return f"onnxruntime cannot be imported in {sys.executable} ({error}): {SETUP_HINT}"
    except OSError as error:  # an onnxruntime whose native libraries do not load
        return f"onnxruntime cannot be imported in {sys.executable} ({error}): {SETUP_HINT}"
    try:
        from . import onnx_styliser  # noqa: F401
    except ImportError as error:
        return f"Stylepass's dependencies are incomplete in {sys.executable} ({error}): {SETUP_HINT}"
    return None


def ready_message() -> dict[str, Any]:
    """The first line: the runtimes' versions, whether CUDA runs, and the devices a load may ask for.

    torch is looked up, not imported (a worker that only runs ONNX never loads it).
    """
    import importlib.metadata
    import importlib.util

    import onnxruntime

    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    torch_version = None
    if importlib.util.find_spec("torch") is not None:
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch_version = "unknown"
    return {"event": "ready", "onnxruntime": onnxruntime.__version__, "torch": torch_version, "cuda": cuda,
            "devices": ["cpu", "cuda"] if cuda else ["cpu"], "python": sys.executable}


class RequestError(Exception):
    """A request cannot be served; ``kind`` is a protocol error kind."""

    def __init__(self, message: str, kind: str = "bad_request") -> None:
        super().__init__(message)
        self.kind = kind


def _field(message: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    """message[name], checked to be of `kind` (None allowed when not required)."""
    value = message.get(name)
    if value is None and not required:
        return None
    if value is None or not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RequestError(f"{message.get('cmd')!r} needs {name!r} as {expected}, got {value!r}")
    return value


class Worker:
    """Serves requests one at a time; holds the loaded model between them."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.styliser: Styliser | None = None

    def handle(self, line: str) -> bool:
        """Answer one request line; returns False after a shutdown request."""
        if not line.strip():
            return True
        message = decode(line)
        request_id = message.get("id") if message is not None else None
        try:
            if message is None:
                raise RequestError(f"not a JSON object: {line.strip()[:200]!r}")
            command = message.get("cmd")
            if command == "shutdown":
                self.send({"id": request_id, "ok": True})
                return False
            handlers = {"load": self.load, "stylise": self.stylise}
            if command not in handlers:
                raise RequestError(f"unknown command {command!r}; commands: load, stylise, shutdown")
            self.send({"id": request_id, "ok": True, **handlers[command](request_id, message)})
        except BrokenPipeError:
            raise
        except Exception as error:  # every failure is a reply; the worker goes on
            self.send({"id": request_id, "ok": False, "error": str(error), "kind": _error_kind(error)})
        return True

    def load(self, request_id: Any, message: dict[str, Any]) -> dict[str, Any]:
        """Load a model in place of the loaded one (freed first; none is loaded if this fails);
        reply with its description and device."""
        from .stylise import load_styliser, resolve_model_dir

        self._unload()
        model = _field(message, "model", str, required=False)
        preset = _field(message, "preset", str, required=False)
        device = _field(message, "device", str, required=False) or "auto"
        tile = _field(message, "tile", int, required=False)
        engine = _field(message, "engine", str, required=False) or "onnx"
        precision = _field(message, "precision", str, required=False) or "fp32"
        self.styliser = load_styliser(resolve_model_dir(model, preset), device, tile, name=preset, engine=engine,
                                      precision=precision)
        return {"model": self.styliser.describe(), "device": self.styliser.device}

    def stylise(self, request_id: Any, message: dict[str, Any]) -> dict[str, Any]:
        """Stylise one exported frame into `output` (and `preview`), with progress per tile."""
        source = _field(message, "input", str)
        output = _field(message, "output", str)
        preview = _field(message, "preview", str, required=False)
        if self.styliser is None:
            raise RequestError("no model loaded: send a load request first")

        def on_tile(done: int, total: int) -> None:
            self.send({"id": request_id, "event": "progress", "done": done, "total": total})

        try:
            timings = self.styliser.stylise_file(source, output, preview, on_tile,
                                                 lambda note: print(note, file=sys.stderr, flush=True))
        except BrokenPipeError:
            raise
        except OSError as error:
            raise RequestError(f"cannot write {output}: {error}", "failed") from None
        return {"output": output, "seconds": round(timings.total_s, 3), "timings": timings.as_reply()}

    def _unload(self) -> None:
        if self.styliser is not None:
            self.styliser.close()
            self.styliser = None
            gc.collect()


def _error_kind(error: Exception) -> str:
    """The protocol kind of a failure; tracebacks of unexpected ones go to stderr."""
    kind = getattr(error, "kind", None)
    if isinstance(kind, str):
        return kind
    traceback.print_exception(error, file=sys.stderr)
    return "failed"


def protocol_stdout() -> IO[str]:
    """A line-buffered stream on the original stdout; fd 1 and ``sys.stdout`` then go to stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def serve(lines: Iterable[str], send: Send) -> None:
    """Send the ready line, then answer requests until shutdown or the end of `lines`."""
    send(ready_message())
    worker = Worker(send)
    for line in lines:
        if not worker.handle(line):
            return


def main() -> int:
    """Run the worker on stdin/stdout; returns the exit code."""
    out = protocol_stdout()
    problem = runtime_import_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return NO_RUNTIME_EXIT_CODE

    def send(message: dict[str, Any]) -> None:
        out.write(encode(message) + "\n")
        out.flush()

    try:
        serve(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"), send)
    except BrokenPipeError:
        # The client is gone: point the stream at /dev/null so the exit flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
