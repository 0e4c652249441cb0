"""`train-policy --algo sac`: a state teacher by soft actor-critic with hindsight goal relabelling.

    train-policy --config configs/policy/hand-teacher-sac.yaml --out runs/hand-sac
    train-policy --out runs/hand-sac --resume          # continue a killed run (the buffer is refilled)

The environments (in env worker processes, as PPO's) collect with the actor's sampled
actions (uniformly random ones for the first `sac.warmup` transitions; `sac.action_noise` and
`sac.random_eps` add Plappert et al.'s exploration on top of SAC's entropy); the trainer keeps
the replay buffer (dexvision.policy.sac.HerBuffer) and after every vector step makes
`sac.updates_per_step` gradient steps of batch `sac.batch_size`. A transition's goal is
replaced, with probability k / (k + 1), by an orientation the block reached later in the
same episode, and its reward and goal-dependent inputs are recomputed for it: the training
environment's reward must be a function of (achieved orientation, goal, drop) (`env.rotation_reward`
none, inverse, distance or closeness; `dexvision.policy.sac.GoalReward` computes the same). Episodes that end by
the goal clock bootstrap from their final observation; only a drop is terminal.

Training may play one goal per episode (`env.goals: single`); the checkpoint's environment
is always Learning Dexterity's task (a new goal after each success, up to 50), which the
periodic and final greedy evaluations play and `evaluate-policy` plays by default.

The replay buffer is not kept in checkpoints (a million transitions are ~0.7 GB): a
resumed run collects `sac.warmup` transitions with its restored actor before it updates again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch

from dexvision.config import to_dict
from dexvision.errors import UserError
from dexvision.policy.checkpoint import load_policy_checkpoint, save_policy
from dexvision.policy.config import TrainPolicyConfig
from dexvision.envs.episodes import MAX_PARALLEL, obs_tensors, run_episodes, summarize_episodes
from dexvision.envs.rules import goal_observation
from dexvision.envs.task import GOAL_KEYS, BlockReorientEnv, evaluation_env, state_keys
from dexvision.policy.loop import EpisodeStats, log_closing, log_when_due
from dexvision.policy.model import ActorCritic, PolicyConfig, policy_config_for
from dexvision.policy.sac import RELABELLED_REWARDS, GoalReward, HerBuffer, SacLearner
from dexvision.envs.workers import make_env, resolve_env_workers
from dexvision.track.run import run_name
from dexvision.trainer import Scaffold, seeded
from dexvision.version import git_sha

log = logging.getLogger(__name__)


def check_sac_config(cfg: TrainPolicyConfig) -> None:
    """What soft actor-critic needs of the run; one line for each thing it cannot do."""
    if cfg.obs != "state":
        raise UserError("--algo sac learns a state teacher: it needs --obs state (a pixel student clones one "
                        "with --algo bc)")
    if cfg.env.action_type != "continuous":
        raise UserError("--algo sac needs continuous actions (--set env.action_type=continuous)")
    if cfg.env.goal_repr != "matrix":
        raise UserError("--algo sac relabels goals: it needs --set env.goal_repr=matrix (a rotation vector of "
                        "the relative rotation cannot be recomputed from an observation)")
    if cfg.core != "mlp":
        raise UserError("--algo sac needs core: mlp (a feed-forward actor; transitions are sampled one by one)")
    if cfg.teacher or cfg.init_vision:
        raise UserError("--algo sac trains a state teacher from scratch: --teacher and --init-vision do not apply")
    if cfg.env.rotation_reward not in RELABELLED_REWARDS or cfg.env.position_penalty or cfg.env.action_penalty:
        raise UserError("--algo sac relabels goals: the reward must be a function of (achieved orientation, goal, "
                        "drop): --set env.rotation_reward=none (or inverse, distance, closeness), env.position_penalty=0 "
                        "and env.action_penalty=0")
    if cfg.curriculum.enabled:
        raise UserError("--algo sac plays uniform goals and relabels them: set curriculum.enabled=false")


def uniform_actions(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniformly random actions in [-1, 1]: the warm-up's, and `sac.random_eps`'s replacements."""
    return rng.uniform(-1.0, 1.0, shape)


