"""The off-policy learner on the anchor's own environment: gymnasium-robotics' HandManipulateBlock tasks.

    .venv/bin/python benchmarks/her_anchor.py --env HandManipulateBlockRotateZ-v1 --minutes 20
    .venv/bin/python benchmarks/her_anchor.py --env HandManipulateBlockRotateXYZ-v1 --minutes 60 --threads 2

Trains dexvision's soft actor-critic with 'future' hindsight relabelling (dexvision.policy.sac: the
same HerBuffer, TwinQ and update as `train-policy --algo sac`) through the environment's standard
Gymnasium API: its observation and desired goal as the actor's inputs, its own `compute_reward`
(sparse: -1 until within 0.1 rad) for original and relabelled goals alike, no termination, the
100-step time limit bootstrapped from the final observation. Every `--eval-every` env steps it plays
`--eval-episodes` greedy episodes and records the success rate at their last step (the figure
Plappert et al. 2018 plot). Writes OUT/curve.jsonl, OUT/curve.png and OUT/summary.json.

gymnasium-robotics 1.4.2's hand environments fail on MuJoCo 4.0 at construction: its mujoco_utils
compares `model.jnt_type[i]` (an int) with the `mjtJoint` enum, which no longer compare equal. The
benchmark hands that module a view of `mujoco` whose joint types are plain ints (`patch_mujoco_utils`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from dexvision.policy.model import ActorCritic, PolicyConfig
from dexvision.policy.sac import HerBuffer, SacConfig, SacLearner


def patch_mujoco_utils() -> None:
    """gymnasium-robotics' mujoco_utils sees joint types as ints, which is what model.jnt_type holds."""
    import mujoco  # noqa: PLC0415
    from gymnasium_robotics.utils import mujoco_utils  # noqa: PLC0415

    joints = types.SimpleNamespace(**{name: int(getattr(mujoco.mjtJoint, name))
                                      for name in ("mjJNT_FREE", "mjJNT_BALL", "mjJNT_SLIDE", "mjJNT_HINGE")})
    view = types.ModuleType("mujoco_int_joints")
    view.__getattr__ = lambda name: getattr(mujoco, name)  # everything else is mujoco's own
    view.mjtJoint = joints
    mujoco_utils.mujoco = view


