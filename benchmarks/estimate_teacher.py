"""The state teacher acting on a pose model's estimate of the block: what a pose model is worth to a policy.

Learning Dexterity deployed its policy this way: the vision model estimates the block's pose and the
state-trained policy acts on the estimate. This benchmark plays greedy episodes of the full task on the
pixel environment the pose model was trained for (the teacher's environment, rendered at the pose model's
image size) three ways, on the same episodes:

- `true`: the teacher on the true state (its own figure, here with rendering in the loop);
- `estimate`: the block's orientation, and the rotation to the goal, replaced by the pose model's estimate
  from the cameras; the angular velocity stays the true one (a perfect rate sensor: an upper bound);
- `estimate-novel`: as `estimate`, with the angular velocity input zeroed (no rate sensor at all).

It also gives the pose model's orientation error on the states the policy visits. A pixel student that
clones this teacher through the pose model's encoder is bounded, roughly, by the `estimate` figure.

    python benchmarks/estimate_teacher.py --teacher out/demo/policy-teacher/checkpoint.pt \\
        --vision out/demo/vision-gimbal/checkpoint.pt --episodes 30 --out out/demo/estimate-teacher.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dexvision.envs.episodes import MAX_PARALLEL, obs_tensors
from dexvision.envs.rules import relative_rotation
from dexvision.envs.workers import make_env
from dexvision.policy.checkpoint import env_config_of, load_policy_checkpoint, load_teacher
from dexvision.sim.rotations import matrix_to_quat, quat_conjugate, quat_multiply, quat_to_rotvec
from dexvision.vision.checkpoint import build_model, load_checkpoint

MODES = ("true", "estimate", "estimate-novel")


def estimated_obs(obs: dict[str, np.ndarray], rotation: np.ndarray, goal_frame: str, zero_velocity: bool
                  ) -> dict[str, np.ndarray]:
    """The teacher's inputs with the block's orientation (and what follows from it) taken from `rotation`."""
    n = rotation.shape[0]
    q = matrix_to_quat(rotation)
    goal = matrix_to_quat(obs["goal_rot"].reshape(n, 3, 3))
    out = dict(obs)
    out["block_rot"] = rotation.reshape(n, 9).astype(np.float32)
    relative = (quat_multiply(goal, quat_conjugate(q)) if goal_frame == "hand"
                else quat_multiply(quat_conjugate(q), goal))
    if "relative_rotvec" in out:
        out["relative_rotvec"] = quat_to_rotvec(relative).astype(np.float32)
    if "relative_rot" in out:
        out["relative_rot"] = relative_rotation(out["block_rot"], obs["goal_rot"], goal_frame).astype(np.float32)
    if zero_velocity:
        out["block_angvel"] = np.zeros_like(out["block_angvel"])
    return out


@torch.no_grad()
def play(teacher, pose, env, episodes: int, mode: str, goal_frame: str, threshold: float, seed: int) -> dict:
    n = env.num_envs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    obs, _ = env.reset(seed=seed)
    state = teacher.initial_state(n, "cpu")
    starts = torch.ones(n)
    successes: list[int] = []
    errors: list[np.ndarray] = []
    while len(successes) < episodes:
        rotation = pose(torch.from_numpy(obs["images"]))["rotation"].numpy()
        truth = obs["block_rot"].reshape(n, 3, 3)
        cos = (np.einsum("nij,nij->n", rotation, truth) - 1) / 2
        errors.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
        if mode != "true":
            obs = estimated_obs(obs, rotation, goal_frame, zero_velocity=mode == "estimate-novel")
        inputs = obs_tensors({k: v for k, v in obs.items() if k != "images"}, torch.device("cpu"))
        action, *_, state = teacher.get_action_and_value(inputs, state, starts, greedy=True)
        obs, _, _, _, info = env.step(action.numpy())
        done = info["done_mask"]
        for i in np.flatnonzero(done & (quota > 0)):
            quota[i] -= 1
            successes.append(int(info["episode_successes"][i]))
        starts = torch.from_numpy(done.astype(np.float32))
    err = np.concatenate(errors)
    return {"mode": mode, "episodes": episodes, "mean_successes": statistics.fmean(successes),
            "median_successes": float(statistics.median(successes)), "successes": successes,
            "pose_error_deg_median": float(np.median(err)), "pose_error_deg_p90": float(np.percentile(err, 90)),
            "pose_error_above_threshold": float(np.mean(err > np.degrees(threshold)))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="a state policy checkpoint (train-policy --obs state)")
    p.add_argument("--vision", required=True, help="a pose model checkpoint (train-vision)")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--render-workers", type=int, default=torch.get_num_threads())
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)

    ckpt = load_policy_checkpoint(args.teacher)
    pose = build_model(load_checkpoint(args.vision)).eval()
    env_cfg = env_config_of(ckpt)
    render = dataclasses.replace(env_cfg.render, image_size=pose.cfg.image_size)
    env_cfg = dataclasses.replace(env_cfg, render=render)
    cams = env_cfg.render.randomization.cameras.count
    if cams != pose.cfg.num_cameras:
        raise SystemExit(f"the teacher's environment renders {cams} cameras; the pose model takes "
                         f"{pose.cfg.num_cameras}")
    teacher, _ = load_teacher(args.teacher, ckpt["task"])
    teacher.eval()
    results = []
    for mode in args.modes:
        env = make_env(env_cfg, min(args.episodes, MAX_PARALLEL), "pixels", 0, args.render_workers)
        start = time.perf_counter()
        try:
            result = play(teacher, pose, env, args.episodes, mode, env_cfg.goal_frame,
                          env_cfg.success_threshold, args.seed)
        finally:
            env.close()
        result["wall_time_s"] = time.perf_counter() - start
        results.append(result)
        print(f"{mode:>14}: {result['mean_successes']:.1f} successes per episode (median "
              f"{result['median_successes']:g}) over {args.episodes} greedy episodes; pose error on the visited "
              f"states {result['pose_error_deg_median']:.1f} deg median, p90 {result['pose_error_deg_p90']:.1f}",
              flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"teacher": str(args.teacher), "vision": str(args.vision),
                                        "argv": sys.argv, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
