"""Vectorized block-reorientation environments for both scenes (Gymnasium vector API).

`BlockReorientEnv(EnvConfig(task=...), num_envs, obs="state"|"pixels")` steps many
MuJoCo simulations in one process. The goal is a target orientation of the block;
reaching it (within `success_threshold` radians) pays `success_reward` and draws a
new goal. An episode ends after `max_successes` successes, on a drop (hand-block),
or when a goal is not reached within `goal_timeout` steps. Reward per step: the
decrease of the rotation distance to the goal, plus the success bonus, minus the
drop penalty. Actions: each actuator's command range cut into `action_bins` bins.

Physics is randomized per episode (each environment owns a copy of the model) and
Gaussian noise is added to the state observations. Observations are one flat dict:

- state keys (what the teacher and, always, the value function see): see `state_keys`
- `goal` (the goal's rotation matrix) and `proprio` (hand: joint positions and the
  previous action; gimbal: the previous action), seen by the pixel student;
- `images` (pixels only): (num_envs, cameras, 3, H, W) uint8, rendered through
  dexvision.render with appearance, lighting and cameras drawn per episode.

Episodes reset automatically within the step that ended them (Gymnasium's
same-step autoreset); `info["done_mask"]` and the `info["episode_*"]` arrays report
the episodes that ended.
"""

from __future__ import annotations

import copy
import dataclasses

import gymnasium as gym
import mujoco
import numpy as np

from dexvision.render.renderer import RenderConfig
from dexvision.sim.physics import PhysicsRandomizer
from dexvision.sim.rotations import (quat_angle, quat_conjugate, quat_multiply, quat_normalize, quat_to_matrix,
                                     quat_to_rotvec, random_quat)
from dexvision.sim.sampler import SamplerConfig, StateSampler
from dexvision.sim.scenes import BLOCK_REST_POINT, TASKS, load_scene

OBS_MODES = ("state", "pixels")
VELOCITY_SCALE = 0.1  # observed velocities are multiplied by this to keep every input near [-1, 1]


@dataclasses.dataclass
class EnvConfig:
    """The block reorientation task. Angles in radians, lengths in metres."""

    task: str = "gimbal-block"
    substeps: int = 20  # physics steps (of the model's 2 ms) per control step: 25 Hz control
    action_bins: int = 11
    success_threshold: float = 0.4
    max_successes: int = 50
    goal_timeout: int = 50  # control steps allowed to reach each goal
    success_reward: float = 5.0
    drop_penalty: float = 20.0
    drop_height: float = 0.1  # a block centre below this height (world z) is a drop (hand-block)
    obs_noise: float = 0.01  # standard deviation of the noise added to state observations
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    render: RenderConfig = dataclasses.field(default_factory=lambda: RenderConfig(image_size=64))

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task '{self.task}' (valid: {', '.join(TASKS)})")
        if self.substeps < 1 or self.action_bins < 2 or self.max_successes < 1 or self.goal_timeout < 1:
            raise ValueError("substeps, max_successes and goal_timeout must be >= 1, action_bins >= 2")
        if not 0 < self.success_threshold < np.pi:
            raise ValueError("success_threshold must be in (0, pi)")
        if self.obs_noise < 0:
            raise ValueError("obs_noise must be >= 0")


def state_keys(task: str) -> tuple[str, ...]:
    """Observation keys of the state (teacher, value function) view of `task`."""
    block = ("block_rot", "block_angvel", "goal_rot", "relative_rotvec", "prev_action")
    if task == "hand-block":
        return ("joint_pos", "joint_vel", "block_pos", "block_linvel") + block
    return block


STUDENT_KEYS = ("proprio", "goal")  # plus the images, through the vision sub-model


