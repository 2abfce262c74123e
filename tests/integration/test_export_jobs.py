"""Farm behaviour of `stylepass export`: shards, resume after a kill, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from stylepass.blender_addon.contract.export_format import MANIFEST_NAME
from stylepass.core.io.gbuffer import exported_frames, read_gbuffer

from .conftest import STYLEPASS, run_in_blender, stylepass_export

TINY = ("--resolution", "32x18", "--samples", "1")


def manifest_frames(out):
    return [json.loads(line)["frame"] for line in (out / MANIFEST_NAME).read_text().splitlines()]


def frame_files(out):
    return sorted(p.name for p in out.glob("*") if p.name.startswith("frame_"))


def test_shards_cover_each_frame_exactly_once(blender, tmp_path):
    out = tmp_path / "shared-folder"
    owned = {1: [1, 4, 7], 2: [2, 5], 3: [3, 6]}
    seen: list[int] = []
    for shard, frames in owned.items():
        run = stylepass_export("demo", out, blender, *TINY, "--frames", "1-7", "--shard", f"{shard}/3")
        assert run.returncode == 0, run.output[-3000:]
        seen += frames
        assert manifest_frames(out) == seen
    assert sorted(seen) == list(range(1, 8))
    assert [read_gbuffer(p).meta["frame"] for p in exported_frames(out)] == list(range(1, 8))


def test_killed_export_resumes_with_nothing_lost(blender, tmp_path):
    out = tmp_path / "job"
    argv = [str(STYLEPASS), "export", "demo", "--out", str(out), "--blender", blender,
            "--resolution", "96x54", "--samples", "16"]
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None:
        if (out / MANIFEST_NAME).exists() and len(manifest_frames(out)) >= 2:
            break
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)  # the farm kills the task: CLI and Blender at once
    job.wait()
    finished_before = manifest_frames(out)
    assert 2 <= len(finished_before) < 12, "the kill came too late to test resuming"
    for path in exported_frames(out):  # everything that looks finished is readable
        read_gbuffer(path)
    mtimes = {f: (out / f"frame_{f:06d}.exr").stat().st_mtime_ns for f in finished_before}

    resumed = stylepass_export("demo", out, blender, "--resolution", "96x54", "--samples", "16")
    assert resumed.returncode == 0, resumed.output[-3000:]
    assert f"{len(finished_before)} already finished" in resumed.output
    assert sorted(manifest_frames(out)) == list(range(1, 13))
    assert len(manifest_frames(out)) == 12
    assert [read_gbuffer(p).meta["frame"] for p in exported_frames(out)] == list(range(1, 13))
    assert {f: (out / f"frame_{f:06d}.exr").stat().st_mtime_ns for f in finished_before} == mtimes
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


@pytest.fixture(scope="session")
def bad_blends(blender, tmp_path_factory):
    """A .blend without a camera and one set to Workbench, made by this Blender."""
    folder = tmp_path_factory.mktemp(f"blends-{blender}")
    run_in_blender(blender, f"""
        import bpy
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        bpy.ops.mesh.primitive_cube_add()
        bpy.ops.wm.save_as_mainfile(filepath={str(folder / 'no_camera.blend')!r})
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        bpy.context.scene.collection.objects.link(camera)
        bpy.context.scene.camera = camera
        bpy.context.scene.render.engine = "BLENDER_WORKBENCH"
        bpy.ops.wm.save_as_mainfile(filepath={str(folder / 'workbench.blend')!r})
    """)
    (folder / "corrupt.blend").write_bytes(b"BLENDER-v450" + os.urandom(2000))
    return folder


@pytest.mark.parametrize("case, expected_code, message", [
    ("no_camera", 2, "has no active camera"),
    ("workbench", 2, "BLENDER_WORKBENCH cannot give G-buffer passes"),
    ("corrupt", 2, "cannot open"),
    ("frames_outside", 2, "is outside scene"),
    ("unwritable", 3, "cannot write to the output folder"),
])
def test_bad_input_is_refused_clearly_and_writes_nothing(blender, bad_blends, tmp_path, case, expected_code,
                                                         message):
    out = tmp_path / "out"
    scene, options = "demo", list(TINY)
    if case in ("no_camera", "workbench", "corrupt"):
        scene = bad_blends / f"{case}.blend"
    elif case == "frames_outside":
        options += ["--frames", "10-20"]
    elif case == "unwritable":
        (tmp_path / "a-file").write_text("not a folder")
        out = tmp_path / "a-file" / "out"
    run = stylepass_export(scene, out, blender, *options)
    assert run.returncode == expected_code, run.output[-3000:]
    assert message in run.output
    assert not out.exists() or frame_files(out) == []


@pytest.mark.parametrize("options, message", [
    (["--frames", "9-3"], "is before the start"),
    (["--shard", "4/3"], "I must be between 1 and N"),
    (["--resolution", "wide"], "expected WxH"),
    (["--samples", "0"], "must be at least 1"),
])
def test_bad_options_fail_before_blender_starts(tmp_path, options, message):
    run = stylepass_export("demo", tmp_path / "out", None, *options)
    assert run.returncode == 2 and message in run.output
    assert not (tmp_path / "out").exists()


def test_missing_scene_and_missing_blender_are_named(tmp_path):
    run = stylepass_export(tmp_path / "nowhere.blend", tmp_path / "out", None)
    assert run.returncode == 2 and "scene file not found" in run.output
    run = stylepass_export("demo", tmp_path / "out", str(tmp_path / "no-blender"))
    assert run.returncode == 4 and "not 4.5 or 5.2 and not an executable Blender" in run.output


def test_ctrl_c_cancels_with_code_130_and_the_same_command_resumes(blender, tmp_path):
    out = tmp_path / "job"
    argv = [str(STYLEPASS), "export", "demo", "--out", str(out), "--blender", blender,
            "--resolution", "96x54", "--samples", "16"]
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not ((out / MANIFEST_NAME).exists() and manifest_frames(out)):
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    output, _ = job.communicate(timeout=120)
    assert job.returncode == 130, output[-3000:]
    assert "re-run the same command to resume" in output or "run the same command again to resume" in output
    assert len(manifest_frames(out)) < 12
    resumed = stylepass_export("demo", out, blender, "--resolution", "96x54", "--samples", "16")
    assert resumed.returncode == 0, resumed.output[-3000:]
    assert sorted(manifest_frames(out)) == list(range(1, 13))
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_a_blender_executable_path_is_started_headless_with_factory_settings(tmp_path):
    """`--blender PATH` runs `PATH -b --factory-startup --python-exit-code 1 --python SCRIPT -- ...`.

    No Blender binary is installed here, so a stand-in checks those flags and runs the
    script with the 5.2 bpy environment, which behaves as Blender's embedded Python does.
    """
    from stylepass.core.cli.blender_runtime import env_python

    fake = tmp_path / "blender"
    fake.write_text(f"""#!/bin/sh
