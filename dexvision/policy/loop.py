"""Rollout collection shared by PPO and behavioural cloning, and the episode statistics.

`Collector.collect()` steps the vectorized environment for `rollout` steps with
the model acting (sampled actions), keeping the model's LSTM state across calls
and recording it at every chunk start. With `label=True` a teacher runs alongside
on the state observations of the very states the student visits (DAgger) and its
action logits and values become the targets.
"""

from __future__ import annotations

import collections
import statistics
import time

import numpy as np
import torch

from dexvision.envs.episodes import obs_tensors
from dexvision.policy.model import ActorCritic
from dexvision.policy.ppo import Rollout


class EpisodeStats:
    """Successes, returns and drops of the last `window` finished training episodes, and for the
    curriculum the successes of the episodes that were played at its current level throughout."""

    def __init__(self, window: int = 20, level: int = 0):
        self.successes: collections.deque = collections.deque(maxlen=window)
        self.returns: collections.deque = collections.deque(maxlen=window)
        self.drops: collections.deque = collections.deque(maxlen=window)
        self.total = 0
        self.level = level  # the curriculum level that episodes starting now are played at
        self._started: np.ndarray | None = None  # per environment: the level its current episode started at
        self.unread: list[int] = []  # see `take_finished`

    def add(self, info: dict) -> None:
        done = info["done_mask"]
        if self._started is None:
            self._started = np.full(len(done), self.level)
        for i in np.flatnonzero(done):
            self.successes.append(int(info["episode_successes"][i]))
            self.returns.append(float(info["episode_return"][i]))
            self.drops.append(float(info["dropped"][i]))
            if self._started[i] == self.level:
                self.unread.append(int(info["episode_successes"][i]))
            self._started[i] = self.level  # the environment has reset: its next episode starts now
            self.total += 1

    def set_level(self, level: int) -> None:
        """The curriculum moved on: episodes still running started below it and no longer count."""
        self.level, self.unread = level, []

    def take_finished(self) -> list[int]:
        """Successes of the episodes finished since the last call that started at the current level
        (for the curriculum: an episode begun at an easier bound would earn a promotion it did not play)."""
        out, self.unread = self.unread, []
        return out

    def metrics(self) -> dict[str, float]:
        if not self.successes:
            return {}
        return {"charts/successes_per_episode": statistics.fmean(self.successes),
                "charts/median_successes": float(statistics.median(self.successes)),
                "charts/episode_return": statistics.fmean(self.returns), "charts/episodes": float(self.total),
                "charts/drop_rate": statistics.fmean(self.drops)}