class BlockReorientEnv(gym.vector.VectorEnv):
    """`num_envs` reorientation episodes stepped together; see the module docstring."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, cfg: EnvConfig, num_envs: int, obs: str = "state", render_workers: int = 0):
        if obs not in OBS_MODES:
            raise ValueError(f"obs must be one of {', '.join(OBS_MODES)}, got {obs!r}")
        if num_envs < 1:
            raise ValueError("num_envs must be >= 1")
        self.cfg, self.num_envs, self.obs_mode = cfg, num_envs, obs
        self.scene = load_scene(cfg.task)
        self.sampler = StateSampler(load_scene(cfg.task), cfg.sampler)
        base = self.scene.model
        self.models = [copy.deepcopy(base) for _ in range(num_envs)]
        self.datas = [mujoco.MjData(m) for m in self.models]
        self.physics = [PhysicsRandomizer(m, self.scene.block_body) for m in self.models]
        joint = base.body(self.scene.block_body).jntadr[0]
        self._free_block = base.jnt_type[joint] == mujoco.mjtJoint.mjJNT_FREE
        self._qadr, self._vadr = base.jnt_qposadr[joint], base.jnt_dofadr[joint]
        self._block_body_pos = base.body(self.scene.block_body).pos.copy()
        self._hand_q = np.array([base.joint(j).qposadr[0] for j in self.scene.hand_joints], dtype=int)
        self._hand_v = np.array([base.joint(j).dofadr[0] for j in self.scene.hand_joints], dtype=int)
        self._ctrl_low = base.actuator_ctrlrange[:, 0].copy()
        self._ctrl_span = base.actuator_ctrlrange[:, 1] - self._ctrl_low
        self.nu = base.nu
        self._renderer = None
        if obs == "pixels":
            from dexvision.policy.rendering import RenderPool  # noqa: PLC0415 - GL only when needed

            self._renderer = RenderPool(cfg.task, cfg.render, render_workers)
        self._define_spaces()
        self._rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(0).spawn(num_envs)]
        self._allocate()

    # -- spaces and buffers -------------------------------------------------------------
    def obs_dims(self) -> dict[str, int]:
        """Size of each vector observation (images excluded)."""
        nj = len(self._hand_q)
        dims = {"block_rot": 9, "block_angvel": 3, "goal_rot": 9, "relative_rotvec": 3, "prev_action": self.nu,
                "joint_pos": nj, "joint_vel": nj, "block_pos": 3, "block_linvel": 3, "goal": 9,
                "proprio": self.nu + nj}
        return {k: v for k, v in dims.items() if k in state_keys(self.cfg.task) or k in STUDENT_KEYS}

    def _define_spaces(self) -> None:
        single = {k: gym.spaces.Box(-np.inf, np.inf, (d,), np.float32) for k, d in self.obs_dims().items()}
        if self.obs_mode == "pixels":
            size, cams = self.cfg.render.image_size, self.cfg.render.randomization.cameras.count
            single["images"] = gym.spaces.Box(0, 255, (cams, 3, size, size), np.uint8)
        self.single_observation_space = gym.spaces.Dict(single)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = gym.spaces.MultiDiscrete([self.cfg.action_bins] * self.nu)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    def _allocate(self) -> None:
        n = self.num_envs
        self.goal = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
        self.prev_action = np.zeros((n, self.nu))
        self.prev_dist = np.zeros(n)
        self.successes = np.zeros(n, dtype=int)
        self.goal_steps = np.zeros(n, dtype=int)
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, dtype=int)
        self.render_params: list[dict | None] = [None] * n

    # -- state access -------------------------------------------------------------------
    def block_pose(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.datas[i].qpos
        if self._free_block:
            return q[self._qadr:self._qadr + 3].copy(), q[self._qadr + 3:self._qadr + 7].copy()
        return self._block_body_pos.copy(), q[self._qadr:self._qadr + 4].copy()

    def _poses(self) -> tuple[np.ndarray, np.ndarray]:
        poses = [self.block_pose(i) for i in range(self.num_envs)]
        return np.array([p for p, _ in poses]), quat_normalize(np.array([q for _, q in poses]))

    def _distance(self, quat: np.ndarray) -> np.ndarray:
        return quat_angle(quat, self.goal)

    # -- episodes -----------------------------------------------------------------------
    def _reset_env(self, i: int) -> None:
        rng = self._rngs[i]
        state = self.sampler.sample(rng)
        self.physics[i].apply(state.physics)
        d = self.datas[i]
        mujoco.mj_resetData(self.models[i], d)
        d.qpos[:], d.qvel[:] = state.qpos, state.qvel
        if self.scene.task == "hand-block":
            # hold the sampled finger pose: the sampler's servo targets for the state it returned
            d.ctrl[:] = np.clip(self.sampler.data.ctrl, *self.models[i].actuator_ctrlrange.T)
        mujoco.mj_forward(self.models[i], d)
        self.goal[i] = random_quat(rng)
        self.prev_action[i] = 0.0
        self.successes[i] = self.goal_steps[i] = self.episode_length[i] = 0
        self.episode_return[i] = 0.0
        self.prev_dist[i] = quat_angle(self.block_pose(i)[1], self.goal[i])
        if self._renderer is not None:
            from dexvision.render.randomization import sample_params  # noqa: PLC0415

            self.render_params[i] = sample_params(self.cfg.render.randomization, self.scene.look_at, rng)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Reset every environment; `seed` makes the whole batch (and what follows) reproducible."""
        if seed is not None:
            self._rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(self.num_envs)]
        for i in range(self.num_envs):
            self._reset_env(i)
        return self._observe(np.ones(self.num_envs, bool)), {}

    def step(self, actions: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self.nu):
            raise ValueError(f"actions must have shape {(self.num_envs, self.nu)}, got {actions.shape}")
        ctrl = self._ctrl_low + self._ctrl_span * (actions / (self.cfg.action_bins - 1))
        for i in range(self.num_envs):
            d = self.datas[i]
            d.ctrl[:] = ctrl[i]
            mujoco.mj_step(self.models[i], d, nstep=self.cfg.substeps)
        self.prev_action = 2.0 * actions / (self.cfg.action_bins - 1) - 1.0
        pos, quat = self._poses()
        dist = self._distance(quat)
        reward = self.prev_dist - dist
        success = dist < self.cfg.success_threshold
        reward += self.cfg.success_reward * success
        dropped = pos[:, 2] < self.cfg.drop_height if self.scene.task == "hand-block" else np.zeros_like(success)
        reward -= self.cfg.drop_penalty * dropped
        self.successes += success
        self.goal_steps = np.where(success, 0, self.goal_steps + 1)
        for i in np.flatnonzero(success):
            self.goal[i] = random_quat(self._rngs[i])
        self.prev_dist = self._distance(quat)
        self.episode_return += reward
        self.episode_length += 1
        terminated = dropped
        truncated = ~dropped & ((self.successes >= self.cfg.max_successes) | (self.goal_steps >= self.cfg.goal_timeout))
        done = terminated | truncated
        info = {"done_mask": done, "episode_successes": self.successes.copy(),
                "episode_return": self.episode_return.copy(), "episode_length": self.episode_length.copy(),
                "dropped": dropped}
        for i in np.flatnonzero(done):
            self._reset_env(i)
        return self._observe(done), reward.astype(np.float32), terminated, truncated, info

    # -- observations -------------------------------------------------------------------
    def _noisy(self, x: np.ndarray) -> np.ndarray:
        if self.cfg.obs_noise == 0:
            return x.astype(np.float32)
        noise = np.stack([r.normal(0.0, self.cfg.obs_noise, x.shape[1:]) for r in self._rngs])
        return (x + noise).astype(np.float32)

    def _observe(self, new_episode: np.ndarray) -> dict[str, np.ndarray]:
        n = self.num_envs
        pos, quat = self._poses()
        block_rot = quat_to_matrix(quat)
        goal_rot = quat_to_matrix(self.goal)
        # The goal seen from the block's own frame: the gimbal's motors act in that frame.
        relative = quat_to_rotvec(quat_multiply(quat_conjugate(quat), self.goal))
        qvel = np.array([d.qvel for d in self.datas])
        qpos = np.array([d.qpos for d in self.datas])
        v = self._vadr
        angvel = qvel[:, v + 3:v + 6] if self._free_block else qvel[:, v:v + 3]
        obs = {
            "block_rot": block_rot.reshape(n, 9), "block_angvel": VELOCITY_SCALE * angvel,
            "goal_rot": goal_rot.reshape(n, 9), "relative_rotvec": relative, "prev_action": self.prev_action,
            "goal": goal_rot.reshape(n, 9),
        }
        joint_pos = qpos[:, self._hand_q]
        if self.scene.task == "hand-block":
            obs.update(joint_pos=joint_pos, joint_vel=VELOCITY_SCALE * qvel[:, self._hand_v],
                       block_pos=(pos - BLOCK_REST_POINT) / 0.05, block_linvel=qvel[:, v:v + 3])
        obs["proprio"] = np.concatenate([self.prev_action, joint_pos], axis=1)
        out = {k: (self._noisy(obs[k]) if k not in ("goal", "goal_rot") else obs[k].astype(np.float32))
               for k in self.obs_dims()}
        if self._renderer is not None:
            out["images"] = self._renderer.render(qpos, self.render_params, new_episode)
        return out

    def close(self, **kwargs) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
