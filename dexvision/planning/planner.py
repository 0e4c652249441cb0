"""The planner as a teacher: it reads each environment's simulator state and returns the environment's own
actions (absolute continuous commands in [-1, 1]), so it can stand wherever a teacher stands.

    planner = Planner(load_planner_config("configs/planner/hand.yaml"), env, seed=0)
    obs, _ = env.reset(seed=0)
    actions = planner.act(env)            # (num_envs, nu)
    obs, reward, terminated, truncated, info = env.step(actions)
    planner.episodes_ended(info["done_mask"])

Per environment and control step it samples knot sets around its plan, rolls them out from the simulator's
full state (on the episode's own model or the nominal one), scores them with the costs, refits the plan
(optimizer.CrossEntropy) and acts on the plan's first command; the next step starts from that plan shifted
by one control step. Given a `guide`, a policy's proposed commands, the plan also takes them in (the config's
`proposal`): that is how DAgger's `dagger.guide` makes the planner follow the network it labels for.
"""

from __future__ import annotations

import time

import mujoco
import numpy as np

from dexvision.envs.task import BlockReorientEnv
from dexvision.planning.config import PlannerConfig
from dexvision.planning.costs import Task, Trajectory, total_cost
from dexvision.planning.optimizer import CrossEntropy
from dexvision.planning.rollout import CpuRollout
from dexvision.planning.splines import basis, shift
from dexvision.sim.sampler import cupped_qpos
from dexvision.sim.scenes import BLOCK_REST_POINT, load_scene


class _Layout:
    """Where the planner finds the block and the hand in qpos and qvel, and the command range."""

    def __init__(self, env: BlockReorientEnv):
        scene = env.scene
        m = scene.model
        joint = m.body(scene.block_body).jntadr[0]
        self.free = m.jnt_type[joint] == mujoco.mjtJoint.mjJNT_FREE
        self.qadr, self.vadr = int(m.jnt_qposadr[joint]), int(m.jnt_dofadr[joint])
        self.body_pos = m.body(scene.block_body).pos.copy()
        self.hand_q = np.array([m.joint(j).qposadr[0] for j in scene.hand_joints], dtype=int)
        self.posture = cupped_qpos(scene)[self.hand_q] if len(self.hand_q) else np.zeros(0)
        self.ctrl_low = m.actuator_ctrlrange[:, 0].copy()
        self.ctrl_span = m.actuator_ctrlrange[:, 1] - self.ctrl_low

    def trajectory(self, qpos: np.ndarray, qvel: np.ndarray, controls: np.ndarray,
                   previous: np.ndarray) -> Trajectory:
        a, v = self.qadr, self.vadr
        if self.free:
            pos, quat, linvel = qpos[..., a:a + 3], qpos[..., a + 3:a + 7], qvel[..., v:v + 3]
        else:
            pos = np.broadcast_to(self.body_pos, qpos.shape[:-1] + (3,))
            quat, linvel = qpos[..., a:a + 4], np.zeros(qpos.shape[:-1] + (3,))
        return Trajectory(block_pos=pos, block_quat=quat, block_linvel=linvel, joint_pos=qpos[..., self.hand_q],
                          controls=controls, previous=previous)


def command_bins(commands: np.ndarray, bins: int) -> np.ndarray:
    """Absolute commands in [-1, 1] as the nearest of a discrete environment's `bins` bins per actuator."""
    return np.rint((np.clip(commands, -1.0, 1.0) + 1.0) / 2.0 * (bins - 1)).astype(np.int64)


def bin_commands(indices, bins: int):
    """The inverse of `command_bins`: bin indices (an array or a tensor) as the commands at their centres."""
    return indices / (bins - 1) * 2.0 - 1.0


