"""PPO and behavioural cloning as small, flat pieces (in the manner of CleanRL).

- `Rollout`: T steps of N environments, with the LSTM state at every chunk start;
- `compute_gae`: generalized advantage estimation, a pure function;
- `ppo_loss` and `bc_loss`: the objectives on one minibatch of sequences;
- `update`: epochs of minibatches split by environment, each sequence a chunk of
  `chunk` steps started from the LSTM state recorded when it was collected; during
  the first epoch it measures the gradient noise scale (`NoiseScale`).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, kl_divergence


@dataclasses.dataclass
class Rollout:
    """What one collection phase produced; tensors are (T, N, ...) unless noted."""

    obs: dict[str, torch.Tensor]
    starts: torch.Tensor  # step t begins an episode (the LSTM state is zeroed before it)
    actions: torch.Tensor  # (T, N, actuators) bin indices
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor  # the episode ended with step t
    chunk_states: torch.Tensor  # (T // chunk, 4, N, hidden): LSTM state before each chunk
    teacher_logits: torch.Tensor | None = None  # (T, N, actuators, bins), behavioural cloning only
    teacher_values: torch.Tensor | None = None
    # the value of the observation a truncated episode ended on (0 elsewhere): the return it was cut off from
    bootstrap: torch.Tensor | None = None


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
                gamma: float, lam: float, bootstrap: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), both (T, N). `dones[t]` marks the last step of an episode: nothing is
    bootstrapped across it into the next episode. `next_value` is the value of the state after the last
    step; `bootstrap[t]`, where an episode was truncated at step t (by a time limit, not by its outcome), is
    the value of the observation it ended on, which the step's return then includes (Gymnasium's final_obs)."""
    if bootstrap is not None:
        rewards = rewards + gamma * bootstrap
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        following = next_value if t == T - 1 else values[t + 1]
        live = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * following * live - values[t]
        last = delta + gamma * lam * live * last
        advantages[t] = last
    return advantages, advantages + values


class RewardScaler:
    """Divides rewards by a running standard deviation of the discounted return (as Gymnasium's
    NormalizeReward and SB3's VecNormalize do), so value targets stay near unit scale: with raw returns
    of ~100 the value loss would dominate the gradient norm that PPO clips, and shared layers with it."""

    def __init__(self, num_envs: int, gamma: float):
        self.gamma = gamma
        self.returns = torch.zeros(num_envs)
        self.count, self.mean, self.var = 1e-4, 0.0, 1.0

    def __call__(self, rewards: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        """Scale (T, N) rewards, updating the statistics with the returns they make."""
        seen = []
        for t in range(rewards.shape[0]):
            self.returns = self.returns * self.gamma + rewards[t].cpu()
            seen.append(self.returns.clone())
            self.returns = self.returns * (1.0 - dones[t].cpu())
        batch = torch.stack(seen).double()
        b_mean, b_var, b_count = float(batch.mean()), float(batch.var(unbiased=False)), batch.numel()
        delta, total = b_mean - self.mean, self.count + b_count
        self.var = (self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total) / total
        self.mean, self.count = self.mean + delta * b_count / total, total
        return rewards / math.sqrt(self.var + 1e-8)

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "var": self.var}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.mean, self.var = state["count"], state["mean"], state["var"]


@dataclasses.dataclass
class LossConfig:
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.003
    bc_value_coef: float = 0.5


def categorical(logits: torch.Tensor) -> Distribution:
    return Categorical(logits=logits)


