"""The render-sheet command, end to end in subprocesses (as a user runs it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_error_line
from PIL import Image


def run(args, env_extra=None, **kw):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "dexvision.render.sheet", *args], capture_output=True,
                          text=True, env=env, timeout=300, **kw)


def test_contact_sheet_is_samples_by_cameras(tmp_path: Path):
    out = tmp_path / "sheet.png"
    res = run(["--task", "gimbal-block", "--samples", "2", "--image-size", "32", "--annotate", "--out", str(out)])
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout
    assert Image.open(out).size == (3 * 34 - 2, 2 * 34 - 2)


def test_cameras_flag_sets_the_columns(tmp_path: Path):
    out = tmp_path / "two.png"
    res = run(["--task", "gimbal-block", "--samples", "1", "--image-size", "16", "--cameras", "2",
               "--no-randomization", "--out", str(out)])
    assert res.returncode == 0, res.stderr
    assert Image.open(out).size == (2 * 18 - 2, 16)


def _one_error_line(res, code, *fragments):
    assert res.returncode == code
    one_error_line(res.stderr, *fragments)


@pytest.mark.parametrize("args, fragments", [
    (["--set", "render.image_size=0"], ["image_size must be within"]),
    (["--set", "render.lighting=1"], ["unknown config key 'render.lighting'"]),
    (["--config", "missing.yaml"], ["config file not found"]),
    (["--samples", "0"], ["--samples must be >= 1"]),
    (["--out", "sheet.jpg"], ["must name a .png"]),
])
def test_bad_input_ends_in_one_clear_line(args, fragments, tmp_path):
    _one_error_line(run(args, cwd=tmp_path), 2, *fragments)


def test_no_gl_names_the_packages_to_install(tmp_path):
    # With no EGL vendor library, no context can be made: as on a machine without Mesa.
    res = run(["--task", "gimbal-block", "--samples", "1", "--out", str(tmp_path / "x.png")],
              {"__EGL_VENDOR_LIBRARY_FILENAMES": "/nonexistent/egl_vendor.json"})
    _one_error_line(res, 1, "no OpenGL context", "apt-get install libegl1")
    assert not (tmp_path / "x.png").exists()


def test_disagreeing_gl_platforms_are_refused(tmp_path):
    res = run(["--task", "gimbal-block", "--samples", "1", "--out", str(tmp_path / "x.png")],
              {"PYOPENGL_PLATFORM": "egl", "MUJOCO_GL": "osmesa"})
    _one_error_line(res, 2, "disagree")
