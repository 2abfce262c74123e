"""``stylepass stylise`` on real files: a frame, a folder (resume), colour, and every bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
import torch
from PIL import Image

from stylepass.blender_addon.contract.exit_codes import ExitCode
from stylepass.core.cli import main
from stylepass.core.inference.stylise import OUTPUT_MANIFEST, PRESETS_ENV, REPO_PRESETS, Styliser
from stylepass.core.io.gbuffer import read_gbuffer
from stylepass.core.models import RADConfig, UNetConfig, build_generator, load_model, save_model

from .conftest import PASSES, TINY_RAD, smooth_frame, write_export, write_model

STYLEPASS = Path(sys.executable).parent / "stylepass"


def stylise(*args: str | Path) -> int:
    return main(["stylise", *map(str, args)])


def read_rgb(path: Path) -> np.ndarray:
    """The R, G, B channels of a stylised EXR as (3, H, W) float32, checking the file's layout."""
    parts = OpenEXR.File(str(path), separate_channels=True).parts
    assert len(parts) == 1
    channels = parts[0].channels
    assert sorted(channels) == ["B", "G", "R"]
    assert all(channel.pixels.dtype == np.float16 for channel in channels.values())
    return np.stack([channels[name].pixels.astype(np.float32) for name in "RGB"])


def manifest_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / OUTPUT_MANIFEST).read_text().splitlines()]


def test_one_frame_gives_a_linear_exr_and_a_preview_of_its_size(tmp_path, export_folder, rad_model, capsys):
    source = export_folder / "frame_000002.exr"
    assert stylise(source, "--model", rad_model, "--out", tmp_path / "out", "--device", "cpu") == ExitCode.OK

    rgb = read_rgb(tmp_path / "out" / "stylised_000002.exr")
    frame = read_gbuffer(source)
    assert rgb.shape == frame.beauty.shape
    assert np.isfinite(rgb).all() and rgb.min() >= 0
    assert np.abs(rgb - frame.beauty).mean() > 0.01  # the model changed the image
    with Image.open(tmp_path / "out" / "stylised_000002.png") as preview:
        assert preview.mode == "RGB" and preview.size == (rgb.shape[2], rgb.shape[1])
    [row] = manifest_rows(tmp_path / "out")
    assert row["exr"] == "stylised_000002.exr" and row["source"] == str(source.resolve())
    assert "stylised_000002.exr stylised (1/1)" in capsys.readouterr().err


def test_a_folder_is_stylised_frame_by_frame_and_resumes(tmp_path, export_folder, rad_model, capsys):
    out = tmp_path / "out"
    assert stylise(export_folder, "--model", rad_model, "--out", out) == ExitCode.OK
    names = [f"stylised_{n:06d}" for n in (1, 2, 3)]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [OUTPUT_MANIFEST] + [n + ".exr" for n in names] + [n + ".png" for n in names])
    capsys.readouterr()

    # A frame whose EXR is lost is redone; the others are skipped untouched.
    kept = (out / "stylised_000001.exr").stat().st_mtime_ns
    (out / "stylised_000003.exr").unlink()
    assert stylise(export_folder, "--model", rad_model, "--out", out) == ExitCode.OK
    err = capsys.readouterr().err
    assert "stylised_000001.exr skipped (1/3)" in err and "stylised_000002.exr skipped (2/3)" in err
    assert "stylised_000003.exr stylised (3/3)" in err and "1 stylised, 2 already finished" in err
    assert (out / "stylised_000001.exr").stat().st_mtime_ns == kept
    read_rgb(out / "stylised_000003.exr")

    # Another model's results are not kept: every frame is redone.
    other = write_model(tmp_path / "other", TINY_RAD, seed=1)
    assert stylise(export_folder, "--model", other, "--out", out) == ExitCode.OK
    assert "3 stylised, 0 already finished" in capsys.readouterr().err


