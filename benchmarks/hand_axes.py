"""Which rotations has a hand-block policy learned? Success at one goal, by rotation axis and angle.

    python benchmarks/hand_axes.py --checkpoint runs/hand-teacher/checkpoint.pt
    python benchmarks/hand_axes.py --checkpoint runs/hand-teacher/checkpoint.pt --angles 0.8 1.2 1.6 --envs 64

Each environment starts from a settled in-hand state (uniformly random block orientation) and is
given one goal: the block's orientation turned by ANGLE about the world (hand) x, y or z axis, half
of the environments each way. The policy acts greedily until that goal is reached (within the task's
0.4 rad), the block drops, or the goal times out. Per axis and angle: the share reached, the share
dropped, and the median control steps to reach it. A teacher that climbs its curriculum by getting
good about one axis shows it here; the full task needs every axis at every angle up to pi.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dexvision.errors import UserError, cli  # noqa: E402
from dexvision.policy.checkpoint import build_policy, env_config_of, load_policy_checkpoint  # noqa: E402
from dexvision.envs.task import BlockReorientEnv  # noqa: E402
from dexvision.envs.episodes import obs_tensors  # noqa: E402
from dexvision.sim.rotations import axis_angle_to_quat  # noqa: E402

AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


@torch.no_grad()
def one_goal(model, env: BlockReorientEnv, axis: tuple[float, ...], angle: float, seed: int) -> dict:
    """Reset every environment, give each the goal `angle` about +-`axis`, play until it resolves."""
    n = env.num_envs
    env.reset(seed=seed)
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    obs = env.turn_goals(axis_angle_to_quat(signs * np.asarray(axis), np.full(n, angle)))
    state = model.initial_state(n, torch.device("cpu"))
    starts = torch.ones(n)
    outcome = np.zeros(n, dtype=int)  # 0: pending, 1: reached, 2: dropped, 3: timed out
    steps = np.zeros(n, dtype=int)
    for t in range(1, env.cfg.goal_timeout + 2):
        action, *_, state = model.get_action_and_value(obs_tensors(obs, torch.device("cpu")), state, starts,
                                                       greedy=True)
        obs, _, _, _, info = env.step(action.numpy())
        starts = torch.zeros(n)
        done = info["done_mask"]
        reached = np.where(done, info["episode_successes"], env.successes) >= 1
        for i in np.flatnonzero(outcome == 0):
            if reached[i]:
                outcome[i], steps[i] = 1, t
            elif done[i]:
                outcome[i] = 2 if info["dropped"][i] else 3
        if not (outcome == 0).any():
            break
    ok = outcome == 1
    return {"reached": float(ok.mean()), "dropped": float((outcome == 2).mean()),
            "median_steps": float(np.median(steps[ok])) if ok.any() else None}


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a hand-block state policy (train-policy's checkpoint.pt)")
    parser.add_argument("--angles", type=float, nargs="+", default=[0.8, 1.6], help="goal angles in radians")
    parser.add_argument("--envs", type=int, default=48, help="environments (goals) per axis and angle")
    parser.add_argument("--physics", default=None, help="physics profile (default: the trained one)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    ckpt = load_policy_checkpoint(args.checkpoint)
    if ckpt["task"] != "hand-block" or ckpt["obs"] != "state":
        raise UserError(f"{args.checkpoint} is a {ckpt['task']} {ckpt['obs']} policy; this needs a hand-block "
                        "state policy")
    model = build_policy(ckpt)
    env = BlockReorientEnv(env_config_of(ckpt, args.physics), args.envs, obs="state")
    rows = []
    try:
        for angle in args.angles:
            for name, axis in AXES.items():
                rows.append({"angle": angle, "axis": name, **one_goal(model, env, axis, angle, args.seed)})
                print(f"angle {angle:.2f} axis {name}: {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        env.close()
    print(f"\n{args.checkpoint} ({ckpt['frames'] / 1e6:.2f}M frames), physics {env.cfg.physics}, "
          f"{args.envs} goals per row, {platform.machine()}, {os.cpu_count()} cores\n")
    print("| angle (rad) | axis | reached | dropped | median steps to reach |")
    print("|---|---|---|---|---|")
    for r in rows:
        steps = "-" if r["median_steps"] is None else f"{r['median_steps']:.0f}"
        print(f"| {r['angle']:.2f} | {r['axis']} | {r['reached']:.2f} | {r['dropped']:.2f} | {steps} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"checkpoint": args.checkpoint, "frames": ckpt["frames"],
                                              "physics": env.cfg.physics, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
