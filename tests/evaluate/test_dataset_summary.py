"""``stylepass dataset show``'s figures leave out what ``stylepass evaluate`` wrote into the dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

from stylepass.core.io.dataset_tools import EVALUATIONS_FOLDER, summarise


def test_evaluations_in_the_dataset_are_counted_apart(toon_dataset: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    shutil.copytree(toon_dataset, dataset)
    before = summarise(dataset)
    report = dataset / EVALUATIONS_FOLDER / "toon" / "sheet.png"
    report.parent.mkdir(parents=True)
    report.write_bytes(bytes(3 * 2**20))
    after = summarise(dataset)
    assert (after.pairs, after.bytes_on_disk, after.evaluation_bytes) == (5, before.bytes_on_disk, 3 * 2**20)
    assert before.evaluation_bytes == 0 and not any("evaluations" in line for line in before.lines())
    assert "evaluations: 3.0 MiB in evaluation/ (stylepass evaluate's reports, not counted above)" in after.lines()