def make_envs(name: str, n: int, seed: int) -> list:
    import gymnasium as gym  # noqa: PLC0415
    import gymnasium_robotics  # noqa: PLC0415

    patch_mujoco_utils()
    gym.register_envs(gymnasium_robotics)
    envs = [gym.make(name) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    return envs


def actor_for(obs_dim: int, goal_dim: int, nu: int) -> ActorCritic:
    inputs = {"observation": obs_dim, "desired_goal": goal_dim}
    return ActorCritic(PolicyConfig(policy_inputs=inputs, value_inputs=inputs, num_actions=nu, embed_dim=256,
                                    core="mlp", mlp_hidden=[256, 256], action_dist="tanh_gaussian",
                                    normalize_obs=True))


@torch.no_grad()
def act(actor: ActorCritic, obs: np.ndarray, goal: np.ndarray, greedy: bool) -> np.ndarray:
    x = {"observation": torch.from_numpy(obs).float(), "desired_goal": torch.from_numpy(goal).float()}
    params = actor.policy_params(x)
    pre = params[..., 0] if greedy else params[..., 0] + params[..., 1].exp() * torch.randn_like(params[..., 0])
    return torch.tanh(pre).numpy()


def evaluate(actor: ActorCritic, envs: list, episodes: int, seed: int) -> float:
    """Success rate at the last step of `episodes` greedy episodes (played len(envs) at a time)."""
    wins, played = 0, 0
    while played < episodes:
        batch = envs[: min(len(envs), episodes - played)]
        obs = [env.reset(seed=seed + played + i)[0] for i, env in enumerate(batch)]
        done = np.zeros(len(batch), bool)
        last = np.zeros(len(batch))
        while not done.all():
            a = act(actor, np.stack([o["observation"] for o in obs]), np.stack([o["desired_goal"] for o in obs]), True)
            for i, env in enumerate(batch):
                if done[i]:
                    continue
                obs[i], _, term, trunc, info = env.step(a[i])
                if term or trunc:
                    done[i], last[i] = True, info["is_success"]
        wins += int(last.sum())
        played += len(batch)
    return wins / episodes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HandManipulateBlockRotateZ-v1")
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--steps", type=int, default=10_000_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--updates-per-step", type=float, default=1.0, help="gradient steps per vector step")
    p.add_argument("--warmup", type=int, default=5000)
    p.add_argument("--eval-every", type=int, default=20_000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/bench/her-anchor")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    envs = make_envs(args.env, args.num_envs, args.seed)
    test_envs = make_envs(args.env, min(args.eval_episodes, 10), args.seed + 10_000)
    first = [env.reset(seed=args.seed + i)[0] for i, env in enumerate(envs)]
    obs_dim, goal_dim = first[0]["observation"].size, first[0]["desired_goal"].size
    nu = envs[0].action_space.shape[0]
    compute_reward = envs[0].unwrapped.compute_reward
    sac = SacConfig(batch_size=args.batch_size, updates_per_step=args.updates_per_step, warmup=args.warmup,
                    buffer_size=1_000_000)
    actor = actor_for(obs_dim, goal_dim, nu)
    learner = SacLearner(actor, sac, args.lr, 0.98, torch.device("cpu"))
    buffer = HerBuffer(sac.buffer_size, args.num_envs, {"observation": obs_dim}, nu, goal_dim, sac.her_k, args.seed)
    reward_fn = lambda achieved, goal, terminal: compute_reward(achieved, goal, None).astype(np.float32)  # noqa: E731
    goal_obs_fn = lambda obs, goal: {"desired_goal": goal.astype(np.float32)}  # noqa: E731
    rng = np.random.default_rng(args.seed)
    obs = first
    steps = updates = 0
    credit, next_eval, t_start = 0.0, 0, time.perf_counter()
    seconds = {"env": 0.0, "update": 0.0}
    curve = (out / "curve.jsonl").open("w")
    rows = []
    while steps < args.steps:
        elapsed = time.perf_counter() - t_start
        if steps >= next_eval or elapsed > 60 * args.minutes:
            rate = evaluate(actor, test_envs, args.eval_episodes, 10_000)
            row = {"env_steps": steps, "minutes": elapsed / 60, "updates": updates, "success_rate": rate,
                   "env_fraction": seconds["env"] / max(elapsed, 1e-9), "update_fraction": seconds["update"] / max(elapsed, 1e-9)}
            rows.append(row)
            curve.write(json.dumps(row) + "\n")
            curve.flush()
            print(json.dumps(row), flush=True)
            next_eval += args.eval_every
            if elapsed > 60 * args.minutes:
                break
        o = np.stack([x["observation"] for x in obs]).astype(np.float32)
        g = np.stack([x["desired_goal"] for x in obs])
        actor.observe({"observation": torch.from_numpy(o), "desired_goal": torch.from_numpy(g).float()})
        if steps < args.warmup:
            a = rng.uniform(-1, 1, (args.num_envs, nu))
        else:
            a = act(actor, o, g, False)
        tick = time.perf_counter()
        nxt, achieved, done = [], [], np.zeros(args.num_envs, bool)
        for i, env in enumerate(envs):
            x, _, term, trunc, _ = env.step(a[i])
            nxt.append(x["observation"])
            achieved.append(x["achieved_goal"])
            if term or trunc:
                done[i] = True
                x, _ = env.reset()
            obs[i] = x
        seconds["env"] += time.perf_counter() - tick
        buffer.add({"observation": o}, a, {"observation": np.stack(nxt).astype(np.float32)}, np.stack(achieved), g,
                   np.zeros(args.num_envs, bool), done)
        steps += args.num_envs
        credit += args.updates_per_step
        tick = time.perf_counter()
        while steps >= args.warmup and credit >= 1.0:
            learner.update(buffer.sample(args.batch_size, reward_fn, goal_obs_fn))
            updates += 1
            credit -= 1.0
        credit = min(credit, 1.0) if steps < args.warmup else credit
        seconds["update"] += time.perf_counter() - tick
    curve.close()
    summary = {"env": args.env, "args": vars(args), "final": rows[-1], "best": max(r["success_rate"] for r in rows),
               "env_steps_per_s": steps / (time.perf_counter() - t_start),
               "samples_per_transition": args.updates_per_step * args.batch_size / args.num_envs,
               "curve": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(rows, args.env, out / "curve.png")
    print(f"{args.env}: success {rows[-1]['success_rate']:.2f} after {steps} env steps, {updates} updates "
          f"in {rows[-1]['minutes']:.1f} min; curve in {out / 'curve.png'}")
    return 0


def plot(rows: list[dict], name: str, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["env_steps"] / 1e6 for r in rows], [r["success_rate"] for r in rows], marker="o")
    ax.set_xlabel("env steps (M)")
    ax.set_ylabel("greedy success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{name}: SAC + HER (dexvision.policy.sac)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
