"""The off-policy learner's update against stable-baselines3's SAC + HerReplayBuffer, side by side.

    .venv/bin/pip install stable-baselines3        # not a dependency of dexvision: only this benchmark's
    .venv/bin/python benchmarks/sac_update.py --updates 200 --batch-size 512 --rounds 3

Both learn on gymnasium-robotics' HandManipulateBlockRotateXYZ (61 observation values, a 7-value
goal, 20 actuators; the Shadow Hand asset dexvision's hand-block uses), with the same networks (an
actor and two critics of 3 x 256 units), the same batch and 'future' relabelling with k = 4. Each
fills its replay buffer with the same number of random transitions, then times `--updates` gradient
steps (sampling and relabelling included): dexvision.policy.sac's `HerBuffer.sample` +
`SacLearner.update`, and SB3's `SAC.train(gradient_steps=...)`. The rounds alternate the two, so a
change in the machine's speed during the run falls on both. Prints updates/s and samples/s of each
and their ratio per round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from her_anchor import actor_for, make_envs
from dexvision.policy.sac import HerBuffer, SacConfig, SacLearner


def ours(env, fill: int, batch: int, seed: int):
    """dexvision's learner with a buffer of `fill` random transitions; returns a function doing n updates."""
    obs, _ = env.reset(seed=seed)
    obs_dim, goal_dim, nu = obs["observation"].size, obs["desired_goal"].size, env.action_space.shape[0]
    actor = actor_for(obs_dim, goal_dim, nu)
    learner = SacLearner(actor, SacConfig(batch_size=batch), 3e-4, 0.98, torch.device("cpu"))
    buffer = HerBuffer(1_000_000, 1, {"observation": obs_dim}, nu, goal_dim, 4.0, seed)
    rng = np.random.default_rng(seed)
    for t in range(fill):
        action = rng.uniform(-1, 1, nu)
        nxt, _, term, trunc, _ = env.step(action)
        buffer.add({"observation": obs["observation"][None].astype(np.float32)}, action[None],
                   {"observation": nxt["observation"][None].astype(np.float32)}, nxt["achieved_goal"][None],
                   obs["desired_goal"][None], np.zeros(1, bool), np.array([term or trunc]))
        obs = env.reset()[0] if term or trunc else nxt
    reward = env.unwrapped.compute_reward

    def run(n: int) -> None:
        for _ in range(n):
            learner.update(buffer.sample(batch, lambda a, g, _t: reward(a, g, None).astype(np.float32),
                                         lambda o, g: {"desired_goal": g.astype(np.float32)}))
    return run


def sb3(env, fill: int, batch: int, seed: int):
    from stable_baselines3 import SAC, HerReplayBuffer  # noqa: PLC0415

    model = SAC("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
                policy_kwargs={"net_arch": [256, 256, 256]}, batch_size=batch, learning_starts=fill + 1,
                buffer_size=1_000_000, gamma=0.98, seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=fill)  # random actions until learning_starts: fills the buffer, no update

    def run(n: int) -> None:
        model.train(gradient_steps=n, batch_size=batch)
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--fill", type=int, default=5000, help="random transitions in each buffer first")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    env_a, env_b = make_envs("HandManipulateBlockRotateXYZ-v1", 2, 0)
    learners = {"dexvision": ours(env_a, args.fill, args.batch_size, 0), "sb3": sb3(env_b, args.fill, args.batch_size, 0)}
    for run in learners.values():
        run(5)  # warm up
    rates: dict[str, list[float]] = {k: [] for k in learners}
    for r in range(args.rounds):
        for name, run in learners.items():
            tick = time.perf_counter()
            run(args.updates)
            rates[name].append(args.updates / (time.perf_counter() - tick))
        print(f"round {r + 1}: dexvision {rates['dexvision'][-1]:.1f} updates/s, sb3 {rates['sb3'][-1]:.1f} updates/s, "
              f"ratio {rates['dexvision'][-1] / rates['sb3'][-1]:.2f}", flush=True)
    for name, values in rates.items():
        print(f"{name}: median {statistics.median(values):.1f} updates/s of batch {args.batch_size} "
              f"({statistics.median(values) * args.batch_size:.0f} samples/s), {args.threads} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
