"""What the planner wants: named, weighted cost terms, each a function of rolled-out states.

A rollout is summarized as `Trajectory` arrays over (samples, control steps): the block's position and
orientation after each control step, its linear velocity, the hand's joint positions, and the commands
applied. Every term maps a Trajectory (and the goal) to one number per sample; the planner's cost is the
weighted sum (`CostConfig`: the weights, a 0 turns a term off). Lengths in metres, angles in radians.

- orientation: the mean over the horizon of the angle from the block to its goal (the same for q and -q);
- orientation_final: that angle after the horizon's last step (where the plan ends up);
- position: the mean distance of the block's centre beyond `tube_radius` of its rest point on the palm
  (DROP's "safe tube": free inside, linear outside);
- drop: the fraction of the horizon the block spends below the drop height (a drop ends the episode);
- velocity: the mean linear speed of the block (m/s);
- effort: the mean squared change of the commands from one control step to the next (in [-1, 1] units,
  the first from the command in force): a smooth hand;
- posture: the mean squared deviation of the hand's joints from the nominal cupped pose (rad^2);
- proposal: the mean squared difference of the plan's first command from a policy's proposed command (DAgger's
  network: the planner prefers, among plans about as good, the one nearest to what the network would do, so
  that its labels at a state agree; PLATO, Kahn et al. 2017). Without a proposal (the planner alone) it is 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TERMS = ("orientation", "orientation_final", "position", "drop", "velocity", "effort", "posture", "proposal")


@dataclasses.dataclass
class CostConfig:
    """The weight of each term (see the module docstring) and the terms' own constants."""

    orientation: float = 1.0
    orientation_final: float = 2.0
    position: float = 30.0
    drop: float = 200.0
    velocity: float = 0.0
    effort: float = 0.0
    posture: float = 0.0
    proposal: float = 0.0
    tube_radius: float = 0.0  # metres around the block's rest point where the position term is 0

    def __post_init__(self):
        for name in TERMS + ("tube_radius",):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def weights(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in TERMS}


@dataclasses.dataclass
class Trajectory:
    """Rolled-out states after each control step, (N samples, H steps, ...)."""

    block_pos: np.ndarray  # (N, H, 3)
    block_quat: np.ndarray  # (N, H, 4), [w, x, y, z]
    block_linvel: np.ndarray  # (N, H, 3)
    joint_pos: np.ndarray  # (N, H, J); J may be 0 (gimbal)
    controls: np.ndarray  # (N, H, nu), commands in [-1, 1]
    previous: np.ndarray  # (nu,), the command in force before the plan


@dataclasses.dataclass
class Task:
    """What the costs compare a trajectory with."""

    goal: np.ndarray  # (4,) the goal orientation
    rest_point: np.ndarray  # (3,) where the block rests on the palm
    drop_height: float  # world z below which the block has dropped (-inf: it cannot)
    posture: np.ndarray  # (J,) the nominal joint positions
    proposal: np.ndarray | None = None  # (nu,) a policy's proposed command in [-1, 1], if any


def angle_to(quat: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The rotation angle between unit quaternions `quat` (..., 4) and `goal` (4,): the same for q and -q."""
    dot = np.abs(quat @ goal) / (np.linalg.norm(quat, axis=-1) * np.linalg.norm(goal))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def term_values(traj: Trajectory, task: Task, cfg: CostConfig) -> dict[str, np.ndarray]:
    """Each term's value per sample (N,), before its weight; terms of weight 0 are not computed."""
    out: dict[str, np.ndarray] = {}
    n = len(traj.block_quat)
    need = {name for name, w in cfg.weights().items() if w}
    if need & {"orientation", "orientation_final"}:
        angle = angle_to(traj.block_quat, task.goal)
        out["orientation"] = angle.mean(axis=1)
        out["orientation_final"] = angle[:, -1]
    if "position" in need:
        dist = np.linalg.norm(traj.block_pos - task.rest_point, axis=-1)
        out["position"] = np.maximum(dist - cfg.tube_radius, 0.0).mean(axis=1)
    if "drop" in need:
        out["drop"] = (traj.block_pos[..., 2] < task.drop_height).mean(axis=1)
    if "velocity" in need:
        out["velocity"] = np.linalg.norm(traj.block_linvel, axis=-1).mean(axis=1)
    if "effort" in need:
        u = np.concatenate([np.broadcast_to(traj.previous, (n, 1, traj.controls.shape[2])), traj.controls], axis=1)
        out["effort"] = (np.diff(u, axis=1) ** 2).mean(axis=(1, 2))
    if "posture" in need:
        out["posture"] = ((traj.joint_pos - task.posture) ** 2).mean(axis=(1, 2)) if traj.joint_pos.shape[2] \
            else np.zeros(n)
    if "proposal" in need:
        out["proposal"] = np.zeros(n) if task.proposal is None else \
            ((traj.controls[:, 0] - task.proposal) ** 2).mean(axis=1)
    return {name: value for name, value in out.items() if name in need}


def total_cost(traj: Trajectory, task: Task, cfg: CostConfig) -> np.ndarray:
    """The weighted sum of the terms, per sample (N,)."""
    weights = cfg.weights()
    cost = np.zeros(len(traj.block_quat))
    for name, value in term_values(traj, task, cfg).items():
        cost += weights[name] * value
    return cost
