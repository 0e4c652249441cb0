"""Vectorized block-reorientation environments for both scenes (Gymnasium vector API).

`BlockReorientEnv(EnvConfig(task=...), num_envs, obs="state"|"pixels")` steps many
MuJoCo simulations in one process. The goal is a target orientation of the block;
reaching it (within `success_threshold` radians) pays `success_reward` and draws a
new goal. An episode ends after `max_successes` successes, on a drop (hand-block),
or when a goal is not reached within `goal_timeout` steps. Reward per step: the
decrease of the rotation distance to the goal (or, `rotation_reward="inverse"`,
1 / (distance + eps)), plus the success bonus, minus the drop penalty and, optionally, a
penalty on the block's distance from its rest point. Actions: `discrete` (the default), `action_bins` bins per actuator, or
`continuous`, one number in [-1, 1] per actuator (clipped there); `absolute` (the
default) maps them onto the actuator's command range, `relative` moves the current
command by up to `relative_step` of the range per step (the middle bin, or 0, holds
it), so that a policy that still acts at random moves the fingers gradually instead of
throwing the block.

Physics is randomized per episode (each environment owns a copy of the model) and
Gaussian noise is added to the state observations. `EnvConfig.physics` picks the
scene's physics profile (`fast` for learning, `reference` for fidelity; see
dexvision.sim.scenes); the control period is the same under both, so a policy
trained on one can be run on the other. Goals are uniformly random rotations unless
a curriculum narrows them (`set_goal_max_angle`): then a goal is drawn within that
angle of the block's current orientation, and beyond the success threshold.

An environment's random stream depends only on the seed and its global index:
`first_env`/`total_envs` make this object one slice of a larger batch (the env
workers of dexvision.envs.workers), with the same trajectories as the whole. Observations are one flat dict:

- state keys (what the teacher and, always, the value function see): see `state_keys`
- `goal` (the goal's rotation matrix) and `proprio` (hand: joint positions and the
  previous action; gimbal: the previous action), seen by the pixel student;
- `images` (pixels only): (num_envs, cameras, 3, H, W) uint8, rendered through
  dexvision.render with appearance, lighting and cameras drawn per episode.

Episodes reset automatically within the step that ended them (Gymnasium's
same-step autoreset); `info["done_mask"]` and the `info["episode_*"]` arrays report
the episodes that ended, `info["final_obs"]` (on steps where one ended) what every
environment observed before its reset, and `info["achieved_quat"]` / `info["step_goal"]`
the block's orientation after the step and the goal it was played for: what an
off-policy learner needs to bootstrap a truncated episode and to relabel goals
(`rules.goal_observation`). `goals="single"` (training only) keeps one goal per episode.
"""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import mujoco
import numpy as np

from dexvision.config import check_choice
# (what this module exported before config.py and rules.py were cut out of it, exported still)
from dexvision.envs.config import (ACTION_MODES, ACTION_TYPES, GOAL_FRAMES, GOAL_KEYS, GOAL_MODES,  # noqa: F401
                                   GOAL_REPRS, NOISELESS_KEYS, OBS_MODES, STUDENT_KEYS, TIMEOUTS, VALUE_ONLY_KEYS,
                                   EnvConfig, evaluation_env, state_keys)
from dexvision.envs.rules import (ROTATION_REWARDS, goal_observation, nearby_goal, relative_rotation,  # noqa: F401
                                  step_reward)
from dexvision.errors import UserError
from dexvision.sim.physics import PhysicsRandomizer
from dexvision.sim.rotations import (quat_angle, quat_conjugate, quat_multiply, quat_normalize,
                                     quat_to_matrix, quat_to_rotvec)
from dexvision.sim.sampler import StateSampler
from dexvision.sim.scenes import BLOCK_HALF_SIZE, BLOCK_REST_POINT, load_scene

FINGERTIP_SITES = tuple(f"robot0:S_{f}tip" for f in ("ff", "mf", "rf", "lf", "th"))
VELOCITY_SCALE = 0.1  # observed velocities are multiplied by this to keep every input near [-1, 1]


def substeps_for(model: mujoco.MjModel, control_period: float) -> int:
    """Physics steps per control step; the period must be a whole number of the model's steps."""
    n = control_period / model.opt.timestep
    if abs(n - round(n)) > 1e-6 or round(n) < 1:
        raise UserError(f"control_period {control_period} s is not a whole number of the {model.opt.timestep} s "
                        "physics steps of this profile")
    return int(round(n))