def test_hdr_beauty_comes_back_scene_linear(tmp_path, identity_model):
    """An identity model gives back the beauty, values far above 1 included: only the tone map
    and its inverse touch it (to half-float precision)."""
    [source] = write_export(tmp_path / "export", [smooth_frame(40, 56, peak=50.0)])
    assert stylise(source, "--model", identity_model, "--out", tmp_path / "out") == ExitCode.OK

    rgb = read_rgb(tmp_path / "out" / "stylised_000001.exr")
    beauty = read_gbuffer(source).beauty
    assert rgb.shape == beauty.shape and np.isfinite(rgb).all() and rgb.min() >= 0
    np.testing.assert_allclose(rgb, beauty, rtol=2e-3, atol=1e-3)
    assert rgb.max() > 45
    # lossless PIZ (faster to write than ZIP), which Blender and every EXR reader take
    with OpenEXR.File(str(tmp_path / "out" / "stylised_000001.exr")) as written:
        assert written.header()["compression"] == OpenEXR.PIZ_COMPRESSION


def test_missing_passes_are_named(tmp_path, export_folder, capsys):
    needs_motion = write_model(tmp_path / "motion", RADConfig(
        widths=(8,), blocks=(1,), gbuffer_widths=(4,), gbuffer_passes=(*PASSES, "motion")))
    assert stylise(export_folder, "--model", needs_motion, "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "lacks the pass(es) model 'motion' needs: motion" in err and "Set up passes" in err

    # an export made before the glossy colour pass, for a model that reads it (the toon preset)
    needs_glossy = write_model(tmp_path / "glossy", UNetConfig(
        base_width=4, depth=2, demodulated=True, gbuffer_passes=("albedo", "glossy_albedo", "normal")))
    [old_export] = write_export(tmp_path / "old_export", [smooth_frame(32, 32)], passes=("albedo",))
    assert stylise(old_export, "--model", needs_glossy, "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "lacks the pass(es) model 'glossy' needs: glossy_albedo" in err and "export again" in err

    [no_albedo] = write_export(tmp_path / "export", [smooth_frame(32, 32)], passes=())
    rad = write_model(tmp_path / "rad", TINY_RAD)
    assert stylise(no_albedo, "--model", rad, "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    assert "has no albedo pass" in capsys.readouterr().err


def test_presets_need_a_trained_model(tmp_path, export_folder, monkeypatch, capsys):
    source = export_folder / "frame_000001.exr"
    assert REPO_PRESETS.is_dir() and (REPO_PRESETS / "toon").is_dir()
    monkeypatch.setenv(PRESETS_ENV, str(tmp_path / "presets"))
    (tmp_path / "presets" / "toon").mkdir(parents=True)
    assert stylise(source, "--preset", "toon", "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    assert "preset 'toon' has no trained model yet" in capsys.readouterr().err
    assert stylise(source, "--preset", "oil", "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "no preset 'oil'" in err and "presets there: toon" in err

    write_model(tmp_path / "presets" / "toon" / "model", TINY_RAD)
    assert stylise(source, "--preset", "toon", "--out", tmp_path / "out") == ExitCode.OK
    assert "model toon (rad)" in capsys.readouterr().err


def test_a_render_of_another_engine_than_the_preset_learnt_gets_a_warning(tmp_path, monkeypatch, capsys):
    """enhance learnt Eevee renders: a Cycles frame is stylised, with a warning that says what to change."""
    [source] = write_export(tmp_path / "export", [smooth_frame(24, 32)])
    sidecar = json.loads(source.with_suffix(".json").read_text())
    source.with_suffix(".json").write_text(json.dumps({**sidecar, "engine": "CYCLES"}))
    monkeypatch.setenv(PRESETS_ENV, str(tmp_path / "presets"))
    write_model(tmp_path / "presets" / "enhance" / "model", TINY_RAD)
    (tmp_path / "presets" / "enhance" / "dataset.toml").write_text('[input]\nengine = "eevee"\nindirect = true\n')
    assert stylise(source, "--preset", "enhance", "--out", tmp_path / "out") == ExitCode.OK
    assert ("warning: enhance was trained on Eevee renders with ray tracing on; this is a Cycles render: render "
            "in Eevee for its best result") in " ".join(capsys.readouterr().err.split())


def test_pickled_weights_are_refused(tmp_path, export_folder, capsys):
    model_dir = write_model(tmp_path / "model", TINY_RAD)
    torch.save(build_generator(TINY_RAD).state_dict(), model_dir / "model.safetensors")
    assert stylise(export_folder, "--model", model_dir, "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    assert "refusing to load" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    torch.save(build_generator(TINY_RAD), tmp_path / "model.pt")  # a whole pickled module, given as the model
    assert stylise(export_folder, "--model", tmp_path / "model.pt", "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "refusing to load" in err and "a pickle/zip (torch.save) file" in err


@pytest.mark.parametrize("problem", ["missing file", "no sidecar", "not an export folder", "damaged exr"])
def test_bad_inputs_are_exit_code_2(tmp_path, export_folder, rad_model, problem, capsys):
    if problem == "missing file":
        source, expected = tmp_path / "frame_000009.exr", "input not found"
    elif problem == "no sidecar":
        source, expected = tmp_path / "render.exr", "has no sidecar render.json"
        source.write_bytes((export_folder / "frame_000001.exr").read_bytes())
    elif problem == "not an export folder":
        source, expected = tmp_path, "is not a Stylepass export folder"
    else:
        [source] = write_export(tmp_path / "export", [smooth_frame(32, 32)])
        source.write_bytes(source.read_bytes()[:400])
        expected = "not a readable EXR"
    assert stylise(source, "--model", rad_model, "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    assert expected in capsys.readouterr().err


def test_bad_model_folder_and_tile(tmp_path, export_folder, rad_model, capsys):
    assert stylise(export_folder, "--model", tmp_path / "none", "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    assert "model folder not found" in capsys.readouterr().err
    assert stylise(export_folder, "--model", rad_model, "--out", tmp_path / "out", "--tile", "16") == ExitCode.BAD_INPUT
    assert "tile 16 is too small for this model: use 64 or more" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_asked_for_but_missing(tmp_path, export_folder, rad_model, capsys):
    code = stylise(export_folder, "--model", rad_model, "--out", tmp_path / "out", "--device", "cuda")
    assert code == ExitCode.BAD_INPUT
    assert "no CUDA provider" in (err := capsys.readouterr().err) and "--device cpu" in err
    code = stylise(export_folder, "--model", rad_model, "--out", tmp_path / "out", "--device", "cuda:1",
                   "--engine", "torch")
    assert code == ExitCode.BAD_INPUT
    assert "CUDA is not available" in (err := capsys.readouterr().err) and "--device cpu" in err


def test_unwritable_output_is_exit_code_3(tmp_path, export_folder, rad_model, capsys):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "out"
    assert stylise(export_folder, "--model", rad_model, "--out", out) == ExitCode.OUTPUT_UNWRITABLE
    assert f"cannot write to {out}" in capsys.readouterr().err


def test_sigterm_cancels_and_a_rerun_resumes(tmp_path, export_folder, rad_model, monkeypatch, capsys):
    out = tmp_path / "out"
    real = Styliser.stylise_file

    def terminated_on_the_second_frame(self, source, *args, **kwargs):
        if source.name == "frame_000002.exr":
            (out / ".stylised_000002.host-1.exr.partial").write_bytes(b"half a file")
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(Styliser, "stylise_file", terminated_on_the_second_frame)
    assert stylise(export_folder, "--model", rad_model, "--out", out) == ExitCode.CANCELLED
    assert "cancelled" in capsys.readouterr().err
    assert [row["exr"] for row in manifest_rows(out)] == ["stylised_000001.exr"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    monkeypatch.setattr(Styliser, "stylise_file", real)
    assert stylise(export_folder, "--model", rad_model, "--out", out) == ExitCode.OK
    assert "2 stylised, 1 already finished" in capsys.readouterr().err
    assert not list(out.glob(".*.partial"))


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_nan_weights_are_refused_and_nothing_is_recorded(tmp_path, export_folder, capsys, engine):
    model_dir = write_model(tmp_path / "model", TINY_RAD)
    model, config = load_model(model_dir)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    save_model(model, config, model_dir)
    code = stylise(export_folder, "--model", model_dir, "--out", tmp_path / "out", "--engine", engine)
    assert code == ExitCode.BAD_INPUT
    assert "holds NaN or Inf weights (head.weight)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_an_onnx_model_that_makes_nan_is_stopped_before_anything_is_written(tmp_path, export_folder, capsys,
                                                                           monkeypatch):
    from stylepass.core.inference.onnx_styliser import OnnxStyliser

    monkeypatch.setattr(OnnxStyliser, "_run", lambda self, frame, tile, done: np.full((3, *frame.size), np.nan))
    model_dir = write_model(tmp_path / "model", TINY_RAD)
    assert stylise(export_folder, "--model", model_dir, "--out", tmp_path / "out") == ExitCode.BAD_INPUT
    assert "made NaN or Inf values" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("stylised_*"))


def test_a_re_rendered_input_is_stylised_again_not_kept(tmp_path, rad_model, capsys):
    export = tmp_path / "export"
    write_export(export, [smooth_frame(32, 40), smooth_frame(32, 40, peak=2.0)])
    out = tmp_path / "out"
    assert stylise(export, "--model", rad_model, "--out", out) == ExitCode.OK
    first = read_rgb(out / "stylised_000002.exr")
    capsys.readouterr()
    write_export(tmp_path / "rerender", [smooth_frame(32, 40), smooth_frame(32, 40, peak=6.0)])
    for name in ("frame_000002.exr", "frame_000002.json"):  # frame 2 exported again, with other settings
        (export / name).write_bytes((tmp_path / "rerender" / name).read_bytes())
    assert stylise(export, "--model", rad_model, "--out", out) == ExitCode.OK
    assert "1 stylised, 1 already finished" in capsys.readouterr().err
    assert not np.allclose(read_rgb(out / "stylised_000002.exr"), first)


def test_a_damaged_frame_is_named_at_the_end_and_the_others_are_stylised(tmp_path, rad_model, capsys):
    export = tmp_path / "export"
    frames = write_export(export, [smooth_frame(32, 40) for _ in range(3)])
    frames[1].write_bytes(frames[1].read_bytes()[:300])
    out = tmp_path / "out"
    assert stylise(export, "--model", rad_model, "--out", out) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "2 stylised" in err and "frame_000002.exr: " in err and "not a readable EXR" in err
    assert "1 of 3 frame(s) could not be stylised (named above); the others are done" in err
    assert sorted(p.name for p in out.glob("*.exr")) == ["stylised_000001.exr", "stylised_000003.exr"]


def test_a_manifest_that_is_a_symlink_is_never_written_through(tmp_path, export_folder, rad_model, capsys):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text("")
    (out / OUTPUT_MANIFEST).symlink_to(elsewhere)
    assert stylise(export_folder, "--model", rad_model, "--out", out) == ExitCode.BAD_INPUT
    assert "is a symbolic link" in capsys.readouterr().err and elsewhere.read_text() == ""


def test_farm_tasks_share_an_output_folder_without_redoing_frames(tmp_path, rad_model):
    """Two real processes on one --out, started together: every frame once in the manifest; and
    --shard I/N tasks cover each frame exactly once."""
    export = tmp_path / "export"
    write_export(export, [smooth_frame(160, 200, peak=1.0 + index / 4) for index in range(12)])
    out = tmp_path / "out"
    argv = [str(STYLEPASS), "stylise", str(export), "--model", str(rad_model), "--out", str(out), "--engine", "torch"]
    tasks = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [task.communicate(timeout=300)[1] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], outputs
    rows = [json.loads(line) for line in (out / OUTPUT_MANIFEST).read_text().splitlines()]
    assert sorted(row["exr"] for row in rows) == [f"stylised_{n:06d}.exr" for n in range(1, 13)]

    sharded = tmp_path / "sharded"
    for index in (1, 2, 3):
        assert stylise(export, "--model", rad_model, "--out", sharded, "--shard", f"{index}/3",
                       "--frames", "2-11") == ExitCode.OK
    rows = [json.loads(line) for line in (sharded / OUTPUT_MANIFEST).read_text().splitlines()]
    assert sorted(row["exr"] for row in rows) == [f"stylised_{n:06d}.exr" for n in range(2, 12)]
    assert stylise(export, "--model", rad_model, "--out", sharded, "--shard", "4/3") == ExitCode.BAD_INPUT


def test_a_python_warning_is_one_warning_line(tmp_path, rad_model, capsys):
    frame = smooth_frame(32, 40)
    frame.beauty[0, 3, 3] = np.nan
    write_export(tmp_path / "export", [frame])
    assert stylise(tmp_path / "export", "--model", rad_model, "--out", tmp_path / "out") == ExitCode.OK
    err = capsys.readouterr().err
    assert "warning: " in err and "non-finite values set to 0 and masked (beauty: 1 px)" in err
    assert "UserWarning" not in err and "warnings.warn" not in err
