"""The stylise worker as the add-on runs it: a subprocess speaking JSON lines on stdin/stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch

import stylepass.blender_addon
import stylepass.core
from stylepass.blender_addon.contract.worker_protocol import (
    ERROR_KINDS,
    NO_RUNTIME_EXIT_CODE,
    WORKER_MODULE,
    decode,
    encode,
)
from stylepass.core.inference.stylise import PRESETS_ENV
from stylepass.core.io.exr_file import read_exr
from stylepass.core.models import RADConfig

from .conftest import PASSES, smooth_frame, write_export, write_model


class WorkerProcess:
    """``python -m stylepass.core.inference.worker`` with helpers to send a request and read its lines."""

    def __init__(self, cwd: Path) -> None:
        """Start a worker whose presets folder is ``cwd/presets``."""
        self.process = subprocess.Popen([sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        bufsize=1, cwd=cwd, env={**os.environ, PRESETS_ENV: str(cwd / "presets")})
        self.next_id = 0

    def read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        message = decode(line)
        assert message is not None, f"not a protocol line on stdout: {line!r}"
        return message

    def request(self, cmd: str, **fields: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Send a request; returns its progress lines and its final reply."""
        self.next_id += 1
        self.write(encode({"id": self.next_id, "cmd": cmd, **fields}))
        progress = []
        while "ok" not in (message := self.read()):
            assert message == {**message, "id": self.next_id, "event": "progress"}
            progress.append(message)
        assert message["id"] == self.next_id
        return progress, message

    def write(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()


def test_worker_serves_a_session(tmp_path):
    frames = write_export(tmp_path / "export", [smooth_frame(96, 128), smooth_frame(96, 128, peak=3.0)])
    model = write_model(tmp_path / "model", RADConfig(widths=(8, 8), blocks=(1, 1), gbuffer_widths=(4, 4),
                                                      gbuffer_passes=PASSES))
    needs_motion = write_model(tmp_path / "motion", RADConfig(widths=(8,), blocks=(1,), gbuffer_widths=(4,),
                                                              gbuffer_passes=(*PASSES, "motion")))
    worker = WorkerProcess(tmp_path)
    try:
        ready = worker.read()
        assert ready == {"event": "ready", "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                         "cuda": "CUDAExecutionProvider" in onnxruntime.get_available_providers(),
                         "devices": ready["devices"], "python": sys.executable}
        assert ready["devices"][0] == "cpu"

        _, reply = worker.request("stylise", input=str(frames[0]), output=str(tmp_path / "early.exr"))
        assert reply["kind"] == "bad_request" and "no model loaded" in reply["error"]

        _, reply = worker.request("load", model=str(model), device="cpu", tile=64)
        assert reply == {"id": 2, "ok": True, "device": "cpu",
                         "model": {"name": "model", "family": "rad", "passes": list(PASSES),
                                   "runtime": f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)"}}

        _, reply = worker.request("stylise", input=str(tmp_path / "nope.exr"), output=str(tmp_path / "x.exr"))
        assert reply["kind"] == "bad_input" and "EXR file not found" in reply["error"]

        for index, frame in enumerate(frames):  # the worker goes on after a failed request
            output, preview = tmp_path / "out" / f"s{index}.exr", tmp_path / "out" / f"s{index}.png"
            progress, reply = worker.request("stylise", input=str(frame), output=str(output), preview=str(preview))
            assert reply["ok"] and reply["output"] == str(output)
            assert set(reply["timings"]) == {"read", "stylise", "write"} and min(reply["timings"].values()) >= 0
            assert reply["seconds"] == pytest.approx(sum(reply["timings"].values()), abs=0.002)
            # 96 x 128 in 64 px tiles overlapping by 32: 2 x 3 tiles
            assert [(p["done"], p["total"]) for p in progress] == [(done, 6) for done in range(1, 7)]
            rgb = np.stack([read_exr(output).channels[c].astype(np.float32) for c in "RGB"])
            assert rgb.shape == (3, 96, 128) and np.isfinite(rgb).all() and preview.is_file()

        failures = {
            "unknown command": ("fly", {}, "bad_request", "unknown command 'fly'"),
            "wrong field type": ("stylise", {"input": 3, "output": "x.exr"}, "bad_request", "'input' as str"),
            "bad tile": ("load", {"model": str(model), "tile": "big"}, "bad_request", "'tile' as int"),
            "pickle": ("load", {"model": str(tmp_path / "pickle")}, "bad_model", "refusing to load"),
            "no preset model": ("load", {"preset": "toon"}, "bad_model", "has no trained model yet"),
        }
        if not torch.cuda.is_available():
            failures["no cuda"] = ("load", {"model": str(model), "device": "cuda"}, "no_cuda", "--device cpu")
        (tmp_path / "presets" / "toon").mkdir(parents=True)
        (tmp_path / "pickle").mkdir()
        torch.save({"w": torch.zeros(1)}, tmp_path / "pickle" / "model.safetensors")
        (tmp_path / "pickle" / "config.json").write_text((model / "config.json").read_text())
        for name, (cmd, fields, kind, text) in failures.items():
            _, reply = worker.request(cmd, **fields)
            assert reply["ok"] is False and reply["kind"] == kind and text in reply["error"], name
            assert kind in ERROR_KINDS

        worker.write("this is not json")
        reply = worker.read()
        assert reply["id"] is None and reply["kind"] == "bad_request"

        # a failed load leaves no model loaded (never the previous one by mistake)
        _, reply = worker.request("stylise", input=str(frames[1]), output=str(tmp_path / "again.exr"))
        assert reply["kind"] == "bad_request" and "no model loaded" in reply["error"]

        _, reply = worker.request("load", model=str(needs_motion), device="cpu")
        assert reply["ok"]
        _, reply = worker.request("stylise", input=str(frames[0]), output=str(tmp_path / "motion.exr"))
        assert reply["kind"] == "missing_passes" and "needs: motion" in reply["error"]

        _, reply = worker.request("shutdown")
        assert reply == {"id": worker.next_id, "ok": True}
        assert worker.process.wait(timeout=10) == 0
        assert worker.process.stdout.read() == ""
    finally:
        worker.process.kill()
        worker.process.wait()
    stderr = worker.process.stderr.read()
    assert "Traceback" not in stderr, stderr


def test_worker_ends_quietly_when_the_client_goes_away(tmp_path):
    worker = WorkerProcess(tmp_path)
    assert worker.read()["event"] == "ready"
    worker.process.stdout.close()  # the client stopped reading: the next reply hits a broken pipe
    worker.write(encode({"id": 1, "cmd": "fly"}))
    worker.process.stdin.close()
    assert worker.process.wait(timeout=30) == 0
    assert worker.process.stderr.read() == ""

    worker = WorkerProcess(tmp_path)
    assert worker.read()["event"] == "ready"
    worker.process.stdin.close()  # end of input without a shutdown request
    assert worker.process.wait(timeout=30) == 0
    assert worker.process.stdout.read() == "" and worker.process.stderr.read() == ""


def test_worker_without_onnxruntime_says_so_and_exits_3(tmp_path):
    """A Python without onnxruntime: the venv's interpreter without its site-packages (-S), with
    only the stylepass sources on PYTHONPATH."""
    package = tmp_path / "path" / "stylepass"
    package.mkdir(parents=True)
    (package / "core").symlink_to(Path(stylepass.core.__file__).parent)
    (package / "blender_addon").symlink_to(Path(stylepass.blender_addon.__file__).parent)
    result = subprocess.run([sys.executable, "-S", "-m", WORKER_MODULE], input="", capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path / "path")}, timeout=60)
    assert result.returncode == NO_RUNTIME_EXIT_CODE == 3
    assert result.stdout == ""
    assert result.stderr == (f"onnxruntime is not installed in {sys.executable}: reinstall the Stylepass "
                             "extension (its wheels bring onnxruntime), or run python build.py setup and choose "
                             "that Python in the add-on preferences\n")