class BlockReorientEnv(gym.vector.VectorEnv):
    """`num_envs` reorientation episodes stepped together; see the module docstring."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, cfg: EnvConfig, num_envs: int, obs: str = "state", render_workers: int = 0,
                 first_env: int = 0, total_envs: int | None = None):
        check_choice("obs", obs, OBS_MODES)
        if num_envs < 1:
            raise ValueError("num_envs must be >= 1")
        self.total_envs = total_envs or num_envs
        if not 0 <= first_env <= self.total_envs - num_envs:
            raise ValueError(f"environments {first_env}..{first_env + num_envs - 1} are not within {self.total_envs}")
        self.cfg, self.num_envs, self.obs_mode, self.first_env = cfg, num_envs, obs, first_env
        self.scene = load_scene(cfg.task, cfg.physics)
        # resets draw states settled under the same physics the episode then runs
        self.sampler = StateSampler(load_scene(cfg.task, cfg.physics), cfg.sampler)
        base = self.scene.model
        self.substeps = substeps_for(base, cfg.control_period)
        self.goal_max_angle = math.pi  # the full task; a curriculum narrows it
        self.models = [copy.deepcopy(base) for _ in range(num_envs)]
        self.datas = [mujoco.MjData(m) for m in self.models]
        self.physics = [PhysicsRandomizer(m, self.scene.block_body) for m in self.models]
        joint = base.body(self.scene.block_body).jntadr[0]
        self._free_block = base.jnt_type[joint] == mujoco.mjtJoint.mjJNT_FREE
        self._qadr, self._vadr = base.jnt_qposadr[joint], base.jnt_dofadr[joint]
        self._block_body_pos = base.body(self.scene.block_body).pos.copy()
        self._hand_q = np.array([base.joint(j).qposadr[0] for j in self.scene.hand_joints], dtype=int)
        self._hand_v = np.array([base.joint(j).dofadr[0] for j in self.scene.hand_joints], dtype=int)
        self._tips = [base.site(s).id for s in FINGERTIP_SITES] if cfg.task == "hand-block" else []
        self._ctrl_low = base.actuator_ctrlrange[:, 0].copy()
        self._ctrl_span = base.actuator_ctrlrange[:, 1] - self._ctrl_low
        self.nu = base.nu
        self._renderer = None
        if obs == "pixels":
            from dexvision.envs.rendering import RenderPool  # noqa: PLC0415 - GL only when needed

            self._renderer = RenderPool(cfg.task, cfg.render, render_workers)
        self._define_spaces()
        self._seed_rngs(0)
        self._allocate()

    def _seed_rngs(self, seed: int) -> None:
        """One generator per environment, by its global index: a slice draws what the whole batch would."""
        seqs = np.random.SeedSequence(seed).spawn(self.total_envs)[self.first_env:self.first_env + self.num_envs]
        self._rngs = [np.random.default_rng(s) for s in seqs]

    def set_goal_max_angle(self, angle: float) -> None:
        """Draw later goals within `angle` radians of the block's orientation (pi: the full task)."""
        if not 0 < angle:
            raise ValueError(f"goal max angle must be > 0, got {angle}")
        self.goal_max_angle = min(float(angle), math.pi)

    def turn_goals(self, rotations: np.ndarray) -> dict[str, np.ndarray]:
        """Make each environment's goal its block's present orientation turned by `rotations` (num_envs unit
        quaternions [w, x, y, z], in the hand's (world) frame), with a fresh goal clock; returns the observations
        that now hold. A diagnostic: how a policy does on chosen rotations (benchmarks/hand_axes.py)."""
        rotations = np.asarray(rotations, dtype=np.float64)
        if rotations.shape != (self.num_envs, 4):
            raise ValueError(f"rotations must have shape {(self.num_envs, 4)}, got {rotations.shape}")
        _, quat = self._poses()
        self.goal = quat_normalize(quat_multiply(quat_normalize(rotations), quat))
        self.prev_dist = quat_angle(quat, self.goal)
        self.goal_steps[:] = 0
        return self._observe(np.zeros(self.num_envs, bool))

    # -- spaces and buffers -------------------------------------------------------------
    def obs_dims(self) -> dict[str, int]:
        """Size of each vector observation (images excluded)."""
        nj = len(self._hand_q)
        dims = {"block_rot": 9, "block_angvel": 3, "goal_rot": 9, "relative_rotvec": 3, "relative_rot": 9,
                "prev_action": self.nu, "goal_clock": 1,
                "joint_pos": nj, "joint_vel": nj, "block_pos": 3, "block_linvel": 3, "goal": 9,
                "proprio": self.nu + nj, "fingertip_pos": 3 * len(self._tips)}
        keys = state_keys(self.cfg.task, self.cfg.fingertips, self.cfg.goal_repr)
        return {k: v for k, v in dims.items()
                if k in keys or k in STUDENT_KEYS or (k == "goal_clock" and self.cfg.goal_clock)}

    def _define_spaces(self) -> None:
        single = {k: gym.spaces.Box(-np.inf, np.inf, (d,), np.float32) for k, d in self.obs_dims().items()}
        if self.obs_mode == "pixels":
            size, cams = self.cfg.render.image_size, self.cfg.render.randomization.cameras.count
            single["images"] = gym.spaces.Box(0, 255, (cams, 3, size, size), np.uint8)
        self.single_observation_space = gym.spaces.Dict(single)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        if self.cfg.action_type == "continuous":
            self.single_action_space = gym.spaces.Box(-1.0, 1.0, (self.nu,), np.float32)
        else:
            self.single_action_space = gym.spaces.MultiDiscrete([self.cfg.action_bins] * self.nu)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    def _allocate(self) -> None:
        n = self.num_envs
        self.goal = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
        self.prev_action = np.zeros((n, self.nu))  # the commands in force, scaled to [-1, 1]
        self.targets = np.zeros((n, self.nu))  # the commands in force
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

    def _poses(self, qpos: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Block positions and orientations of every environment, from `qpos` rows (or the simulations)."""
        q = np.stack([d.qpos for d in self.datas]) if qpos is None else qpos
        a = self._qadr
        if self._free_block:
            return q[:, a:a + 3].copy(), quat_normalize(q[:, a + 3:a + 7])
        return np.tile(self._block_body_pos, (len(q), 1)), quat_normalize(q[:, a:a + 4])

    def _new_goal(self, i: int) -> np.ndarray:
        return nearby_goal(self.block_pose(i)[1], self._rngs[i], self.goal_max_angle, self.cfg.success_threshold)

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
        d.ctrl[:] = state.ctrl  # hand: the servo targets that hold the sampled finger pose
        mujoco.mj_forward(self.models[i], d)
        self.goal[i] = self._new_goal(i)
        self.targets[i] = state.ctrl
        self.prev_action[i] = 2.0 * (state.ctrl - self._ctrl_low) / self._ctrl_span - 1.0
        self.successes[i] = self.goal_steps[i] = self.episode_length[i] = 0
        self.episode_return[i] = 0.0
        self.prev_dist[i] = quat_angle(self.block_pose(i)[1], self.goal[i])
        if self._renderer is not None:
            from dexvision.render.randomization import sample_params  # noqa: PLC0415

            self.render_params[i] = sample_params(self.cfg.render.randomization, self.scene.look_at, rng)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Reset every environment; `seed` makes the whole batch (and what follows) reproducible."""
        if seed is not None:
            self._seed_rngs(seed)
        for i in range(self.num_envs):
            self._reset_env(i)
        return self._observe(np.ones(self.num_envs, bool)), {}

    def step(self, actions: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions, dtype=np.float64)  # as env workers pass them: the same arithmetic
        if actions.shape != (self.num_envs, self.nu):
            raise ValueError(f"actions must have shape {(self.num_envs, self.nu)}, got {actions.shape}")
        if self.cfg.action_type == "continuous":
            unit = (np.clip(actions, -1.0, 1.0) + 1.0) / 2.0  # [0, 1]
        else:
            unit = actions / (self.cfg.action_bins - 1)
        if self.cfg.action_mode == "absolute":
            new = self._ctrl_low + self._ctrl_span * unit
            a = self.cfg.action_average
            self.targets = new if a >= 1 else a * new + (1.0 - a) * self.targets
        else:
            moved = self.targets + (2.0 * unit - 1.0) * self.cfg.relative_step * self._ctrl_span
            self.targets = np.clip(moved, self._ctrl_low, self._ctrl_low + self._ctrl_span)
        for i in range(self.num_envs):
            d = self.datas[i]
            d.ctrl[:] = self.targets[i]
            mujoco.mj_step(self.models[i], d, nstep=self.substeps)
        self.prev_action = 2.0 * (self.targets - self._ctrl_low) / self._ctrl_span - 1.0
        pos, quat = self._poses()
        dist = self._distance(quat)
        success = dist < self.cfg.success_threshold
        dropped = pos[:, 2] < self.cfg.drop_height if self.scene.task == "hand-block" else np.zeros_like(success)
        reward = step_reward(self.cfg, self.prev_dist, dist, pos, dropped, self.prev_action)
        step_goal = self.goal.copy()  # the goal this step was played for (before a success replaces it)
        if self.cfg.goals == "single":  # one goal per episode: it stays, and the clock runs on
            self.successes = success.astype(int)
            self.goal_steps = self.goal_steps + 1
        else:
            self.successes += success
            self.goal_steps = np.where(success, 0, self.goal_steps + 1)
            renew = success
            if self.cfg.timeout == "resample":  # a goal out of time is replaced, the episode goes on
                renew = success | (self.goal_steps >= self.cfg.goal_timeout)
                self.goal_steps[renew] = 0
            for i in np.flatnonzero(renew):
                self.goal[i] = self._new_goal(i)
        self.prev_dist = self._distance(quat)
        self.episode_return += reward
        self.episode_length += 1
        terminated = dropped
        finished = self.successes >= self.cfg.max_successes if self.cfg.goals == "sequence" else False
        if self.cfg.max_episode_steps:
            finished = finished | (self.episode_length >= self.cfg.max_episode_steps)
        truncated = ~dropped & (finished | (self.goal_steps >= self.cfg.goal_timeout))
        done = terminated | truncated
        info = {"done_mask": done, "episode_successes": self.successes.copy(),
                "episode_return": self.episode_return.copy(), "episode_length": self.episode_length.copy(),
                "dropped": dropped, "achieved_quat": quat, "step_goal": step_goal}
        if done.any():
            # what each environment observed at the end of its step, before an autoreset replaced it (noiseless,
            # no images): truncated episodes bootstrap from it, as Gymnasium's final_obs
            info["final_obs"] = self._observe(np.zeros(self.num_envs, bool), noise=False, images=False)
        for i in np.flatnonzero(done):
            self._reset_env(i)
        return self._observe(done), reward.astype(np.float32), terminated, truncated, info

    # -- observations -------------------------------------------------------------------
    def _noisy(self, obs: dict[str, np.ndarray], noise: bool = True) -> dict[str, np.ndarray]:
        """The observations as float32, with Gaussian noise on the measured ones (one draw per environment);
        relative_rot follows from the observed block_rot and the goal."""
        dims = [k for k in self.obs_dims() if k != "relative_rot"]
        keys = [k for k in dims if k not in NOISELESS_KEYS]
        out = {k: obs[k].astype(np.float32) for k in dims if k in NOISELESS_KEYS}
        flat = np.concatenate([obs[k] for k in keys], axis=1)
        if self.cfg.obs_noise and noise:
            flat = flat + np.stack([r.normal(0.0, self.cfg.obs_noise, flat.shape[1]) for r in self._rngs])
        ends = np.cumsum([obs[k].shape[1] for k in keys])
        out.update(zip(keys, np.split(flat.astype(np.float32), ends[:-1], axis=1)))
        if "relative_rot" in self.obs_dims():
            out["relative_rot"] = relative_rotation(out["block_rot"], obs["goal_rot"], self.cfg.goal_frame
                                                    ).astype(np.float32)
        return out

    def _observe(self, new_episode: np.ndarray, noise: bool = True, images: bool = True) -> dict[str, np.ndarray]:
        n = self.num_envs
        qpos = np.stack([d.qpos for d in self.datas])
        qvel = np.stack([d.qvel for d in self.datas])
        pos, quat = self._poses(qpos)
        block_rot = quat_to_matrix(quat)
        goal_rot = quat_to_matrix(self.goal)
        # The rotation from the block to its goal, in the block's own frame or the hand's (EnvConfig.goal_frame).
        if self.cfg.goal_frame == "hand":
            relative = quat_to_rotvec(quat_multiply(self.goal, quat_conjugate(quat)))
        else:
            relative = quat_to_rotvec(quat_multiply(quat_conjugate(quat), self.goal))
        v = self._vadr
        angvel = qvel[:, v + 3:v + 6] if self._free_block else qvel[:, v:v + 3]
        obs = {
            "block_rot": block_rot.reshape(n, 9), "block_angvel": VELOCITY_SCALE * angvel,
            "goal_rot": goal_rot.reshape(n, 9), "relative_rotvec": relative, "prev_action": self.prev_action,
            "goal": goal_rot.reshape(n, 9), "goal_clock": (self.goal_steps / self.cfg.goal_timeout)[:, None],
        }
        joint_pos = qpos[:, self._hand_q]
        if self.scene.task == "hand-block":
            obs.update(joint_pos=joint_pos, joint_vel=VELOCITY_SCALE * qvel[:, self._hand_v],
                       block_pos=(pos - BLOCK_REST_POINT) / (2 * BLOCK_HALF_SIZE), block_linvel=qvel[:, v:v + 3])
            if self.cfg.fingertips:
                tips = np.stack([d.site_xpos[self._tips] for d in self.datas]) - pos[:, None, :]  # from the block
                obs["fingertip_pos"] = tips.reshape(n, -1) / (2 * BLOCK_HALF_SIZE)
        obs["proprio"] = np.concatenate([self.prev_action, joint_pos], axis=1)
        out = self._noisy(obs, noise)
        if self._renderer is not None and images:
            out["images"] = self._renderer.render(qpos, self.render_params, new_episode)
        return out

    def close(self, **kwargs) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
