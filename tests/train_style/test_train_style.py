"""`stylepass train-style`: a custom style from painted keyframes (training.loop.train_style and its CLI).

The painting is synthetic (see ``synthetic.py``): a strong colour grade, hatching that follows
the shading and outlines on depth and normal edges, painted on frame 1 only. Its ground truth
on the other frames is known, so the test measures whether the trained style carries the look
there better than the untouched render does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylepass.blender_addon.contract.headless_protocol import BadInputError, JobCancelled
from stylepass.blender_addon.live.train_style_job import StyleFolders, TrainStyleJob, train_style_argv
from stylepass.core.cli import main
from stylepass.core.inference.stylise import load_styliser
from stylepass.core.io.gbuffer import read_gbuffer
from stylepass.core.models.serialization import load_tensors
from stylepass.training.loop.checkpoint import latest_checkpoint
from stylepass.training.loop.train_style import StyleSettings, TrainStyleError, read_painting, train_style

from .conftest import FRAMES, PAINTED, SIZE, TINY_SETTINGS, digest
from .synthetic import display, paint, to_srgb, write_scene_export

TINY_CLI = ["--patch", "16", "--width", "4", "--batch", "2", "--device", "cpu"]


def srgb8(linear: np.ndarray) -> np.ndarray:
    """A stylised frame (scene-linear (3, H, W)) as the painting's pixels: paintings are painted
    over the template (Reinhard tone map, then sRGB), so show it the same way."""
    return (to_srgb(linear / (1.0 + linear)) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images."""
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def contrast(image: np.ndarray, ink: np.ndarray) -> float:
    """The mean of `image` (H, W, 3) on the `ink` pixels ((H, W) bool) over its mean off them (< 1: ink is darker)."""
    return float(image[ink].mean() / image[~ink].mean())


def test_one_painted_frame_carries_its_look_to_the_other_frames(trained_style):
    result = trained_style.result
    assert not result.interrupted and result.step == 300
    styliser = load_styliser(result.model_dir, "cpu")  # loads as any preset or model dir does
    for frame in FRAMES:
        if frame == PAINTED:
            continue
        stylised = srgb8(styliser.stylise(read_gbuffer(trained_style.export / f"frame_{frame:06d}.exr")))
        truth = paint(trained_style.frames[frame])
        # the untouched render, as the template the artist painted over
        rendered = trained_style.frames[frame]
        render = psnr(display(rendered), truth)
        gained = psnr(stylised, truth) - render
        assert gained > 5.0, f"frame {frame}: {psnr(stylised, truth):.2f} dB vs the render's {render:.2f} dB"
        ink = truth.max(axis=-1) < 15  # the painting's outlines
        # the render is darker there too (the spheres' shaded rims; about 0.86); the style draws lines
        assert contrast(stylised, ink) < contrast(display(rendered), ink) - 0.15, "the outlines are drawn"


def test_the_model_dir_says_what_it_was_trained_from_and_the_preview_shows_it(trained_style):
    model_dir = trained_style.result.model_dir
    card = json.loads((model_dir / "style.json").read_text())
    (keyframe,) = card["trained_from"]["keyframes"]
    assert keyframe == {"frame": PAINTED, "painting": "keyframe_000001.png",
                        "sha256": digest(trained_style.export / "keyframes" / "keyframe_000001.png")}
    assert card["steps"] == 300 and card["final_loss"] > 0 and not card["stopped_by_time_budget"]
    with Image.open(trained_style.result.preview) as preview:
        width, height = preview.size
    assert width > 3 * SIZE and height > 2 * SIZE, "rows: the keyframe (input | output | painting), an unpainted frame"
    assert (model_dir / "preview.png").read_bytes() == trained_style.result.preview.read_bytes()
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "config.json", "model.onnx", "model.safetensors", "preview.png", "style.json"]