class Planner:
    """Sampling-based MPC over the environments of `env` (in this process: it reads their simulations)."""

    def __init__(self, cfg: PlannerConfig, env: BlockReorientEnv, seed: int = 0, discrete_by_caller: bool = False):
        """`discrete_by_caller`: `env` may take discrete actions, and the caller plays `command_bins(act())`."""
        if not isinstance(env, BlockReorientEnv):
            raise TypeError("the planner reads the simulations: it needs the environments in this process")
        continuous = env.cfg.action_type == "continuous" or discrete_by_caller
        if env.cfg.action_mode != "absolute" or not continuous:
            raise ValueError("the planner commands absolute continuous targets: the environment must take them")
        self.cfg, self.env = cfg, env
        self.layout = _Layout(env)
        self.steps = cfg.steps(env.cfg.control_period)
        if cfg.knots > self.steps or cfg.replan_every > self.steps:  # the environment's control period sets steps
            raise ValueError(f"knots {cfg.knots} and replan_every {cfg.replan_every} must be at most the horizon's "
                             f"{self.steps} control steps of {env.cfg.control_period} s")
        self.basis = basis(self.steps, cfg.knots, cfg.interpolation)
        self.backend = CpuRollout(cfg.threads)
        self.nominal = load_scene(env.cfg.task, env.cfg.physics).model if cfg.model == "nominal" else None
        drop = env.cfg.drop_height if env.scene.task == "hand-block" else -np.inf
        self._drop_height = drop
        # a stream of its own: the environments draw from SeedSequence(seed) itself
        seeds = np.random.SeedSequence([seed, 0x504C414E]).spawn(env.num_envs)
        self.optimizers = [CrossEntropy(cfg.samples, cfg.elites, cfg.noise, cfg.noise_min, np.random.default_rng(s),
                                        fixed_noise=cfg.fixed_noise) for s in seeds]
        self._queued: list[list[np.ndarray]] = [[] for _ in range(env.num_envs)]
        self._fresh = np.ones(env.num_envs, bool)
        self.decisions = 0
        self.planning_time = 0.0
        self._guide: np.ndarray | None = None

    def episodes_ended(self, done: np.ndarray) -> None:
        """Forget the plans of the environments whose episodes ended (they start from their new state)."""
        for i in np.flatnonzero(done):
            self._fresh[i] = True
            self._queued[i] = []

    def act(self, env: BlockReorientEnv | None = None, guide: np.ndarray | None = None) -> np.ndarray:
        """The action of every environment for this control step, (num_envs, nu) absolute commands in [-1, 1] (with
        `discrete_by_caller`, the caller plays their `command_bins`).

        `guide` (num_envs, nu): a policy's proposed commands. With the config's `proposal: start` each plan starts
        from its proposal held over the horizon, not from its own last plan (the planner refines the proposal:
        its answers around one proposal average to an improvement of it, where the answers of plans with
        memories of their own do not); with `proposal: first` the proposal replaces the plan's first knot and
        the rest of the plan is kept; with `proposal: candidates` the plan is kept and half the samples try
        first commands around the proposal. The `proposal` cost, if weighted, pulls the first command to it."""
        env = env or self.env
        if guide is not None:
            guide = np.asarray(guide, dtype=np.float64)
            if guide.shape != (env.num_envs, self.layout.ctrl_low.shape[0]):
                raise ValueError(f"guide must be (num_envs, nu) = ({env.num_envs}, {self.layout.ctrl_low.shape[0]}), "
                                 f"got {guide.shape}")
            for i in range(env.num_envs):
                opt = self.optimizers[i]
                if self.cfg.proposal == "start" or self._fresh[i]:
                    opt.reset(np.tile(guide[i], (self.cfg.knots, 1)))
                elif self.cfg.proposal == "first":  # the plan's first knot, its memory kept
                    opt.mean[0] = np.clip(guide[i], -1.0, 1.0)
                self._fresh[i], self._queued[i] = False, []
        self._guide = guide
        return np.stack([self._act_one(i) for i in range(env.num_envs)]).astype(np.float32)

    def _current(self, i: int) -> np.ndarray:
        """The command in force in environment `i`, in [-1, 1]."""
        return 2.0 * (self.env.targets[i] - self.layout.ctrl_low) / self.layout.ctrl_span - 1.0

    def _act_one(self, i: int) -> np.ndarray:
        if self._fresh[i] or (not self.cfg.warm_start and not self._queued[i]):
            self.optimizers[i].reset(np.tile(self._current(i), (self.cfg.knots, 1)))
            self._fresh[i] = False
        if not self._queued[i]:
            start = time.perf_counter()
            plan = self.plan(i)
            self._queued[i] = list(plan[:self.cfg.replan_every])
            opt = self.optimizers[i]
            opt.mean = shift(opt.mean, self.basis, self.cfg.replan_every)
            self.decisions += 1
            self.planning_time += time.perf_counter() - start
        return self._queued[i].pop(0)

    def plan(self, i: int) -> np.ndarray:
        """Refine environment `i`'s plan from its present state; its controls over the horizon (H, nu)."""
        env, opt = self.env, self.optimizers[i]
        model = self.nominal if self.nominal is not None else env.models[i]
        task = Task(goal=env.goal[i].copy(), rest_point=BLOCK_REST_POINT, drop_height=self._drop_height,
                    posture=self.layout.posture, proposal=None if self._guide is None else self._guide[i])
        previous = self._current(i)
        for _ in range(self.cfg.iterations):
            knots = opt.sample()
            if task.proposal is not None and self.cfg.proposal == "candidates":  # half around the proposal
                half = slice(1, 1 + len(knots) // 2)
                knots[half, 0] = np.clip(knots[half, 0] - opt.mean[0] + task.proposal, -1.0, 1.0)
            controls = np.einsum("hk,nku->nhu", self.basis, knots)
            commands = self.layout.ctrl_low + self.layout.ctrl_span * (controls + 1.0) / 2.0
            qpos, qvel = self.backend.run(model, env.datas[i], commands, env.substeps)
            cost = total_cost(self.layout.trajectory(qpos, qvel, controls, previous), task, self.cfg.costs)
            best = opt.update(knots, cost)
        return controls[best] if self.cfg.act == "best" else self.basis @ opt.mean

    def close(self) -> None:
        self.backend.close()
