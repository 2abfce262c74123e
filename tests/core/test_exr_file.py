"""OpenEXR's thread pool in stylepass.core.io.exr_file: on for each read and write, off after.

A pool left running is inherited dead by forked processes (a training DataLoader's workers):
their next EXR read would wait on it forever. These tests fork after reads and writes.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from stylepass.core.io import exr_file
from stylepass.core.io.exr_file import EXR_THREADS_ENV, exr_thread_count, exr_threads, read_exr, write_exr

SIZE = (64, 96)


def _channels(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"R": rng.random(SIZE, dtype=np.float32).astype(np.float16),
            "Z": rng.random(SIZE, dtype=np.float32) * 100.0}


def _read_in_child(path: str, queue: multiprocessing.Queue) -> None:
    queue.put(float(read_exr(Path(path)).channels["Z"].sum()))


def test_write_then_read_round_trips_each_channel_dtype(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXR_THREADS_ENV, "4")
    written = _channels()
    write_exr(tmp_path / "a.exr", written)
    read = read_exr(tmp_path / "a.exr").channels
    for name, data in written.items():
        assert read[name].dtype == data.dtype
        np.testing.assert_array_equal(read[name], data)


def test_the_pool_is_off_after_reads_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXR_THREADS_ENV, "3")
    with exr_threads():
        assert OpenEXR.global_thread_count() == 3
        with exr_threads():  # nested: still on, and still on after the inner block
            pass
        assert OpenEXR.global_thread_count() == 3
    assert OpenEXR.global_thread_count() == 0
    write_exr(tmp_path / "a.exr", _channels())
    read_exr(tmp_path / "a.exr")
    assert OpenEXR.global_thread_count() == 0


def test_threads_reading_at_once_share_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXR_THREADS_ENV, "2")
    paths = []
    for seed in range(4):
        paths.append(tmp_path / f"{seed}.exr")
        write_exr(paths[-1], _channels(seed))
    sums: dict[int, float] = {}

    def read(index: int) -> None:
        for _ in range(5):
            sums[index] = float(read_exr(paths[index]).channels["Z"].sum())

    threads = [threading.Thread(target=read, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert sums == pytest.approx({seed: float(_channels(seed)["Z"].sum()) for seed in range(4)}, rel=1e-5)
    assert exr_file._pool_users == 0 and OpenEXR.global_thread_count() == 0


def test_a_process_forked_after_reads_can_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXR_THREADS_ENV, "2")
    path = tmp_path / "a.exr"
    write_exr(path, _channels())
    expected = float(read_exr(path).channels["Z"].sum())
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(str(path), queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("a forked process hung reading an EXR: OpenEXR's thread pool was left running")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == pytest.approx(expected)


@pytest.mark.parametrize("value, expected", [("0", 0), ("1", 1), (" 6 ", 6)])
def test_the_thread_count_can_be_set(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv(EXR_THREADS_ENV, value)
    assert exr_thread_count() == expected


def test_a_bad_thread_count_is_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXR_THREADS_ENV, "many")
    with pytest.raises(ValueError, match=EXR_THREADS_ENV):
        exr_thread_count()


def test_by_default_one_thread_per_usable_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXR_THREADS_ENV, raising=False)
    assert exr_thread_count() >= 1
