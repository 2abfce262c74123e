"""stylise_jobs' pipeline: the next frame is read while the model runs and the previous one is
written meanwhile, with the same outputs, manifest, order of reports, claims and stops as one
frame after another. Overlap is shown with events (never with timings)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stylepass.core.inference import stylise as stylise_module
from stylepass.core.inference.stylise import (
    CLAIMS_FOLDER,
    OUTPUT_MANIFEST,
    FrameJob,
    Styliser,
    frame_claim,
    frame_jobs,
    stylise_jobs,
)
from stylepass.core.io.gbuffer import GBufferFrame

from .conftest import smooth_frame, write_export

WAIT_S = 20.0  # generous: only a broken pipeline waits this long


@dataclass
class BeautyStyliser(Styliser):
    """Returns the beauty pass (times a gain) as the stylised image; `before_run(frame)` hooks each model run."""

    gain: float = 0.5
    before_run: Callable[[GBufferFrame], None] | None = None

    def _run(self, frame: GBufferFrame, tile: int | None, tile_done: Callable[[int], None]) -> np.ndarray:
        if self.before_run is not None:
            self.before_run(frame)
        tile_done(1)
        return np.asarray(frame.beauty, np.float32) * self.gain

    def release_memory(self) -> None:
        pass

    def close(self) -> None:
        pass


def make_styliser(**kwargs) -> BeautyStyliser:
    return BeautyStyliser(name="beauty", model_id="beauty-1", family="unet", passes=(), multiple=1, device="cpu",
                          runtime="test", **kwargs)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    write_export(folder, [smooth_frame(24, 32, peak=1.0 + index) for index in range(4)])
    return folder


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / OUTPUT_MANIFEST).read_text().splitlines()]


def frame_name(frame: GBufferFrame) -> str:
    return Path(frame.path).name


def test_outputs_manifest_and_reports_match_one_frame_after_another(tmp_path: Path, export: Path) -> None:
    jobs = frame_jobs(export, tmp_path / "out")
    sequential = tmp_path / "sequential"
    sequential.mkdir()
    styliser = make_styliser()
    for job in jobs:  # the reference: each frame read, stylised and written in turn
        styliser.stylise_file(job.source, sequential / job.output.name, sequential / job.preview.name)
    # frame 2 finished by an earlier run, frame 3 damaged: skipped and failed between stylised frames
    out = tmp_path / "out"
    assert stylise_jobs(styliser, jobs[1:2], out).stylised == jobs[1:2]
    jobs[2].source.write_bytes(jobs[2].source.read_bytes()[:200])
    reports: list[tuple[int, int, str, str]] = []
    summary = stylise_jobs(styliser, jobs, out,
                           on_frame=lambda done, total, job, status: reports.append((done, total, job.source.name,
                                                                                     status)))
    assert reports == [(1, 4, "frame_000001.exr", "stylised"), (2, 4, "frame_000002.exr", "skipped"),
                       (3, 4, "frame_000003.exr", "failed"), (4, 4, "frame_000004.exr", "stylised")]
    assert summary.stylised == [jobs[0], jobs[3]] and summary.skipped == [jobs[1]]
    assert [job for job, _ in summary.failed] == [jobs[2]] and summary.failed[0][1].kind == "bad_input"
    assert [row["exr"] for row in rows(out)] == ["stylised_000002.exr", "stylised_000001.exr", "stylised_000004.exr"]
    assert all(row["model"] == "beauty-1" and row["input"] and row["seconds"] >= 0 for row in rows(out))
    for name in ("stylised_000001", "stylised_000004"):
        for suffix in (".exr", ".png"):
            assert (out / f"{name}{suffix}").read_bytes() == (sequential / f"{name}{suffix}").read_bytes()
    assert not list(out.glob(".*.partial")) and all(claim_is_free(out, job) for job in jobs)


# fcntl locks belong to a process: a probe in this process would always get the lock (and drop the
# real one when it closes its handle), so another process tries to take it.
PROBE_CLAIM = """
import fcntl, sys
with open(sys.argv[1], "a") as handle:
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(1)
"""


def claim_is_free(out: Path, job: FrameJob) -> bool:
    """Whether another process can claim `job` now (the claim file of :func:`frame_claim`)."""
    lock = out / CLAIMS_FOLDER / f"{job.output.stem}.lock"
    return subprocess.run([sys.executable, "-c", PROBE_CLAIM, str(lock)], check=False).returncode == 0


def test_the_claim_probe_sees_a_claim_held_by_this_process(tmp_path: Path, export: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    [job, *_] = frame_jobs(export, out)
    with frame_claim(out, job) as claimed:
        assert claimed and not claim_is_free(out, job)
    assert claim_is_free(out, job)


def test_the_next_frame_is_read_and_the_last_written_while_the_model_runs(tmp_path: Path, export: Path,
                                                                         monkeypatch) -> None:
    second_read = threading.Event()
    second_model_started = threading.Event()
    real_read, real_write = stylise_module._read_input, stylise_module.write_stylised

    def read(source: Path):
        if source.name == "frame_000002.exr":
            second_read.set()
        return real_read(source)

    def write(rgb, output: Path, preview):
        if output.name == "stylised_000001.exr":  # frame 1's write waits for frame 2's model run
            assert second_model_started.wait(WAIT_S), "frame 2's model did not run while frame 1 was written"
        real_write(rgb, output, preview)

    def before_run(frame: GBufferFrame) -> None:
        if frame_name(frame) == "frame_000001.exr":  # frame 1's model waits for frame 2's read
            assert second_read.wait(WAIT_S), "frame 2 was not read while frame 1's model ran"
        if frame_name(frame) == "frame_000002.exr":
            second_model_started.set()

    monkeypatch.setattr(stylise_module, "_read_input", read)
    monkeypatch.setattr(stylise_module, "write_stylised", write)
    out = tmp_path / "out"
    summary = stylise_jobs(make_styliser(before_run=before_run), frame_jobs(export, out), out)
    assert len(summary.stylised) == 4
    assert [row["exr"] for row in rows(out)] == [f"stylised_{n:06d}.exr" for n in range(1, 5)]


def test_a_stop_during_a_model_run_records_the_frame_being_written(tmp_path: Path, export: Path) -> None:
    def before_run(frame: GBufferFrame) -> None:
        if frame_name(frame) == "frame_000003.exr":
            raise KeyboardInterrupt

    out = tmp_path / "out"
    jobs = frame_jobs(export, out)
    reports: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        stylise_jobs(make_styliser(before_run=before_run), jobs, out,
                     on_frame=lambda done, total, job, status: reports.append(f"{job.output.name} {status}"))
    assert [row["exr"] for row in rows(out)] == ["stylised_000001.exr", "stylised_000002.exr"]
    assert reports == ["stylised_000001.exr stylised", "stylised_000002.exr stylised"]
    assert (out / "stylised_000002.png").is_file() and not (out / "stylised_000003.exr").exists()
    assert all(claim_is_free(out, job) for job in jobs)
    assert not [t for t in threading.enumerate() if t.name.startswith("stylepass-")]
    # a rerun resumes: two skipped, two stylised
    summary = stylise_jobs(make_styliser(), jobs, out)
    assert summary.skipped == jobs[:2] and summary.stylised == jobs[2:]


def interrupted_run(styliser: Styliser, jobs: list[FrameJob], out: Path, stopper: Callable[[], None],
                    release_write: threading.Event) -> None:
    """stylise_jobs while `stopper` (in a thread) sends signals; the run must end in KeyboardInterrupt.
    `release_write` is set on the way out, whatever happens, so that no write stays stuck."""
    thread = threading.Thread(target=stopper)
    thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            stylise_jobs(styliser, jobs, out)
    finally:
        release_write.set()
        thread.join()


def test_ctrl_c_while_waiting_for_a_write_records_both_frames_in_flight(tmp_path: Path, export: Path,
                                                                        monkeypatch) -> None:
    """Ctrl-C (or SIGTERM) that lands while the loop waits for frame 1's write: frame 1 and frame 2
    (whose model had run) are written and recorded, their claims held until then; frame 3 is not run."""
    release_write = threading.Event()
    real_write = stylise_module.write_stylised
    claims_during_write: list[bool] = []

    def write(rgb, output: Path, preview):
        if output.name == "stylised_000001.exr":
            release_write.wait(WAIT_S)  # slow storage: the loop is waiting here when the signal comes
        real_write(rgb, output, preview)

    def before_run(frame: GBufferFrame) -> None:
        if frame_name(frame) == "frame_000003.exr":
            raise AssertionError("frame 3 must not run after the stop")

    def interrupt_then_release() -> None:
        threading.Event().wait(0.5)
        os.kill(os.getpid(), signal.SIGINT)  # lands in the main thread, waiting for frame 1's write
        threading.Event().wait(0.3)
        claims_during_write.append(claim_is_free(out, jobs[0]))
        release_write.set()

    monkeypatch.setattr(stylise_module, "write_stylised", write)
    out = tmp_path / "out"
    jobs = frame_jobs(export, out)
    interrupted_run(make_styliser(before_run=before_run), jobs, out, interrupt_then_release, release_write)
    assert claims_during_write == [False], "frame 1's claim was let go while its files were being written"
    assert [row["exr"] for row in rows(out)] == ["stylised_000001.exr", "stylised_000002.exr"]
    assert all(claim_is_free(out, job) for job in jobs)
    assert not [t for t in threading.enumerate() if t.name.startswith("stylepass-")]


def test_a_second_ctrl_c_stops_the_wait_for_a_stuck_write(tmp_path: Path, export: Path, monkeypatch) -> None:
    """A write stuck on a hung share: the first Ctrl-C waits for it, the second stops at once; the
    frame is not recorded (a rerun redoes it) and its claim and threads are gone afterwards."""
    release_write = threading.Event()
    real_write = stylise_module.write_stylised

    def write(rgb, output: Path, preview):
        if output.name == "stylised_000001.exr":
            release_write.wait(WAIT_S)
        real_write(rgb, output, preview)

    def interrupt_twice_then_release() -> None:
        for _ in range(2):
            threading.Event().wait(0.4)
            os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(0.5)
        release_write.set()  # the stuck write ends at last (the executor joins its thread on the way out)

    monkeypatch.setattr(stylise_module, "write_stylised", write)
    out = tmp_path / "out"
    jobs = frame_jobs(export, out)
    interrupted_run(make_styliser(), jobs, out, interrupt_twice_then_release, release_write)
    assert "stylised_000001.exr" not in [row["exr"] for row in rows(out)]
    assert all(claim_is_free(out, job) for job in jobs)
    assert not [t for t in threading.enumerate() if t.name.startswith("stylepass-")]


def test_a_failed_write_stops_the_run_and_records_nothing_of_it(tmp_path: Path, export: Path, monkeypatch) -> None:
    real_write = stylise_module.write_stylised

    def write(rgb, output: Path, preview):
        if output.name == "stylised_000002.exr":
            raise OSError(28, "No space left on device")
        real_write(rgb, output, preview)

    monkeypatch.setattr(stylise_module, "write_stylised", write)
    out = tmp_path / "out"
    jobs = frame_jobs(export, out)
    with pytest.raises(OSError, match="No space left"):
        stylise_jobs(make_styliser(), jobs, out)
    # frame 3, whose model had run and whose files were being written when frame 2's write failed, is kept
    assert [row["exr"] for row in rows(out)] == ["stylised_000001.exr", "stylised_000003.exr"]
    assert not (out / "stylised_000002.exr").exists() and not (out / "stylised_000004.exr").exists()
    assert all(claim_is_free(out, job) for job in jobs)
    assert not [t for t in threading.enumerate() if t.name.startswith("stylepass-")]


def test_each_frame_is_read_once_and_a_finished_run_reads_none(tmp_path: Path, export: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    jobs = frame_jobs(export, out)
    read: list[str] = []
    real_read = stylise_module._read_input

    def recording_read(source: Path):
        read.append(source.name)
        return real_read(source)

    monkeypatch.setattr(stylise_module, "_read_input", recording_read)
    stylise_jobs(make_styliser(), jobs, out)
    assert read == [job.source.name for job in jobs]
    read.clear()
    summary = stylise_jobs(make_styliser(), jobs, out)  # a resumed run with nothing left: no read ahead
    assert summary.skipped == jobs and read == []
