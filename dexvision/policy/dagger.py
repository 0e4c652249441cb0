"""`train-policy --algo dagger --planner CONFIG`: a state policy distilled from the sampling-based planner.

    train-policy --config configs/policy/hand-teacher.yaml --out runs/hand-teacher
    train-policy --out runs/hand-teacher --resume          # continue: the aggregate is kept in the run

DAgger (Ross et al.): the environments play, and the planner (dexvision.planning) labels every state they
visit with the action it would take there. Early on the planner's own action is played with probability
`dagger.mix` (falling linearly to 0 over `dagger.mix_frames` frames: the states a good policy visits come
first), then the network's greedy action (its Gaussian's mean plus `dagger.action_noise`, or with discrete
actions its most likely bin), so the aggregate holds the states the network itself leads to, each with the
planner's label. With `dagger.guide` the planner takes the network's greedy action as a proposal (its config's
`proposal`: the start of a fresh plan, the first knot of its own, or candidates around it; its `proposal` cost
pulls towards it), so that the labels at a state agree with each other and with the network, and the played
action is then the planner's with probability `dagger.mix`; `dagger.window` trains on the newest labels only.
After every rollout the network is trained on the aggregate (`dagger.updates` minibatches of
`dagger.batch_size`). Continuous actions: the Gaussian negative log-likelihood of the labels (the greedy
action, the mean, learns the labels' average). Discrete actions (`env.action_type: discrete`, the planner's
commands as their nearest of `env.action_bins` bins): cross-entropy, so the greedy action is the labels' most frequent bin, not their average; predictive
sampling's labels are spread over the whole range, and their average plays much worse than the planner
(BENCHMARKS.md, "Why the planner's labels do not average").

The aggregate (observations and labels) is saved beside the checkpoint (RUN_DIR/aggregate.npz) each time the
checkpoint is, so `--resume` continues it. The planner reads the simulations: the environments run in this
process, and the planner's rollouts use its `threads`. The checkpoint is an ordinary state policy checkpoint
(an MLP Gaussian policy): `evaluate-policy --checkpoint` plays it and a student takes it as `--teacher`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from dexvision.config import to_dict
from dexvision.errors import UserError
from dexvision.envs.episodes import MAX_PARALLEL, obs_tensors, run_episodes, summarize_episodes
from dexvision.envs.task import BlockReorientEnv, evaluation_env, state_keys
from dexvision.envs.workers import make_env, resolve_env_workers
from dexvision.planning.config import load_planner_config
from dexvision.planning.planner import Planner, bin_commands, command_bins
from dexvision.policy.checkpoint import load_policy_checkpoint, save_policy
from dexvision.policy.config import TrainPolicyConfig
from dexvision.policy.loop import EpisodeStats, log_closing, log_when_due
from dexvision.policy.model import ActorCritic, PolicyConfig, policy_config_for
from dexvision.track.run import run_name
from dexvision.trainer import Scaffold, seeded
from dexvision.version import git_sha

log = logging.getLogger(__name__)
AGGREGATE = "aggregate.npz"


def check_dagger_config(cfg: TrainPolicyConfig) -> None:
    """What distillation from the planner needs of the run; one line for each thing it cannot do."""
    if cfg.obs != "state":
        raise UserError("--algo dagger distils the planner into a state teacher: it needs --obs state (a pixel "
                        "student clones the distilled teacher with --algo bc)")
    if cfg.core != "mlp":
        raise UserError("--algo dagger needs core: mlp (labels are states one by one, not sequences)")
    if cfg.env.action_mode != "absolute" or cfg.env.action_average != 1:
        raise UserError("--algo dagger clones the planner's absolute commands: set env.action_mode=absolute and "
                        "env.action_average=1")
    if cfg.env.action_type == "discrete" and cfg.dagger.action_noise:
        raise UserError("dagger.action_noise perturbs continuous actions: with env.action_type=discrete set it to 0")
    if cfg.curriculum.enabled:
        raise UserError("--algo dagger labels the full task's goals: set curriculum.enabled=false")


class Aggregate:
    """DAgger's data set: observations (by input name) and the planner's labels, growing by rollouts."""

    def __init__(self, dims: dict[str, int], num_actions: int):
        self.dims, self.num_actions = dims, num_actions
        self.obs = {k: np.zeros((0, d), np.float32) for k, d in dims.items()}
        self.labels = np.zeros((0, num_actions), np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, obs: dict[str, np.ndarray], labels: np.ndarray) -> None:
        self.obs = {k: np.concatenate([self.obs[k], obs[k].astype(np.float32)]) for k in self.dims}
        self.labels = np.concatenate([self.labels, labels.astype(np.float32)])

    def sample(self, batch: int, rng: np.random.Generator, window: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """`batch` rows drawn uniformly from the newest `window` (0: from all)."""
        low = max(0, len(self) - window) if window else 0
        idx = rng.integers(low, len(self), batch)
        return {k: v[idx] for k, v in self.obs.items()}, self.labels[idx]

    def save(self, path: Path) -> None:
        """Atomically: a run killed while saving keeps its previous aggregate."""
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, labels=self.labels, **{f"obs_{k}": v for k, v in self.obs.items()})
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        if not path.is_file():
            raise UserError(f"--resume: {path} is missing: the run's aggregated labels are needed to continue it")
        with np.load(path) as data:
            keys = {k[4:] for k in data.files if k.startswith("obs_")}
            if keys != set(self.dims) or data["labels"].shape[1:] != (self.num_actions,):
                raise UserError(f"--resume: {path} holds other inputs or actions than this run's model")
            self.obs = {k: data[f"obs_{k}"] for k in self.dims}
            self.labels = data["labels"]


class DaggerTrainer:
    """One distillation run; `run()` trains and returns the summary written to metrics.json."""

    def __init__(self, cfg: TrainPolicyConfig, resume: bool = False):
        check_dagger_config(cfg)
        self.cfg, self.dg = cfg, cfg.dagger
        self.planner_cfg = load_planner_config(cfg.planner)
        if self.planner_cfg.replan_every != 1:
            raise UserError(f"--planner {cfg.planner}: replan_every {self.planner_cfg.replan_every} plays plans open "
                            "loop; a label must be the planner's answer to the state it labels (replan_every: 1)")
        if self.planner_cfg.env.task != cfg.task:  # its costs and noise were chosen for its own task
            raise UserError(f"--planner {cfg.planner} plans {self.planner_cfg.env.task} (its env.task) and this run's "
                            f"task is {cfg.task}: give a planner config for {cfg.task}")
        out = Path(cfg.out) if cfg.out else Path("runs") / run_name(f"policy-{cfg.task}-state-dagger")
        self.scaffold = Scaffold(out, resume)
        if self.scaffold.world > 1:
            raise UserError("--algo dagger runs in one process (the planner reads its simulations): not under torchrun")
        self.device = self.scaffold.device
        self.env_cfg = dataclasses.replace(cfg.env, task=cfg.task)
        self.eval_env_cfg = evaluation_env(self.env_cfg)
        self.env_workers = resolve_env_workers(cfg.env_workers, "state", min(cfg.eval_episodes, MAX_PARALLEL),
                                               cfg.task)
        self.env = BlockReorientEnv(self.env_cfg, cfg.num_envs, obs="state")
        try:
            keys = state_keys(cfg.task, self.env_cfg.fingertips, self.env_cfg.goal_repr)
            self.policy_cfg = policy_config_for(self.env, "state", keys, embed_dim=cfg.embed_dim, core="mlp",
                                                mlp_hidden=list(cfg.mlp_hidden), normalize_obs=cfg.normalize_obs,
                                                init_log_std=cfg.init_log_std)
            with seeded(cfg.seed):
                self.model = ActorCritic(self.policy_cfg).to(self.device)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=1e-5)
            self.aggregate = Aggregate(self.policy_cfg.policy_inputs, self.policy_cfg.num_actions)
            self.frames = self.iteration = self.optimizer_steps = 0
            self.planner_frames = 0  # steps on which the planner's own action was played
            self._restore(self.scaffold.restore(load_policy_checkpoint))
            try:  # the run's control period sets the horizon's steps, which the planner checks its knots against
                self.planner = Planner(self.planner_cfg, self.env, seed=cfg.seed + 1000 * self.iteration,
                                       discrete_by_caller=True)
            except ValueError as e:
                raise UserError(f"--planner {cfg.planner}: {e}") from None
            self.rng = np.random.default_rng([cfg.seed, self.iteration])
            self.tracker = self.scaffold.open_tracker(to_dict(cfg), cfg.wandb, self.frames)
            self.stats = EpisodeStats(window=max(20, cfg.num_envs))
            self.obs, _ = self.env.reset(seed=cfg.seed + 7919 * self.iteration)
        except BaseException:
            self.env.close()
            raise

    @property
    def aggregate_path(self) -> Path:
        return self.scaffold.run_dir / AGGREGATE

    def _restore(self, ckpt: dict | None) -> None:
        if ckpt is None:
            return
        if ckpt.get("algo") != "dagger":
            raise UserError(f"--resume: {self.scaffold.ckpt_path} is not an --algo dagger run")
        if dataclasses.asdict(PolicyConfig(**ckpt["policy_config"])) != dataclasses.asdict(self.policy_cfg):
            raise UserError(f"--resume: {self.scaffold.ckpt_path} holds a different model or observation setup")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.frames, self.iteration = ckpt["frames"], ckpt["iteration"]
        self.optimizer_steps, self.planner_frames = ckpt["optimizer_steps"], ckpt.get("planner_frames", 0)
        self.aggregate.load(self.aggregate_path)
        if len(self.aggregate) != ckpt.get("labels", len(self.aggregate)):
            log.warning("the aggregate holds %d labels, the checkpoint counted %d", len(self.aggregate), ckpt["labels"])

    def checkpoint(self, metrics: dict | None = None) -> None:
        def save(path: Path) -> None:
            self.aggregate.save(self.aggregate_path)  # first: a checkpoint never counts labels its aggregate lacks
            save_policy(path, {
                "task": self.cfg.task, "obs": "state", "algo": "dagger",
                "policy_config": dataclasses.asdict(self.policy_cfg), "env_config": to_dict(self.eval_env_cfg),
                "train_env_config": to_dict(self.env_cfg), "physics": self.env_cfg.physics,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "frames": self.frames,
                "iteration": self.iteration, "optimizer_steps": self.optimizer_steps,
                "planner_frames": self.planner_frames, "labels": len(self.aggregate),
                "planner_config": to_dict(self.planner_cfg), "wall_time_s": self.scaffold.wall_time,
                "config": to_dict(self.cfg), "git_sha": git_sha(), "run_name": self.tracker.name,
                "metrics": metrics or {}})
        self.scaffold.checkpoint(save)

    def evaluate(self) -> dict:
        """Greedy episodes of the full task on fresh environments."""
        n = min(self.cfg.eval_episodes, MAX_PARALLEL)
        env = make_env(self.eval_env_cfg, n, "state", min(self.env_workers, n))
        try:
            self.model.eval()
            return summarize_episodes(run_episodes(self.model, env, self.cfg.eval_episodes, device=self.device))
        finally:
            self.model.train()
            env.close()

    def mix(self) -> float:
        """The probability that the planner's own action is played now."""
        if self.dg.mix_frames <= 0:
            return 0.0
        return self.dg.mix * max(0.0, 1.0 - self.frames / self.dg.mix_frames)

    @property
    def discrete(self) -> bool:
        return self.env_cfg.action_type == "discrete"

    def _playable(self, commands: np.ndarray) -> np.ndarray:
        """The planner's commands as the environment takes them (a discrete one: the nearest bins)."""
        return command_bins(commands, self.env_cfg.action_bins) if self.discrete else commands

    def _commands(self, actions: np.ndarray) -> np.ndarray:
        """The network's actions as absolute commands in [-1, 1] (a discrete one's bins as their centres)."""
        if self.discrete:
            return bin_commands(actions.astype(np.float64), self.env_cfg.action_bins)
        return actions

    @torch.no_grad()
    def _student_actions(self) -> np.ndarray:
        obs = obs_tensors({k: self.obs[k] for k in self.policy_cfg.policy_inputs}, self.device)
        if self.discrete:  # greedy: the most likely bin of each actuator
            return self.model.policy_params(obs).argmax(-1).cpu().numpy()
        mean = self.model.policy_params(obs)[..., 0].cpu().numpy()
        if self.dg.action_noise:
            mean = mean + self.dg.action_noise * self.rng.standard_normal(mean.shape)
        return np.clip(mean, -1.0, 1.0)

    def collect(self) -> dict:
        """`rollout` steps of every environment, each state labelled by the planner; into the aggregate."""
        obs_rows, labels = [], []
        planner_played = 0
        for _ in range(self.cfg.rollout):
            inputs = {k: self.obs[k] for k in self.policy_cfg.policy_inputs}
            seen = {**self.policy_cfg.policy_inputs, **self.policy_cfg.value_inputs}  # what the normalizer tracks
            self.model.observe(obs_tensors({k: self.obs[k] for k in seen if k in self.obs}, self.device))
            student = self._student_actions()
            label = self.planner.act(self.env, guide=self._commands(student) if self.dg.guide else None)
            own = self.rng.random(self.cfg.num_envs) < self.mix()
            actions = np.where(own[:, None], self._playable(label), student)
            obs_rows.append(inputs)
            labels.append(label)
            self.obs, _, _, _, info = self.env.step(actions)
            self.planner.episodes_ended(info["done_mask"])
            self.stats.add(info)
            planner_played += int(own.sum())
            self.frames += self.cfg.num_envs
        self.planner_frames += planner_played
        self.aggregate.add({k: np.concatenate([o[k] for o in obs_rows]) for k in obs_rows[0]}, np.concatenate(labels))
        return {"charts/planner_played_fraction": planner_played / (self.cfg.rollout * self.cfg.num_envs)}

    def train_step(self) -> dict:
        """`dagger.updates` minibatches over the whole aggregate; the mean loss and action error."""
        losses, errors = [], []
        for _ in range(self.dg.updates):
            obs, labels = self.aggregate.sample(self.dg.batch_size, self.rng, self.dg.window)
            params = self.model.policy_params(obs_tensors(obs, self.device))
            target = torch.from_numpy(labels).to(self.device)
            if self.discrete:  # the labels' nearest bins, by cross-entropy: the greedy action is their mode
                bins = self.env_cfg.action_bins
                loss = nn.functional.cross_entropy(params.reshape(-1, bins),
                                                   torch.from_numpy(command_bins(labels, bins)).to(self.device).reshape(-1))
                predicted = bin_commands(params.detach().argmax(-1).float(), bins)
            else:
                loss = -Normal(params[..., 0], params[..., 1].exp()).log_prob(target).mean()
                predicted = params[..., 0].detach()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.optimizer.step()
            losses.append(float(loss.detach()))
            errors.append(float((predicted - target).abs().mean()))
            self.optimizer_steps += 1
        name = "losses/cross_entropy" if self.discrete else "losses/nll"
        return {name: float(np.mean(losses)), "losses/action_abs_error": float(np.mean(errors))}

    def _loop(self) -> tuple[dict, bool]:
        from tqdm import tqdm  # noqa: PLC0415

        cfg = self.cfg
        last = {"log": time.perf_counter(), "eval": time.perf_counter()}
        bar = tqdm(total=cfg.steps, initial=self.frames, desc="train-policy dagger", unit="label")
        metrics: dict = {}
        try:
            while self.frames < cfg.steps:
                if self.scaffold.time_up(cfg.time_limit_min):
                    return metrics, True
                t0, before = time.perf_counter(), self.frames
                metrics = self.collect()
                t1 = time.perf_counter()
                metrics.update(self.train_step())
                t2 = time.perf_counter()
                self.iteration += 1
                bar.update(self.frames - before)
                metrics.update({
                    "charts/frames": self.frames, "charts/labels": len(self.aggregate),
                    "charts/iterations": self.iteration, "charts/optimizer_steps": self.optimizer_steps,
                    "charts/mix": self.mix(), "perf/labels_per_s": (self.frames - before) / (t1 - t0),
                    "perf/planner_decisions_per_s": self.planner.decisions / max(self.planner.planning_time, 1e-9),
                    "perf/update_fraction": (t2 - t1) / (t2 - t0), **self.stats.metrics()})
                log_when_due(self, metrics, last)
                bar.set_postfix(successes=f"{metrics.get('charts/successes_per_episode', 0):.1f}",
                                err=f"{metrics['losses/action_abs_error']:.3f}")
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
            self.planner.close()
            self.env.close()
        final = self.evaluate()
        wall = self.scaffold.wall_time
        self.checkpoint(final)
        result = {
            "run_name": self.tracker.name, "task": cfg.task, "obs": "state", "algo": "dagger", "frames": self.frames,
            "labels": len(self.aggregate), "planner_frames": self.planner_frames, "iterations": self.iteration,
            "optimizer_steps": self.optimizer_steps, "wall_time_s": wall, "stopped_by_time_limit": stopped_early,
            "frames_per_s": self.frames / wall if wall > 0 else 0.0, "evaluation": final,
            "train_episodes": self.stats.total, "world_size": 1, "git_sha": git_sha(),
            "physics": self.env_cfg.physics, "planner": cfg.planner, "checkpoint": str(self.scaffold.ckpt_path),
            "time_shares": {}, "last_metrics": metrics,
        }
        log_closing(self, final, wall)
        self.scaffold.finish(result, self.tracker)
        return result