[ "$1 $2 $3 $4 $5" = "-b --factory-startup --python-exit-code 1 --python" ] || exit 99
script="$6"; shift 6
exec {env_python("5.2")} "$script" "$@"
""")
    fake.chmod(0o755)
    run = stylepass_export("demo", tmp_path / "out", str(fake), *TINY, "--frames", "2-3")
    assert run.returncode == 0, run.output[-3000:]
    assert manifest_frames(tmp_path / "out") == [2, 3]


def test_a_file_with_a_scripted_driver_exports_and_the_job_ends(blender, tmp_path):
    """Scripted drivers are blocked (never run), and Blender 4.5 used to wait forever at exit after
    such a file's export: the job must end, with its frames written."""
    scene = tmp_path / "driver.blend"
    run_in_blender(blender, f"""
        import os, bpy
        bpy.ops.wm.read_factory_settings(use_empty=False)
        fcurve = bpy.data.objects["Cube"].driver_add("location", 0)
        fcurve.driver.type = "SCRIPTED"
        fcurve.driver.expression = "bpy.context.scene.frame_current * 0.1"
        bpy.context.scene.frame_end = 2
        bpy.ops.wm.save_as_mainfile(filepath={str(scene)!r})
        os._exit(0)  # this very hang would keep the test's own Blender from ending too
    """)
    run = stylepass_export(scene, tmp_path / "out", blender, *TINY, timeout=180)
    assert run.returncode == 0, run.output[-3000:]
    assert manifest_frames(tmp_path / "out") == [1, 2]


def test_sigterm_cancels_the_export_and_leaves_no_blender_behind(blender, tmp_path):
    out = tmp_path / "job"
    argv = [str(STYLEPASS), "export", "demo", "--out", str(out), "--blender", blender,
            "--resolution", "96x54", "--samples", "16"]
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None:
        if (out / MANIFEST_NAME).exists() and manifest_frames(out):
            break
        time.sleep(0.02)
    job.send_signal(signal.SIGTERM)  # to the CLI only, as a farm's stop does
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130, err[-2000:]
    assert "cancelled" in err
    written = manifest_frames(out)
    time.sleep(3)
    assert manifest_frames(out) == written, "Blender wrote a frame after the command ended"
    blenders = subprocess.run(["pgrep", "-f", f"headless_main.py.*{out}"], capture_output=True, text=True)
    assert blenders.stdout == "", "a Blender child outlived the command"


def test_a_rerun_with_other_settings_is_refused_and_keeps_the_frames(blender, tmp_path):
    out = tmp_path / "job"
    first = stylepass_export("demo", out, blender, *TINY, "--frames", "1-2")
    assert first.returncode == 0, first.output[-3000:]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*")}
    again = stylepass_export("demo", out, blender, *TINY, "--frames", "1-2")
    assert again.returncode == 0 and "2 already finished" in again.output
    for options, changed in ((("--resolution", "48x27", "--samples", "1"), "resolution [32, 18] -> [48, 27]"),
                             (("--resolution", "32x18", "--samples", "4"), "samples 1 -> 4")):
        other = stylepass_export("demo", out, blender, *options, "--frames", "1-2")
        assert other.returncode == 2, other.output[-3000:]
        assert "holds frames exported with other settings" in other.output and changed in other.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*")} == mtimes


def test_a_cycles_gpu_backend_the_machine_lacks_is_refused_before_rendering(blender, tmp_path):
    run = stylepass_export("demo", tmp_path / "gpu", blender, *TINY, "--frames", "1-1", "--cycles-device", "HIP")
    if run.returncode == 0:
        pytest.skip("this machine has a HIP device")
    assert run.returncode == 2, run.output[-3000:]
    assert "--cycles-device HIP: " in run.output and "use CPU (the default)" in run.output
    assert not list((tmp_path / "gpu").glob("frame_*"))