def test_an_untouched_template_reads_back_as_the_render(trained_style, tmp_path):
    # Pixels the artist leaves alone must train towards the render itself, not a darker copy.
    frame = trained_style.frames[PAINTED]
    template = tmp_path / "template.png"
    Image.fromarray(display(frame)).save(template)
    target = read_painting(template)
    expected = torch.from_numpy(frame.beauty / (1.0 + frame.beauty))
    assert (target - expected).abs().max() < 0.02  # 8-bit rounding of the sRGB encoding


def test_paintings_are_only_read(trained_style):
    assert {path: digest(path) for path in trained_style.digests_before} == trained_style.digests_before
    assert sorted(p.name for p in (trained_style.export / "keyframes").iterdir()) == ["keyframe_000001.png"]


def test_a_stopped_run_resumes_to_the_same_weights(painted_export, tmp_path):
    straight = train_style(painted_export, tmp_path / "straight", TINY_SETTINGS, torch.device("cpu"))
    calls = []
    stopped = train_style(painted_export, tmp_path / "stopped", TINY_SETTINGS, torch.device("cpu"),
                          should_stop=lambda: calls.append(1) or len(calls) >= 3)
    assert stopped.interrupted and stopped.step == 3 and stopped.model_dir is None
    assert latest_checkpoint(stopped.work_dir).name == "step-00000003", "a cancelled run keeps a checkpoint"
    assert not (tmp_path / "stopped").exists(), "nothing half-trained is exported"
    with pytest.raises(TrainStyleError, match="holds a run already: pass --resume"):
        train_style(painted_export, tmp_path / "stopped", TINY_SETTINGS, torch.device("cpu"))
    resumed = train_style(painted_export, tmp_path / "stopped", TINY_SETTINGS, torch.device("cpu"), resume=True)
    assert resumed.step == 6
    a, b = (load_tensors(r.model_dir / "model.safetensors") for r in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a), "resuming gives the weights of an uninterrupted run"


def test_resume_refuses_changed_paintings_or_settings_and_restart_starts_over(painted_export, tmp_path):
    model = tmp_path / "style"
    train_style(painted_export, model, TINY_SETTINGS, torch.device("cpu"), should_stop=lambda: True)
    wider = StyleSettings(**{**vars(TINY_SETTINGS), "base_width": 8})
    with pytest.raises(TrainStyleError, match="the settings changed"):
        train_style(painted_export, model, wider, torch.device("cpu"), resume=True)
    painting = painted_export / "keyframes" / "keyframe_000001.png"
    changed = np.asarray(Image.open(painting)).copy()
    changed[:8] = 255
    Image.fromarray(changed).save(painting)
    with pytest.raises(TrainStyleError, match="the paintings changed"):
        train_style(painted_export, model, TINY_SETTINGS, torch.device("cpu"), resume=True)
    restarted = train_style(painted_export, model, wider, torch.device("cpu"), restart=True)
    assert restarted.step == 6 and json.loads((model / "style.json").read_text())["steps"] == 6
    assert (model / "config.json").is_file()


def test_a_folder_that_is_not_a_model_is_never_replaced(painted_export, tmp_path):
    mine = tmp_path / "my_things"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(TrainStyleError, match="is not a Stylepass model dir"):
        train_style(painted_export, mine, TINY_SETTINGS, torch.device("cpu"))
    assert (mine / "notes.txt").read_text() == "keep me"


def test_no_painted_keyframes_is_refused_with_what_to_do(tmp_path, capsys):
    write_scene_export(tmp_path / "export", range(1, 3), 32)
    code = main(["train-style", str(tmp_path / "export"), "--out", str(tmp_path / "style"), *TINY_CLI])
    err = capsys.readouterr().err
    assert code == 2 and "has no painted keyframes" in err and "stylepass keyframe add" in err, err
    assert not (tmp_path / "style").exists()