class Collector:
    """Owns the environment's current observation and both LSTM states between iterations."""

    def __init__(self, env, model: ActorCritic, teacher: ActorCritic | None, rollout: int,
                 chunk: int, device: torch.device, seed: int, bootstrap_truncated: bool = False):
        """`env`: a BlockReorientEnv or EnvWorkers; `seed` seeds both its episodes and the sampled actions.
        `bootstrap_truncated`: record the value of the observation each truncated episode ended on (state
        policies: a pixel policy's final observation has no images)."""
        if bootstrap_truncated and model.vision is not None:
            raise ValueError("bootstrapping truncated episodes needs a state policy (final observations have no images)")
        self.env, self.model, self.teacher = env, model, teacher
        self.bootstrap_truncated = bootstrap_truncated
        self.generator = torch.Generator().manual_seed(seed)
        self.rollout, self.chunk, self.device = rollout, chunk, device
        n = env.num_envs
        obs, _ = env.reset(seed=seed)
        self.obs = obs_tensors(obs, device)
        self.state = model.initial_state(n, device)
        self.teacher_state = teacher.initial_state(n, device) if teacher is not None else None
        self.starts = torch.ones(n, device=device)
        # seconds the last collect() spent stepping the environments (physics, and rendering for pixels)
        # and in the vision sub-model's forward pass: where collection's time goes
        self.timing = {"env_s": 0.0, "vision_s": 0.0}

    @torch.no_grad()
    def collect(self, stats: EpisodeStats, label: bool = False) -> tuple[Rollout, torch.Tensor]:
        """(rollout, value of the state after its last step)."""
        if label and self.teacher is None:
            raise ValueError("labelling needs a teacher")
        T = self.rollout
        steps: dict[str, list] = {k: [] for k in ("starts", "actions", "logprobs", "values", "rewards", "dones",
                                                  "teacher_logits", "teacher_values", "bootstrap")}
        obs_steps: dict[str, list] = {}
        chunk_states = []
        env_s = vision_s = 0.0
        for t in range(T):
            if t % self.chunk == 0:
                chunk_states.append(self.state)
            if self.model.vision is not None:
                # computed once here; kept in the rollout for the cheap feature epochs of the update
                tick = time.perf_counter()
                self.obs["vision"] = self.model.vision_features(self.obs["images"].unsqueeze(0))[0]
                if self.device.type == "cuda":  # count the kernels, not their launch (acting syncs right after)
                    torch.cuda.synchronize(self.device)
                vision_s += time.perf_counter() - tick
            self.model.observe(self.obs)  # input moments (models that normalize their inputs)
            action, logprob, _, value, _, self.state = self.model.get_action_and_value(
                self.obs, self.state, self.starts, generator=self.generator)
            if label:
                # the teacher reads the state keys of the same observation (it has no vision sub-model)
                _, _, _, t_value, t_logits, self.teacher_state = self.teacher.get_action_and_value(
                    self.obs, self.teacher_state, self.starts)
                steps["teacher_logits"].append(t_logits)
                steps["teacher_values"].append(t_value)
            for k, v in self.obs.items():
                obs_steps.setdefault(k, []).append(v)
            actions = action.cpu().numpy()
            tick = time.perf_counter()
            obs, reward, _, truncated, info = self.env.step(actions)
            env_s += time.perf_counter() - tick
            stats.add(info)
            done = torch.from_numpy(info["done_mask"].astype(np.float32)).to(self.device)
            if self.bootstrap_truncated:
                cut = torch.from_numpy(np.asarray(truncated, np.float32)).to(self.device)
                bootstrap = torch.zeros_like(cut)
                if cut.any():  # the value of where each cut-off episode stood, with the state it had reached
                    final = obs_tensors(info["final_obs"], self.device)
                    _, _, _, final_value, _, _ = self.model.get_action_and_value(final, self.state,
                                                                                 torch.zeros_like(cut))
                    bootstrap = final_value * cut
                steps["bootstrap"].append(bootstrap)
            steps["starts"].append(self.starts)
            steps["actions"].append(action)
            steps["logprobs"].append(logprob)
            steps["values"].append(value)
            steps["rewards"].append(torch.from_numpy(reward).to(self.device))
            steps["dones"].append(done)
            self.obs = obs_tensors(obs, self.device)
            self.starts = done
        # The value after the last step: one more forward pass (its state is not kept).
        _, _, _, next_value, _, _ = self.model.get_action_and_value(self.obs, self.state, self.starts)
        self.timing = {"env_s": env_s, "vision_s": vision_s}
        stacked = {k: torch.stack(v) if v else None for k, v in steps.items()}
        rollout = Rollout(obs={k: torch.stack(v) for k, v in obs_steps.items()}, chunk_states=torch.stack(chunk_states),
                          **stacked)
        return rollout, next_value * (1.0 - self.starts)


def log_when_due(trainer, metrics: dict, last: dict) -> None:
    """What both train-policy trainers (PPO/BC's and the off-policy one) do after an iteration, on rank 0:
    a greedy evaluation when `eval_every_min` has passed, then a log line every `log_every_s` (and at the last
    frame, and whenever an evaluation ran). `last` holds the clock times of the last evaluation and log."""
    cfg, now = trainer.cfg, time.perf_counter()
    if cfg.eval_every_min and now - last["eval"] >= 60 * cfg.eval_every_min:
        metrics.update({f"eval/{k}": v for k, v in trainer.evaluate().items()})
        last["eval"] = now = time.perf_counter()
    if now - last["log"] >= cfg.log_every_s or trainer.frames >= cfg.steps or "eval/episodes" in metrics:
        metrics["perf/wall_time_s"] = trainer.scaffold.wall_time
        trainer.tracker.log(trainer.frames, metrics)
        last["log"] = now


def log_closing(trainer, final: dict, wall: float) -> None:
    """What every train-policy trainer logs last, on rank 0: the final evaluation (eval/*), the wall time and
    the counters, at its last frame (no system metrics)."""
    if trainer.tracker is None:
        return
    closing = {**{f"eval/{k}": v for k, v in final.items()}, "perf/wall_time_s": wall,
               "charts/frames": trainer.frames, "charts/optimizer_steps": trainer.optimizer_steps}
    trainer.tracker.log(trainer.frames, closing, with_system=False)