def ppo_loss(logits: torch.Tensor, values: torch.Tensor, batch: dict, cfg: LossConfig,
             dist_fn=categorical) -> dict[str, torch.Tensor]:
    """The clipped PPO objective; `logits` are the action distribution's parameters for `dist_fn`
    (ActorCritic.distribution: categorical logits, or Gaussian means and log standard deviations)."""
    dist = dist_fn(logits)
    logprob = dist.log_prob(batch["actions"]).sum(-1)
    ratio = torch.exp(logprob - batch["logprobs"])
    adv = batch["advantages"]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip)).mean()
    value = 0.5 * ((values - batch["returns"]) ** 2).mean()
    entropy = dist.entropy().sum(-1).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - (logprob - batch["logprobs"])).mean()
        clipfrac = ((ratio - 1).abs() > cfg.clip).float().mean()
    return {"loss": policy + cfg.value_coef * value - cfg.entropy_coef * entropy, "policy": policy, "value": value,
            "entropy": entropy, "approx_kl": approx_kl, "clipfrac": clipfrac}


def bc_loss(logits: torch.Tensor, values: torch.Tensor, batch: dict, cfg: LossConfig,
            dist_fn=categorical) -> dict[str, torch.Tensor]:
    """KL(teacher || student) summed over actuators, plus L2 between the value predictions.

    The L2 term is relative (divided by the mean square of the teacher's values): returns
    of this task reach ~100, and an absolute squared error would drown the KL term and
    swamp the vision sub-model's gradients."""
    student = dist_fn(logits)
    kl = kl_divergence(dist_fn(batch["teacher_logits"]), student).sum(-1).mean()
    target = batch["teacher_values"]
    value = ((values - target) ** 2).mean() / (target.square().mean() + 1.0)
    entropy = student.entropy().sum(-1).mean()
    return {"loss": kl + cfg.bc_value_coef * value, "kl": kl, "value": value, "entropy": entropy}