def test_a_painting_of_another_size_is_refused(painted_export, tmp_path, capsys):
    painting = painted_export / "keyframes" / "keyframe_000001.png"
    Image.fromarray(np.zeros((SIZE // 2, SIZE, 3), np.uint8)).save(painting)  # damaged behind the registry's back
    code = main(["train-style", str(painted_export), "--out", str(tmp_path / "style"), *TINY_CLI])
    err = capsys.readouterr().err
    assert code == 2 and "paint over an image of the render's size" in err, err


def test_a_cancelled_job_keeps_a_checkpoint_and_the_next_one_resumes(painted_export):
    """The add-on's job (Blender-free) runs the CLI in the core's Python; cancelling sends Ctrl-C."""
    folders = StyleFolders.of(painted_export, "spheres")

    def job(steps: int, resume: bool) -> TrainStyleJob:
        argv = train_style_argv(Path(sys.executable), painted_export, folders, "cpu", resume=resume, restart=False,
                                steps=steps, patch=16)
        return TrainStyleJob(argv + ["--width", "4", "--batch", "2"], painted_export, env={"OMP_NUM_THREADS": "1"})

    first = job(100000, resume=False)
    with pytest.raises(JobCancelled):
        for progress in first.steps():
            if progress.done >= 1:
                first.cancel()
            time.sleep(0.05)
    assert folders.has_checkpoint and not folders.model.exists()
    done_at = json.loads((latest_checkpoint(folders.work) / "state.json").read_text())["step"]
    second = job(done_at + 2, resume=True)
    messages = []
    for progress in second.steps():
        messages.append(progress.message)
        time.sleep(0.05)
    assert second.result is not None and second.result["model"] == str(folders.model), messages
    assert json.loads((folders.model / "style.json").read_text())["steps"] == done_at + 2
    assert folders.preview.is_file()


def test_a_time_budget_exports_the_style_so_far_and_resume_goes_on(painted_export, tmp_path):
    model = tmp_path / "style"
    budget = train_style(painted_export, model, TINY_SETTINGS, torch.device("cpu"), minutes=1e-9)
    assert budget.out_of_time and not budget.interrupted and budget.step == 1
    assert json.loads((model / "style.json").read_text())["stopped_by_time_budget"] is True
    finished = train_style(painted_export, model, TINY_SETTINGS, torch.device("cpu"), resume=True)
    assert finished.step == TINY_SETTINGS.steps and not finished.out_of_time


def test_a_non_finite_loss_stops_with_the_last_good_checkpoint_named(painted_export, tmp_path, monkeypatch):
    from stylepass.training.loop import train_style as module
    from stylepass.training.loop.run_control import NonFiniteLossError

    real_loss, calls = module.style_loss, []

    def loss_that_diverges(output, target):
        calls.append(1)
        loss = real_loss(output, target)
        return loss * float("nan") if len(calls) > 4 else loss

    monkeypatch.setattr(module, "style_loss", loss_that_diverges)
    with pytest.raises(NonFiniteLossError, match="non-finite at step 5; .* last good checkpoint is .*step-00000004"):
        train_style(painted_export, tmp_path / "style", TINY_SETTINGS, torch.device("cpu"))
    assert not (tmp_path / "style").exists()


def test_an_unreadable_painting_is_bad_input(painted_export, tmp_path):
    (painted_export / "keyframes" / "keyframe_000001.png").write_bytes(b"not a picture")
    with pytest.raises(TrainStyleError, match="cannot read the painting .*keyframe_000001.png"):
        train_style(painted_export, tmp_path / "style", TINY_SETTINGS, torch.device("cpu"))


def test_a_job_the_core_refuses_says_why(painted_export):
    painting = painted_export / "keyframes" / "keyframe_000001.png"
    Image.fromarray(np.zeros((SIZE // 2, SIZE, 3), np.uint8)).save(painting)
    folders = StyleFolders.of(painted_export, "spheres")
    job = TrainStyleJob(train_style_argv(Path(sys.executable), painted_export, folders, "cpu", resume=False,
                                         restart=False, steps=2, patch=16), painted_export)
    with pytest.raises(BadInputError, match="paint over an image of the render's size"):
        for _ in job.steps():
            time.sleep(0.05)
