import numpy as np
import pytest

from dexvision.render.cameras import (
    CameraConfig, camera_label, intrinsics, look_at_rotation, opengl_camera_pose, opengl_intrinsics, project,
    sample_cameras,
)

TARGET = np.array([1.0, 0.87, 0.18])


def test_rotation_is_proper_and_opencv():
    R = look_at_rotation(np.array([1.0, 0.5, 0.4]), TARGET, roll_deg=5.0)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    # z forward points at the target; y (down) has a negative world-z component.
    forward = (TARGET - [1.0, 0.5, 0.4]) / np.linalg.norm(TARGET - [1.0, 0.5, 0.4])
    np.testing.assert_allclose(R[2], forward, atol=1e-12)
    assert R[1, 2] < 0


def test_target_projects_to_the_principal_point():
    for cam in sample_cameras(CameraConfig(), TARGET, None):
        label = camera_label(cam, 64, 64)
        u, v = project(label["K"], label["R"], label["t"], TARGET[None])[0]
        assert u == pytest.approx(31.5) and v == pytest.approx(31.5)


def test_up_in_the_world_is_up_in_the_image():
    label = camera_label(sample_cameras(CameraConfig(), TARGET, None)[0], 64, 64)
    above = project(label["K"], label["R"], label["t"], (TARGET + [0, 0, 0.05])[None])[0]
    assert above[1] < 31.5  # smaller v is higher in the image


def test_opengl_conversion_matches_opencv():
    cam = sample_cameras(CameraConfig(), TARGET, np.random.default_rng(0))[1]
    label = camera_label(cam, 64, 64)
    pose = opengl_camera_pose(label["R"], label["t"])
    np.testing.assert_allclose(pose[:3, 3], cam["position"], atol=1e-12)
    # OpenGL cameras look down their -z axis.
    point_gl = np.linalg.inv(pose) @ np.append(TARGET, 1.0)
    assert point_gl[2] < 0
    fx, fy, cx, cy = opengl_intrinsics(label["K"])
    assert cx == pytest.approx(32.0) and fx == pytest.approx(label["K"][0, 0])


def test_intrinsics_from_field_of_view():
    K = intrinsics(90.0, 100, 100)
    assert K[0, 0] == pytest.approx(50.0)
    assert K[0, 2] == pytest.approx(49.5)


def test_camera_count_and_azimuths():
    assert len(sample_cameras(CameraConfig(count=5), TARGET, None)) == 5
    assert CameraConfig(azimuths_deg=[0.0, 90.0]).count == 2
    np.testing.assert_allclose(CameraConfig(count=1).azimuths(), [-90.0])
    with pytest.raises(ValueError):
        CameraConfig(count=0)
