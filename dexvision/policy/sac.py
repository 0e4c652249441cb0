"""Soft actor-critic with hindsight goal relabelling, as small flat pieces (in the manner of CleanRL).

- `SacConfig`: the learner's settings (train-policy's `sac:` section);
- `GoalReward`: the reward as a function of (achieved orientation, goal, drop), so that a
  relabelled transition earns exactly what the environment would have paid for that goal;
- `HerBuffer`: a ring of vector steps (one row per step, one column per environment)
  that samples transitions and, with probability k / (k + 1), replaces a transition's
  goal by an orientation its episode reached later ('future' relabelling, Andrychowicz et
  al. 2017); the goal-dependent inputs are recomputed for the new goal by a function the
  caller gives (`dexvision.envs.rules.goal_observation` for this project's environments);
- `TwinQ`: two Q networks over the normalized inputs and the action;
- `sac_update`: one gradient step of the critics, the actor and the entropy temperature,
  then Polyak averaging of the target critics.

Nothing here knows the environment: benchmarks/her_anchor.py runs the same pieces on
gymnasium-robotics' HandManipulateBlock tasks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from dexvision.policy.model import ActorCritic
from dexvision.sim.rotations import quat_angle


@dataclasses.dataclass
class SacConfig:
    """Off-policy learner settings (lengths in transitions, one per environment and step)."""

    batch_size: int = 512
    buffer_size: int = 1_000_000  # transitions kept (the oldest are overwritten)
    updates_per_step: float = 1.0  # gradient steps per vector step of num_envs transitions (may be fractional)
    warmup: int = 10_000  # transitions of uniformly random actions before the first update
    her_k: float = 4.0  # relabelled : original goals in a batch ('future' with k = 4: 80% relabelled)
    tau: float = 0.01  # Polyak step of the target critics per update
    init_alpha: float = 0.05  # the entropy temperature at the start (learned: target_entropy below)
    target_entropy: float = -1.0  # per actuator (SAC's usual -1 x the action dimension)
    critic_hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256, 256])
    # exploration beside the entropy term (Plappert et al. 2018's DDPG + HER: 0.3 and 0.2): per environment and
    # step, a uniformly random action with this probability, else the actor's sampled action plus Gaussian noise
    # of this standard deviation (clipped to the action range)
    random_eps: float = 0.0
    action_noise: float = 0.0

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {self.buffer_size}")
        if self.updates_per_step <= 0:
            raise ValueError(f"updates_per_step must be > 0, got {self.updates_per_step}")
        if self.warmup < 0 or self.her_k < 0:
            raise ValueError(f"warmup and her_k must be >= 0, got {self.warmup} and {self.her_k}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if not 0 <= self.random_eps <= 1:
            raise ValueError(f"random_eps must be in [0, 1], got {self.random_eps}")
        if self.action_noise < 0:
            raise ValueError(f"action_noise must be >= 0, got {self.action_noise}")
        if self.init_alpha <= 0:
            raise ValueError(f"init_alpha must be > 0, got {self.init_alpha}")
        if not self.critic_hidden or min(self.critic_hidden) < 1:
            raise ValueError(f"critic_hidden must list positive layer widths, got {self.critic_hidden}")


RELABELLED_REWARDS = ("none", "inverse", "distance", "closeness")  # the EnvConfig.rotation_reward kinds GoalReward computes


@dataclasses.dataclass
class GoalReward:
    """The environment's reward as a function of (achieved orientation, goal, drop), for unit quaternions:
    success * 1[angle < threshold] - drop * dropped, plus 1 / (angle + eps) with rotation "inverse",
    -weight * angle with "distance" or weight * (1 - angle / pi) with "closeness"."""

    threshold: float
    success: float = 1.0
    drop: float = 5.0
    rotation: str = "none"  # none, inverse, distance or closeness (EnvConfig.rotation_reward)
    eps: float = 0.1
    weight: float = 1.0  # distance, closeness: EnvConfig.progress_reward

    @classmethod
    def of_env(cls, env) -> GoalReward:
        """The reward of an EnvConfig whose reward depends on (achieved, goal, drop) alone."""
        if env.rotation_reward not in RELABELLED_REWARDS or env.position_penalty or env.action_penalty:
            raise ValueError("goal relabelling needs a reward of (achieved orientation, goal, drop): "
                             f"env.rotation_reward one of {', '.join(RELABELLED_REWARDS)}, and env.position_penalty "
                             "and env.action_penalty 0")
        return cls(env.success_threshold, env.success_reward, env.drop_penalty, env.rotation_reward,
                   env.rotation_eps, env.progress_reward)

    def __call__(self, achieved: np.ndarray, goal: np.ndarray, dropped: np.ndarray) -> np.ndarray:
        angle = quat_angle(achieved, goal)
        reward = self.success * (angle < self.threshold) - self.drop * dropped
        if self.rotation == "inverse":
            reward = reward + 1.0 / (angle + self.eps)
        elif self.rotation == "distance":
            reward = reward - self.weight * angle
        elif self.rotation == "closeness":
            reward = reward + self.weight * (1.0 - angle / math.pi)
        return reward.astype(np.float32)


class HerBuffer:
    """Transitions of `num_envs` environments stepped together, `capacity` in all, with 'future' relabelling.

    `add` takes one vector step: the observations the actions were chosen on (goal-independent keys only), the
    actions, the observations after the step (the final ones where an episode ended), the achieved goals after
    the step, the goals played for, the terminal flags (no bootstrap) and the done flags (the episode ended,
    terminal or truncated). `sample` returns a batch whose goals are relabelled, whose rewards come from
    `reward_fn(achieved, goal, terminal)` and whose goal-dependent inputs come from `goal_obs_fn(obs, goal)`.
    Steps are counted from the first (`self.steps`); row `s % rows` holds step s."""

    def __init__(self, capacity: int, num_envs: int, obs_dims: dict[str, int], action_dim: int, goal_dim: int,
                 her_k: float, seed: int = 0):
        if capacity < num_envs:
            raise ValueError(f"a replay buffer of {capacity} transitions cannot hold one step of {num_envs} "
                             "environments")
        self.rows, self.num_envs, self.her_k = capacity // num_envs, num_envs, her_k
        shape = (self.rows, num_envs)
        self.obs = {k: np.zeros(shape + (d,), np.float32) for k, d in obs_dims.items()}
        self.next_obs = {k: np.zeros(shape + (d,), np.float32) for k, d in obs_dims.items()}
        self.actions = np.zeros(shape + (action_dim,), np.float32)
        self.achieved = np.zeros(shape + (goal_dim,), np.float64)
        self.goals = np.zeros(shape + (goal_dim,), np.float64)
        self.terminal = np.zeros(shape, bool)
        self.episode_end = np.full(shape, -1, np.int64)  # step after an episode's last (-1: still running)
        self.episode_start = np.zeros(num_envs, np.int64)  # of each environment's running episode
        self.steps = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(self.steps, self.rows) * self.num_envs

    def add(self, obs: dict[str, np.ndarray], actions: np.ndarray, next_obs: dict[str, np.ndarray],
            achieved: np.ndarray, goals: np.ndarray, terminal: np.ndarray, done: np.ndarray) -> None:
        row, s = self.steps % self.rows, self.steps
        for k in self.obs:
            self.obs[k][row] = obs[k]
            self.next_obs[k][row] = next_obs[k]
        self.actions[row], self.achieved[row], self.goals[row] = actions, achieved, goals
        self.terminal[row] = terminal
        self.episode_end[row] = -1
        oldest = max(0, s + 1 - self.rows)  # the oldest step still held once this one is in
        for e in np.flatnonzero(done):
            first = max(int(self.episode_start[e]), oldest)
            self.episode_end[np.arange(first, s + 1) % self.rows, e] = s + 1
            self.episode_start[e] = s + 1
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps, "rng": self.rng.bit_generator.state}

    def sample(self, batch: int, reward_fn: Callable, goal_obs_fn: Callable) -> dict[str, np.ndarray]:
        """A batch: obs, next_obs (dicts, with goal-dependent keys for the batch's goals), actions, rewards,
        terminal (float) and relabelled (bool: the goal came from later in the episode)."""
        if self.steps == 0:
            raise ValueError("the replay buffer is empty")
        held = min(self.steps, self.rows)
        step = self.steps - held + self.rng.integers(0, held, batch)  # absolute step of each transition
        env = self.rng.integers(0, self.num_envs, batch)
        row = step % self.rows
        goals = self.goals[row, env].copy()
        relabel = self.rng.random(batch) < self.her_k / (self.her_k + 1.0)
        if relabel.any():
            end = self.episode_end[row, env]
            end = np.where(end < 0, self.steps, end)  # a running episode: what it has reached so far
            future = step + (self.rng.random(batch) * (end - step)).astype(np.int64)  # in [step, end)
            goals[relabel] = self.achieved[future[relabel] % self.rows, env[relabel]]
        terminal = self.terminal[row, env]
        obs = {k: v[row, env] for k, v in self.obs.items()}
        next_obs = {k: v[row, env] for k, v in self.next_obs.items()}
        obs.update(goal_obs_fn(obs, goals))
        next_obs.update(goal_obs_fn(next_obs, goals))
        return {"obs": obs, "next_obs": next_obs, "actions": self.actions[row, env],
                "rewards": reward_fn(self.achieved[row, env], goals, terminal),
                "terminal": terminal.astype(np.float32), "relabelled": relabel}


def _mlp(n_in: int, widths: list[int], n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class TwinQ(nn.Module):
    """Two Q networks over the concatenated inputs (`keys`, in order) and the action: (B,) each."""

    def __init__(self, dims: dict[str, int], action_dim: int, hidden: list[int]):
        super().__init__()
        self.keys = list(dims)
        n_in = sum(dims.values()) + action_dim
        self.q1, self.q2 = _mlp(n_in, hidden, 1), _mlp(n_in, hidden, 1)

    def forward(self, inputs: dict[str, torch.Tensor], action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([inputs[k] for k in self.keys] + [action], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


def squashed_sample(actor: ActorCritic, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A reparameterized tanh-Gaussian action (B, actuators) and its log-probability (B,), from the inputs as the
    environment gave them (the actor applies its own normalization, as when it acts)."""
    params = actor.policy_params(obs)
    mean, log_std = params[..., 0], params[..., 1]
    pre = mean + log_std.exp() * torch.randn_like(mean)
    action = torch.tanh(pre)
    normal = -0.5 * ((pre - mean) / log_std.exp()).square() - log_std - 0.5 * math.log(2 * math.pi)
    logprob = (normal - torch.log1p(-action.square() + 1e-6)).sum(-1)
    return action, logprob


class SacLearner:
    """The actor (an ActorCritic with an MLP core and tanh-Gaussian actions; its value branch is unused), twin
    critics and their targets, the temperature, and their optimizers."""

    def __init__(self, actor: ActorCritic, cfg: SacConfig, lr: float, gamma: float, device: torch.device):
        if actor.cfg.action_dist != "tanh_gaussian":
            raise ValueError("soft actor-critic needs a tanh_gaussian actor")
        self.actor, self.cfg, self.gamma, self.device = actor, cfg, gamma, device
        dims = dict(actor.cfg.policy_inputs)
        self.critic = TwinQ(dims, actor.cfg.num_actions, list(cfg.critic_hidden)).to(device)
        self.target = TwinQ(dims, actor.cfg.num_actions, list(cfg.critic_hidden)).to(device)
        self.target.load_state_dict(self.critic.state_dict())
        self.target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=device, requires_grad=True)
        self.target_entropy = cfg.target_entropy * actor.cfg.num_actions
        policy = [p for n, p in actor.named_parameters() if n.startswith(("policy_", "obs_moments"))]
        self.actor_opt = torch.optim.Adam(policy, lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr)

    def state_dict(self) -> dict:
        return {"critic": self.critic.state_dict(), "target": self.target.state_dict(),
                "log_alpha": self.log_alpha.detach().cpu(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(), "alpha_opt": self.alpha_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])

    def _normalized(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.actor._inputs(obs)  # the actor's running moments, clipped to +-5

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One gradient step of critics, actor and temperature on a sampled batch; returns its losses."""
        t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(self.device)  # noqa: E731
        # the actor normalizes its own inputs (as when it acts); the critics take the actor's normalized ones
        raw, next_raw = ({k: t(v) for k, v in batch[key].items()} for key in ("obs", "next_obs"))
        obs, next_obs = self._normalized(raw), self._normalized(next_raw)
        actions, rewards, terminal = t(batch["actions"]), t(batch["rewards"]), t(batch["terminal"])
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_action, next_logprob = squashed_sample(self.actor, next_raw)
            q1_t, q2_t = self.target(next_obs, next_action)
            target = rewards + self.gamma * (1.0 - terminal) * (torch.min(q1_t, q2_t) - alpha * next_logprob)
        q1, q2 = self.critic(obs, actions)
        critic_loss = (q1 - target).square().mean() + (q2 - target).square().mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        self.critic.requires_grad_(False)
        action, logprob = squashed_sample(self.actor, raw)
        q1_pi, q2_pi = self.critic(obs, action)
        actor_loss = (alpha * logprob - torch.min(q1_pi, q2_pi)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        alpha_loss = -(self.log_alpha * (logprob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for p, p_t in zip(self.critic.parameters(), self.target.parameters()):
                p_t.lerp_(p, self.cfg.tau)
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), "alpha": alpha.item(),
                "q_mean": q1.mean().item(), "entropy": -logprob.mean().item(),
                "reward_mean": rewards.mean().item()}
