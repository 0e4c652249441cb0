import numpy as np
import pytest

from dexvision.sim.rotations import (
    axis_angle_to_quat, matrix_to_quat, quat_angle, quat_conjugate, quat_multiply, quat_normalize,
    quat_to_matrix, quat_wxyz_to_xyzw, quat_xyzw_to_wxyz, random_quat,
)


def test_identity_and_known_rotation():
    np.testing.assert_allclose(quat_to_matrix([1, 0, 0, 0]), np.eye(3), atol=1e-12)
    # 90 degrees about z maps x to y.
    q = axis_angle_to_quat([0, 0, 1], np.pi / 2)
    np.testing.assert_allclose(q, [np.sqrt(0.5), 0, 0, np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(quat_to_matrix(q) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


@pytest.mark.parametrize("axis", [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3]])
def test_matrix_roundtrip_including_half_turns(axis):
    # 180-degree rotations have w = 0: the edge case of matrix -> quaternion.
    for angle in (0.0, 1e-6, 0.3, np.pi / 2, np.pi - 1e-9, np.pi):
        q = quat_normalize(axis_angle_to_quat(axis, angle))
        back = matrix_to_quat(quat_to_matrix(q))
        assert quat_angle(q, back) < 1e-6
        assert back[0] >= 0


def test_wxyz_is_the_order_and_conversions_invert():
    q = np.array([0.9, 0.1, -0.3, 0.2])
    np.testing.assert_array_equal(quat_wxyz_to_xyzw(q), [0.1, -0.3, 0.2, 0.9])
    np.testing.assert_array_equal(quat_xyzw_to_wxyz(quat_wxyz_to_xyzw(q)), q)


def test_normalize_is_unit_and_canonical():
    q = quat_normalize([-2.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(q, [1, 0, 0, 0])
    batch = quat_normalize(np.array([[-1.0, 1.0, 0, 0], [0.0, 0.0, 3.0, 4.0]]))
    np.testing.assert_allclose(np.linalg.norm(batch, axis=-1), 1.0)
    assert np.all(batch[:, 0] >= 0)
    with pytest.raises(ValueError):
        quat_normalize([0, 0, 0, 0])


def test_angle_is_sign_invariant_and_geodesic():
    q = axis_angle_to_quat([0, 1, 0], 0.7)
    assert quat_angle(q, -q) == pytest.approx(0.0, abs=1e-7)
    assert quat_angle([1, 0, 0, 0], axis_angle_to_quat([1, 0, 0], np.pi)) == pytest.approx(np.pi)
    assert quat_angle([1, 0, 0, 0], axis_angle_to_quat([0, 0, 1], 0.25)) == pytest.approx(0.25)


def test_multiply_composes_like_matrices():
    rng = np.random.default_rng(0)
    a, b = random_quat(rng), random_quat(rng)
    np.testing.assert_allclose(quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b),
                               atol=1e-12)
    np.testing.assert_allclose(quat_normalize(quat_multiply(a, quat_conjugate(a))), [1, 0, 0, 0], atol=1e-12)


def test_random_quat_is_unit_and_uniform():
    q = random_quat(np.random.default_rng(1), 20000)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0)
    # Uniform rotations: the rotated x axis is uniform on the sphere, mean ~ 0.
    x_axes = quat_to_matrix(q)[:, :, 0]
    assert np.all(np.abs(x_axes.mean(axis=0)) < 0.03)
