"""benchmarks/estimate_teacher.py: the teacher's inputs rebuilt from an estimated orientation match the
environment's own when the estimate is the truth, and follow the estimate when it is not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dexvision.envs.task import BlockReorientEnv, EnvConfig
from dexvision.sim.rotations import axis_angle_to_quat, matrix_to_quat, quat_angle, quat_multiply, quat_to_matrix

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("estimate_teacher", ROOT / "benchmarks" / "estimate_teacher.py")
estimate_teacher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(estimate_teacher)


def _observed(goal_frame: str, goal_repr: str = "rotvec") -> dict[str, np.ndarray]:
    env = BlockReorientEnv(EnvConfig(task="gimbal-block", obs_noise=0.0, goal_frame=goal_frame, goal_repr=goal_repr), 3)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(4):
        obs, *_ = env.step(rng.integers(0, env.cfg.action_bins, size=(3, env.nu)))
    return obs


@pytest.mark.parametrize("goal_frame", ["block", "hand"])
@pytest.mark.parametrize("goal_repr", ["rotvec", "matrix"])
def test_the_true_orientation_gives_back_the_environments_inputs(goal_frame, goal_repr):
    obs = _observed(goal_frame, goal_repr)
    out = estimate_teacher.estimated_obs(obs, obs["block_rot"].reshape(-1, 3, 3), goal_frame, zero_velocity=False)
    for key, value in obs.items():
        np.testing.assert_allclose(out[key], value, atol=1e-4, err_msg=key)


def test_an_estimate_moves_the_rotation_to_the_goal_and_can_drop_the_velocity():
    obs = _observed("block")
    true_q = matrix_to_quat(obs["block_rot"].reshape(-1, 3, 3))
    off = quat_to_matrix(axis_angle_to_quat(np.array([0.0, 0.0, 1.0]), 0.3))
    estimate = obs["block_rot"].reshape(-1, 3, 3) @ off  # 0.3 rad about the block's own z axis
    out = estimate_teacher.estimated_obs(obs, estimate, "block", zero_velocity=True)
    np.testing.assert_allclose(out["block_rot"], estimate.reshape(-1, 9), atol=1e-6)
    # the rotation to the goal starts from the estimate: applied to it, it lands on the goal
    goal_q = matrix_to_quat(obs["goal_rot"].reshape(-1, 3, 3))
    rel = out["relative_rotvec"]
    angle = np.linalg.norm(rel, axis=1)
    reached = quat_multiply(matrix_to_quat(estimate),
                            np.stack([axis_angle_to_quat(r / max(a, 1e-12), a) for r, a in zip(rel, angle)]))
    assert np.all(quat_angle(reached, goal_q) < 1e-4)
    assert np.all(quat_angle(matrix_to_quat(estimate), true_q) > 0.29)
    assert not np.allclose(out["relative_rotvec"], obs["relative_rotvec"], atol=1e-3)
    assert np.all(out["block_angvel"] == 0) and np.any(obs["block_angvel"] != 0)
