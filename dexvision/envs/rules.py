"""The task's rules apart from its simulation: the reward variants, how goals are drawn, and the goal-dependent
observation keys that hindsight relabelling recomputes. `BlockReorientEnv` (task.py) calls these; a learner may
call the pure ones (a reward recomputed from (achieved orientation, goal, drop), a goal's observation keys).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from dexvision.sim.rotations import axis_angle_to_quat, quat_multiply, quat_normalize, quat_to_matrix, random_quat
from dexvision.sim.scenes import BLOCK_REST_POINT

if TYPE_CHECKING:
    from dexvision.envs.task import EnvConfig

ROTATION_REWARDS = ("progress", "inverse", "distance", "closeness", "none")


def step_reward(cfg: EnvConfig, prev_dist: np.ndarray, dist: np.ndarray, pos: np.ndarray,
                dropped: np.ndarray, command: np.ndarray | None = None) -> np.ndarray:
    """One control step's reward per environment: the rotation term (EnvConfig.rotation_reward), the optional
    penalties on the block's distance from its rest point and on the commands, the success bonus and the drop
    penalty. `prev_dist` and `dist`: the angle to the goal before and after the step; `pos`: the block's
    centre (N, 3); `command`: the commands in force, (N, nu) in [-1, 1] (needed with an action_penalty)."""
    if cfg.rotation_reward == "inverse":
        reward = 1.0 / (dist + cfg.rotation_eps)
    elif cfg.rotation_reward == "distance":
        reward = -cfg.progress_reward * dist
    elif cfg.rotation_reward == "closeness":
        reward = cfg.progress_reward * (1.0 - dist / math.pi)
    elif cfg.rotation_reward == "none":
        reward = np.zeros(len(dist))
    else:
        reward = cfg.progress_reward * (prev_dist - dist)
    if cfg.position_penalty:
        reward = reward - cfg.position_penalty * np.linalg.norm(pos - BLOCK_REST_POINT, axis=1)
    if cfg.action_penalty:
        if command is None:
            raise ValueError("an action_penalty needs the commands in force")
        reward = reward - cfg.action_penalty * (np.asarray(command) ** 2).mean(axis=1)
    reward = reward + cfg.success_reward * (dist < cfg.success_threshold)
    return reward - cfg.drop_penalty * dropped


def _angle_cdf(angle: np.ndarray | float) -> np.ndarray:
    """P(rotation angle <= angle) for a uniformly random rotation: (angle - sin angle) / pi."""
    return (np.asarray(angle) - np.sin(angle)) / math.pi


_CDF_GRID = np.linspace(0.0, math.pi, 2049)
_CDF_VALUES = _angle_cdf(_CDF_GRID)


def nearby_goal(block: np.ndarray, rng: np.random.Generator, max_angle: float, min_angle: float = 0.0) -> np.ndarray:
    """A goal between `min_angle` and `max_angle` from the orientation `block`: a uniform rotation conditioned
    on its angle lying in that interval (so `max_angle = pi` is exactly the uniform distribution, drawn as
    such). The curriculum passes the success threshold as `min_angle`: no goal is reached as it is drawn."""
    if max_angle >= math.pi:
        return random_quat(rng)
    axis = rng.normal(size=3)
    low, high = _angle_cdf(min(min_angle, max_angle)), _angle_cdf(max_angle)
    angle = float(np.interp(low + rng.random() * (high - low), _CDF_VALUES, _CDF_GRID))
    return quat_normalize(quat_multiply(block, axis_angle_to_quat(axis, angle)))


def relative_rotation(block_rot: np.ndarray, goal_rot: np.ndarray, frame: str) -> np.ndarray:
    """The rotation from the block to its goal as a flattened matrix, from (N, 9) rotation matrices (the block's
    may be a noisy observation): goal @ block^T in the hand's frame, block^T @ goal in the block's own."""
    b, g = block_rot.reshape(-1, 3, 3), goal_rot.reshape(-1, 3, 3)
    rel = g @ b.transpose(0, 2, 1) if frame == "hand" else b.transpose(0, 2, 1) @ g
    return rel.reshape(len(b), 9)


def goal_observation(obs: dict[str, np.ndarray], goal: np.ndarray, cfg: EnvConfig) -> dict[str, np.ndarray]:
    """The goal-dependent keys (goal_rot, goal, relative_rot) of a state observation `obs` (its block_rot as
    observed) had the goal been the unit quaternions `goal` (N, 4): what hindsight relabelling gives a learner.
    Needs goal_repr matrix (a rotation vector is computed from the true block orientation, which the
    observation does not hold)."""
    if cfg.goal_repr != "matrix":
        raise ValueError("relabelling goals needs env.goal_repr matrix")
    goal_rot = quat_to_matrix(quat_normalize(goal)).reshape(len(goal), 9).astype(np.float32)
    out = {"goal_rot": goal_rot, "goal": goal_rot,
           "relative_rot": relative_rotation(obs["block_rot"], goal_rot, cfg.goal_frame).astype(np.float32)}
    return out
