"""How a pixel student's goals fail, greedy against sampled actions, from the same starts.

The evaluation protocol plays a policy's most likely action (greedy). A gimbal-block student that clones a
bang-bang teacher (every actuator at its top speed, one way or the other) through a pose model with ~15 deg
error does far better with sampled actions than greedy ones: this benchmark says where its greedy goals go
wrong. For each mode it plays the same starts (each environment's first episode is the same in both; what
follows depends on the actions) and, for every goal that ran out of time, looks at the goal's
last `--window` steps: the block's true distance to the goal (closest and farthest), the share of actions
at an extreme bin, and the share of steps on which an actuator reversed its direction. A student circling
its goal outside the success threshold shows a closest distance beyond the threshold, extreme actions
and frequent reversals.

    python benchmarks/greedy_student.py --checkpoint out/demo/policy-student/checkpoint.pt --episodes 30 \\
        --out out/demo/greedy-student.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from dexvision.envs.episodes import MAX_PARALLEL, obs_tensors
from dexvision.envs.workers import make_env
from dexvision.errors import UserError, cli
from dexvision.policy.checkpoint import build_policy, env_config_of, load_policy_checkpoint
from dexvision.sim.rotations import quat_angle


def failed_goal_stats(traces: list[list[tuple[float, np.ndarray]]], bins: int, window: int) -> dict:
    """Summary of failed goals, each a list of (true distance after the step, action bins) over the goal's
    steps: medians over goals of the closest and farthest distance in its last `window` steps, and the
    shares of those steps' actions at an extreme bin (0 or bins - 1) and of actuator reversals (the action's
    side of the middle bin flips from one step to the next)."""
    if not traces:
        return {"failed_goals": 0}
    closest, farthest, extreme, reversals = [], [], [], []
    middle = (bins - 1) / 2
    for trace in traces:
        last = trace[-window:]
        dist = [d for d, _ in last]
        acts = np.stack([a for _, a in last])
        closest.append(min(dist))
        farthest.append(max(dist))
        extreme.append(float(np.isin(acts, (0, bins - 1)).mean()))
        side = np.sign(acts - middle)
        flips = (side[1:] * side[:-1]) < 0
        reversals.append(float(flips.mean()) if len(flips) else 0.0)
    return {"failed_goals": len(traces), "closest_rad_median": statistics.median(closest),
            "farthest_rad_median": statistics.median(farthest),
            "extreme_action_share": statistics.fmean(extreme), "reversal_share": statistics.fmean(reversals)}


@torch.no_grad()
def play(model, env, episodes: int, greedy: bool, seed: int, window: int) -> dict:
    """Greedy or sampled episodes; their successes and the summary of their failed goals."""
    n = env.num_envs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    generator = torch.Generator().manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    state, starts = model.initial_state(n), torch.ones(n)
    current: list[list] = [[] for _ in range(n)]
    failed, successes = [], []
    while len(successes) < episodes:
        action, *_, state = model.get_action_and_value(obs_tensors(obs, "cpu"), state, starts, greedy=greedy,
                                                       generator=generator)
        acts = action.numpy()
        obs, _, _, _, info = env.step(acts)
        dist = quat_angle(info["achieved_quat"], info["step_goal"])
        done = info["done_mask"]
        for i in range(n):
            current[i].append((float(dist[i]), acts[i].copy()))
            reached = dist[i] < env.cfg.success_threshold
            if done[i] and quota[i] > 0:
                quota[i] -= 1
                successes.append(int(info["episode_successes"][i]))
                if not reached and not info["dropped"][i]:
                    failed.append(current[i])
            if reached or done[i]:
                current[i] = []
        starts = torch.from_numpy(done.astype(np.float32))
    total = sum(successes)
    return {"greedy": greedy, "episodes": len(successes), "mean_successes": statistics.fmean(successes),
            "median_successes": statistics.median(successes),
            "success_per_goal": total / (total + len(failed)) if total + len(failed) else 0.0,
            "successes": successes, **failed_goal_stats(failed, env.cfg.action_bins, window)}


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a gimbal-block policy checkpoint (discrete actions)")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--window", type=int, default=20, help="last steps of a failed goal to summarize")
    p.add_argument("--out", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.window < 1:
        raise UserError(f"--episodes and --window must be >= 1, got {args.episodes} and {args.window}")
    ckpt = load_policy_checkpoint(args.checkpoint)
    # an extreme bin is a top speed and a reversal a change of direction for the gimbal's velocity motors only
    # (the hand's bins are joint targets), and a dropped block would end goals this summary does not count
    if ckpt["task"] != "gimbal-block" or ckpt["env_config"].get("action_type", "discrete") != "discrete":
        raise UserError("this benchmark reads the gimbal's action bins: it needs a gimbal-block policy with discrete "
                        "actions")
    model = build_policy(ckpt)
    results = []
    for greedy in (True, False):
        env = make_env(env_config_of(ckpt), min(args.episodes, MAX_PARALLEL), ckpt["obs"], 0,
                       torch.get_num_threads() if ckpt["obs"] == "pixels" else 0)
        try:
            r = play(model, env, args.episodes, greedy, args.seed, args.window)
        finally:
            env.close()
        results.append(r)
        line = (f"{'greedy' if greedy else 'sampled':>7}: {r['mean_successes']:.1f} successes per episode "
                f"(median {r['median_successes']:g}), {r['success_per_goal']:.3f} per goal; {r['failed_goals']} "
                f"failed goals")
        if r["failed_goals"]:
            line += (f": over their last {args.window} steps closest {r['closest_rad_median']:.2f} rad, farthest "
                     f"{r['farthest_rad_median']:.2f} (medians), actions at an extreme bin "
                     f"{r['extreme_action_share']:.0%}, reversals {r['reversal_share']:.0%}")
        print(line, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"checkpoint": args.checkpoint, "argv": sys.argv, "results": results},
                                             indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