def _sequences(x: torch.Tensor, envs: torch.Tensor, chunk: int) -> torch.Tensor:
    """(T, N, ...) -> (chunk, T // chunk * len(envs), ...): the chunks of the chosen environments."""
    x = x[:, envs]
    T, n = x.shape[:2]
    x = x.reshape(T // chunk, chunk, n, *x.shape[2:]).transpose(0, 1)
    return x.reshape(chunk, (T // chunk) * n, *x.shape[3:])


def pool_rollouts(rollouts: list[Rollout]) -> Rollout:
    """Rollouts of the same length side by side, as one rollout of all their environments; images are
    left out (the pool feeds epochs on cached vision features)."""
    if len(rollouts) == 1:
        return rollouts[0]
    cat = lambda name, dim=1: torch.cat([getattr(r, name) for r in rollouts], dim)  # noqa: E731
    obs = {k: torch.cat([r.obs[k] for r in rollouts], 1) for k in rollouts[0].obs if k != "images"}
    labels = {name: cat(name) if getattr(rollouts[0], name) is not None else None
              for name in ("teacher_logits", "teacher_values")}
    return Rollout(obs=obs, starts=cat("starts"), actions=cat("actions"), logprobs=cat("logprobs"),
                   values=cat("values"), rewards=cat("rewards"), dones=cat("dones"),
                   chunk_states=cat("chunk_states", 2), **labels)


def minibatch(rollout: Rollout, extra: dict[str, torch.Tensor], envs: torch.Tensor, chunk: int) -> dict:
    """Every chunk of the environments `envs` as a batch of sequences, with their initial LSTM states."""
    seq = lambda x: _sequences(x, envs, chunk)  # noqa: E731
    batch = {"obs": {k: seq(v) for k, v in rollout.obs.items()}, "starts": seq(rollout.starts),
             "actions": seq(rollout.actions), "logprobs": seq(rollout.logprobs)}
    for name in ("teacher_logits", "teacher_values"):
        if getattr(rollout, name) is not None:
            batch[name] = seq(getattr(rollout, name))
    batch.update({k: seq(v) for k, v in extra.items()})
    states = rollout.chunk_states[:, :, envs]  # (C, 4, n, H)
    batch["state"] = states.permute(1, 0, 2, 3).reshape(4, -1, states.shape[-1])
    return batch


class NoiseScale:
    """The simple gradient noise scale B = tr(Sigma) / |G|^2 (McCandlish et al. 2018, appendix A).

    From the squared norms of gradients at two batch sizes: minibatch gradients (B_small)
    and their mean over an epoch (B_big). The two unbiased estimates are smoothed with
    an exponential moving average before the ratio is taken, as the paper recommends.
    """

    def __init__(self, decay: float = 0.9):
        self.decay = decay
        self.g2 = self.trace = None

    def update(self, small_sq: float, big_sq: float, b_small: float, b_big: float) -> float | None:
        if b_big <= b_small:
            return self.value
        g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
        trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
        ema = lambda old, new: new if old is None else self.decay * old + (1 - self.decay) * new  # noqa: E731
        self.g2, self.trace = ema(self.g2, g2), ema(self.trace, trace)
        return self.value

    @property
    def value(self) -> float | None:
        if self.g2 is None or self.g2 <= 0:
            return None
        return self.trace / self.g2


def _flat_grad(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device)
                      for p in params])


def update(model: nn.Module, forward, optimizer: torch.optim.Optimizer, rollout: Rollout,
           extra: dict[str, torch.Tensor], loss_fn, loss_cfg: LossConfig, *, epochs: int, minibatches: int,
           chunk: int, max_grad_norm: float, world: int = 1, generator: torch.Generator | None = None,
           feature_epochs: int = 0, replay: list[Rollout] | tuple = ()) -> dict:
    """Optimize `loss_fn` over the rollout; returns mean losses, the optimizer steps taken and the
    gradient norms of the first epoch (for NoiseScale).

    Pixel policies: the first `epochs` epochs run the vision sub-model on the images
    (end to end); `feature_epochs` more epochs reuse the vision features computed during
    collection, training everything but the vision sub-model at a fraction of the cost.
    With `replay` (earlier rollouts of the same shape, with their cached features: behavioural
    cloning's aggregated data), each feature epoch draws as many environments as the rollout has
    from the newest rollout and the replayed ones together: the same number of optimizer steps on
    minibatches of the same size, but not all from the episodes being played right now.
    """
    n_envs = rollout.rewards.shape[1]
    if n_envs % minibatches:
        raise ValueError(f"num_envs ({n_envs}) must be divisible by minibatches ({minibatches})")
    params = [p for p in model.parameters() if p.requires_grad]
    sums: dict[str, float] = {}
    steps, small_sq, grad_sum = 0, 0.0, None
    has_images = "images" in rollout.obs
    if replay and extra:
        raise ValueError("replayed rollouts carry no advantages: replay is for behavioural cloning")
    pool = pool_rollouts([rollout, *replay]) if has_images and replay else rollout
    for epoch in range(epochs + (feature_epochs if has_images else 0)):
        cached = epoch >= epochs
        source = pool if cached else rollout
        order = torch.randperm(source.rewards.shape[1], generator=generator)[:n_envs]
        for envs in order.chunk(minibatches):
            batch = minibatch(source, extra, envs, chunk)
            obs = {k: v for k, v in batch["obs"].items() if k != ("images" if cached else "vision")}
            logits, values, _ = forward(obs, batch["state"], batch["starts"])
            losses = loss_fn(logits, values, batch, loss_cfg)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if epoch == 0:
                g = _flat_grad(params).detach()
                small_sq += float(g.square().sum())
                grad_sum = g if grad_sum is None else grad_sum + g
            nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            steps += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
    out = {k: v / steps for k, v in sums.items()}
    per_batch = minibatches  # minibatch gradients in the first epoch
    b_small = rollout.rewards.numel() / minibatches * world
    out.update(optimizer_steps=steps, grad_small_sq=small_sq / per_batch,
               grad_big_sq=float((grad_sum / per_batch).square().sum()), b_small=b_small, b_big=b_small * per_batch)
    if not all(math.isfinite(v) for v in out.values()):
        raise FloatingPointError(f"non-finite loss or gradient: {out}")
    return out