class SacTrainer:
    """One off-policy train-policy run; `run()` trains and returns the summary written to metrics.json."""

    def __init__(self, cfg: TrainPolicyConfig, resume: bool = False):
        check_sac_config(cfg)
        self.cfg, self.sac = cfg, cfg.sac
        out = Path(cfg.out) if cfg.out else Path("runs") / run_name(f"policy-{cfg.task}-state-sac")
        self.scaffold = Scaffold(out, resume)
        if self.scaffold.world > 1:
            raise UserError("--algo sac runs in one process (its environments in env workers): not under torchrun")
        self.device = self.scaffold.device
        self.env_cfg = dataclasses.replace(cfg.env, task=cfg.task)
        self.eval_env_cfg = evaluation_env(self.env_cfg, task_reward=True)
        self.env_workers = resolve_env_workers(cfg.env_workers, "state", cfg.num_envs, cfg.task)
        probe = BlockReorientEnv(self.env_cfg, 1, obs="state")
        try:
            keys = state_keys(cfg.task, self.env_cfg.fingertips, self.env_cfg.goal_repr)
            self.policy_cfg = policy_config_for(probe, "state", keys, embed_dim=cfg.embed_dim, core="mlp",
                                                mlp_hidden=list(cfg.mlp_hidden), normalize_obs=cfg.normalize_obs,
                                                action_dist="tanh_gaussian")
            dims = probe.obs_dims()
        finally:
            probe.close()
        # what the buffer stores: the inputs that do not depend on the goal (the rest is recomputed per goal)
        self.stored = {k: dims[k] for k in self.policy_cfg.policy_inputs if k not in GOAL_KEYS}
        with seeded(cfg.seed):
            self.model = ActorCritic(self.policy_cfg).to(self.device)
            self.learner = SacLearner(self.model, self.sac, cfg.lr, cfg.gamma, self.device)
        self.buffer = HerBuffer(self.sac.buffer_size, cfg.num_envs, self.stored, self.policy_cfg.num_actions, 4,
                                self.sac.her_k, seed=cfg.seed)
        self.reward = GoalReward.of_env(self.env_cfg)
        self.frames = self.iteration = self.optimizer_steps = 0
        self.seconds = {"iterations": 0.0, "env": 0.0, "update": 0.0}
        self._restore(self.scaffold.restore(load_policy_checkpoint))
        # the first updates wait for this many transitions in the buffer (random ones on a fresh run)
        self.learning_starts = self.sac.warmup
        self.random_until = 0 if resume else self.sac.warmup
        self.rng = np.random.default_rng(cfg.seed + 1)
        self.generator = torch.Generator().manual_seed(cfg.seed + 2)
        torch.manual_seed(cfg.seed + 3)  # the learner's reparameterized draws
        self.env = make_env(self.env_cfg, cfg.num_envs, "state", self.env_workers)
        try:
            self.tracker = self.scaffold.open_tracker(to_dict(cfg), cfg.wandb, self.frames)
            self.stats = EpisodeStats(window=max(20, cfg.num_envs))
            obs, _ = self.env.reset(seed=cfg.seed + 7919 * self.iteration)
            self.obs = obs
        except BaseException:
            self.env.close()
            raise

    def _restore(self, ckpt: dict | None) -> None:
        if ckpt is None:
            return
        if dataclasses.asdict(PolicyConfig(**ckpt["policy_config"])) != dataclasses.asdict(self.policy_cfg):
            raise UserError(f"--resume: {self.scaffold.ckpt_path} holds a different model or observation setup")
        if "sac" not in ckpt:
            raise UserError(f"--resume: {self.scaffold.ckpt_path} is not an --algo sac run")
        self.model.load_state_dict(ckpt["model"])
        self.learner.load_state_dict(ckpt["sac"])
        self.frames, self.iteration = ckpt["frames"], ckpt["iteration"]
        self.optimizer_steps = ckpt["optimizer_steps"]

    def checkpoint(self, metrics: dict | None = None) -> None:
        self.scaffold.checkpoint(lambda path: save_policy(path, {
            "task": self.cfg.task, "obs": "state", "algo": "sac", "policy_config": dataclasses.asdict(self.policy_cfg),
            "env_config": to_dict(self.eval_env_cfg), "train_env_config": to_dict(self.env_cfg),
            "physics": self.env_cfg.physics, "model": self.model.state_dict(), "sac": self.learner.state_dict(),
            "frames": self.frames, "iteration": self.iteration, "optimizer_steps": self.optimizer_steps,
            "wall_time_s": self.scaffold.wall_time, "config": to_dict(self.cfg), "git_sha": git_sha(),
            "run_name": self.tracker.name if self.tracker else "", "metrics": metrics or {},
        }))

    def evaluate(self) -> dict:
        """Greedy episodes of Learning Dexterity's task on fresh environments."""
        n = min(self.cfg.eval_episodes, MAX_PARALLEL)
        env = make_env(self.eval_env_cfg, n, "state", min(self.env_workers, n))
        try:
            self.model.eval()
            return summarize_episodes(run_episodes(self.model, env, self.cfg.eval_episodes, device=self.device))
        finally:
            self.model.train()
            env.close()

    @torch.no_grad()
    def _act(self) -> np.ndarray:
        if self.buffer.steps * self.cfg.num_envs < self.random_until:
            return uniform_actions(self.rng, (self.cfg.num_envs, self.policy_cfg.num_actions))
        obs = obs_tensors(self.obs, self.device)
        zeros = torch.zeros(self.cfg.num_envs, device=self.device)
        action, *_ = self.model.get_action_and_value(obs, self.model.initial_state(1, self.device), zeros,
                                                     generator=self.generator)
        return self.explore(action.cpu().numpy())

    def explore(self, actions: np.ndarray) -> np.ndarray:
        """The actor's actions with `sac.action_noise` Gaussian noise (clipped to [-1, 1]), each replaced by a
        uniformly random one with probability `sac.random_eps`."""
        sac = self.sac
        if sac.action_noise > 0:
            actions = np.clip(actions + sac.action_noise * self.rng.standard_normal(actions.shape), -1.0, 1.0)
        if sac.random_eps > 0:
            random = self.rng.random(len(actions)) < sac.random_eps
            actions = np.where(random[:, None], uniform_actions(self.rng, actions.shape), actions)
        return actions

    def step(self, metrics: dict) -> None:
        """One vector step of the environments, stored, then the updates it pays for."""
        cfg = self.cfg
        self.model.observe(obs_tensors({k: self.obs[k] for k in self.policy_cfg.policy_inputs}, self.device))
        actions = self._act()
        tick = time.perf_counter()
        obs, _, terminated, _, info = self.env.step(actions)
        self.seconds["env"] += time.perf_counter() - tick
        done = info["done_mask"]
        next_obs = {k: obs[k] for k in self.stored}
        if done.any():  # the observation each finished episode ended on, not its successor's first
            for k in self.stored:
                next_obs[k] = np.where(done[:, None], info["final_obs"][k], obs[k])
        self.buffer.add({k: self.obs[k] for k in self.stored}, actions, next_obs, info["achieved_quat"],
                        info["step_goal"], terminated, done)
        self.stats.add(info)
        self.obs = obs
        self.frames += cfg.num_envs
        self._credit += self.sac.updates_per_step
        if len(self.buffer) < self.learning_starts:
            self._credit = 0.0  # updates start with the first full warm-up, not with a backlog
            return
        tick = time.perf_counter()
        while self._credit >= 1.0:
            batch = self.buffer.sample(self.sac.batch_size, self.reward, self._goal_obs)
            metrics.update(self.learner.update(batch))
            metrics["losses/relabelled_fraction"] = float(batch["relabelled"].mean())
            self.optimizer_steps += 1
            self._credit -= 1.0
        self.seconds["update"] += time.perf_counter() - tick

    def _goal_obs(self, obs: dict[str, np.ndarray], goals: np.ndarray) -> dict[str, np.ndarray]:
        out = goal_observation(obs, goals, self.env_cfg)
        return {k: v for k, v in out.items() if k in self.policy_cfg.policy_inputs}

    def _loop(self) -> tuple[dict, bool]:
        from tqdm import tqdm  # noqa: PLC0415

        cfg = self.cfg
        self._credit = 0.0
        last = {"log": time.perf_counter(), "eval": time.perf_counter()}
        bar = tqdm(total=cfg.steps, initial=self.frames, desc="train-policy sac", unit="frame", unit_scale=True)
        metrics: dict = {}
        try:
            while self.frames < cfg.steps:
                if self.scaffold.time_up(cfg.time_limit_min):
                    return metrics, True
                t0, before, updates = time.perf_counter(), self.frames, self.optimizer_steps
                env_before, update_before = self.seconds["env"], self.seconds["update"]
                losses: dict = {}
                for _ in range(cfg.rollout):
                    self.step(losses)
                dt = time.perf_counter() - t0
                self.seconds["iterations"] += dt
                self.iteration += 1
                bar.update(self.frames - before)
                metrics = {f"losses/{k}" if "/" not in k else k: v for k, v in losses.items()}
                metrics.update({
                    "charts/frames": self.frames, "charts/iterations": self.iteration,
                    "charts/optimizer_steps": self.optimizer_steps, "charts/buffer": len(self.buffer),
                    "perf/frames_per_s": (self.frames - before) / dt,
                    "perf/updates_per_s": (self.optimizer_steps - updates) / dt,
                    "perf/env_fraction": (self.seconds["env"] - env_before) / dt,
                    "perf/update_fraction": (self.seconds["update"] - update_before) / dt,
                    **self.stats.metrics()})
                log_when_due(self, metrics, last)
                bar.set_postfix(successes=f"{metrics.get('charts/successes_per_episode', 0):.2f}",
                                drops=f"{metrics.get('charts/drop_rate', 0):.2f}")
                if self.iteration % cfg.checkpoint_every == 0:
                    self.checkpoint()
        finally:
            bar.close()
        return metrics, False

    def run(self) -> dict:
        cfg = self.cfg
        try:
            metrics, stopped_early = self._loop()
        finally:
            self.env.close()
        final = self.evaluate()
        wall = self.scaffold.wall_time
        self.checkpoint(final)
        total = self.seconds["iterations"]
        shares = {"collect": 1.0 - self.seconds["update"] / total, "env": self.seconds["env"] / total,
                  "update": self.seconds["update"] / total} if total > 0 else {}
        result = {
            "run_name": self.tracker.name, "task": cfg.task, "obs": "state", "algo": "sac", "frames": self.frames,
            "iterations": self.iteration, "optimizer_steps": self.optimizer_steps, "wall_time_s": wall,
            "stopped_by_time_limit": stopped_early, "frames_per_s": self.frames / wall if wall > 0 else 0.0,
            "evaluation": final, "train_episodes": self.stats.total, "world_size": 1, "git_sha": git_sha(),
            "physics": self.env_cfg.physics, "env_workers": self.env_workers,
            "checkpoint": str(self.scaffold.ckpt_path), "time_shares": shares, "last_metrics": metrics,
        }
        log_closing(self, final, wall)
        self.scaffold.finish(result, self.tracker)
        return result
