"""Hand physics profiles: does the fast hand behave like the reference one, and how fast do envs step?

    python benchmarks/hand_physics.py                 # all three parts, markdown tables
    python benchmarks/hand_physics.py --parts hold    # only the grasp checks
    python benchmarks/hand_physics.py --parts env --seconds 10

hold:    settled in-hand states (drawn under the reference physics) held for 2 s under their hold
         commands in each profile: blocks still on the hand, median block drift, control steps/s.
active:  the same states driven for 4 s by the same random relative actions (what an untrained
         policy does) in each profile: blocks dropped, median block rotation; the per-profile
         numbers should match closely if the fast hand is to stand in for the reference one.
env:     BlockReorientEnv throughput (state observations, actions near the hold bins) in this
         process for both profiles, then EnvWorkers with 1 and 2 worker processes (fast profile;
         --env-workers 1 2 4 8 16 for another list).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import mujoco
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dexvision.envs.task import BlockReorientEnv, EnvConfig  # noqa: E402
from dexvision.envs.workers import EnvWorkers  # noqa: E402
from dexvision.sim.rotations import quat_angle  # noqa: E402
from dexvision.sim.sampler import SamplerConfig, StateSampler  # noqa: E402
from dexvision.sim.scenes import PHYSICS_PROFILES, load_scene  # noqa: E402

CONTROL_PERIOD = 0.04


def reference_states(n: int, seed: int = 0) -> list:
    sampler = StateSampler(load_scene("hand-block", "reference"), SamplerConfig())
    rng = np.random.default_rng(seed)
    return [sampler.sample(rng) for _ in range(n)]


def _start(model, data, state) -> None:
    mujoco.mj_resetData(model, data)
    data.qpos[:], data.qvel[:], data.ctrl[:] = state.qpos, state.qvel, state.ctrl
    mujoco.mj_forward(model, data)


def hold(states: list) -> list[dict]:
    rows = []
    for physics in PHYSICS_PROFILES:
        m = load_scene("hand-block", physics).model
        d = mujoco.MjData(m)
        substeps = int(round(CONTROL_PERIOD / m.opt.timestep))
        kept, drift, steps, start = 0, [], 0, time.perf_counter()
        for state in states:
            _start(m, d, state)
            p0 = d.body("object").xpos.copy()
            for _ in range(int(round(2.0 / CONTROL_PERIOD))):
                mujoco.mj_step(m, d, nstep=substeps)
                steps += 1
            kept += d.body("object").xpos[2] > 0.1
            drift.append(np.linalg.norm(d.body("object").xpos - p0))
        rate = steps / (time.perf_counter() - start)
        rows.append({"profile": physics, "timestep_ms": 1000 * m.opt.timestep, "substeps": substeps,
                     "kept": f"{kept}/{len(states)}", "median_drift_mm": 1000 * float(np.median(drift)),
                     "control_steps_per_s": rate})
    return rows


def active(states: list, seconds: float = 4.0, relative_step: float = 0.1) -> list[dict]:
    rows = []
    for physics in PHYSICS_PROFILES:
        m = load_scene("hand-block", physics).model
        d = mujoco.MjData(m)
        substeps = int(round(CONTROL_PERIOD / m.opt.timestep))
        low, high = m.actuator_ctrlrange.T
        dropped, turned, unstable = 0, [], 0
        for i, state in enumerate(states):
            rng = np.random.default_rng(1000 + i)  # the same action sequence in both profiles
            _start(m, d, state)
            q0 = d.body("object").xquat.copy()
            target = state.ctrl.copy()
            for _ in range(int(round(seconds / CONTROL_PERIOD))):
                target = np.clip(target + rng.uniform(-1, 1, m.nu) * relative_step * (high - low), low, high)
                d.ctrl[:] = target
                mujoco.mj_step(m, d, nstep=substeps)
                if d.body("object").xpos[2] < 0.1:
                    dropped += 1
                    break
            else:
                turned.append(float(quat_angle(q0, d.body("object").xquat)))
            unstable += d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number
        rows.append({"profile": physics, "dropped": f"{dropped}/{len(states)}",
                     "median_rotation_deg_of_kept": float(np.degrees(np.median(turned))) if turned else float("nan"),
                     "solver_warnings": unstable})
    return rows


def _rate(env, seconds: float) -> float:
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    middle = env.cfg.action_bins // 2
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        actions = np.clip(middle + rng.integers(-1, 2, (env.num_envs, env.nu)), 0, env.cfg.action_bins - 1)
        env.step(actions)
        steps += env.num_envs
    return steps / (time.perf_counter() - start)


def env_throughput(seconds: float, num_envs: int, worker_counts: tuple[int, ...] = (1, 2)) -> list[dict]:
    rows = []
    for physics in PHYSICS_PROFILES:
        cfg = EnvConfig(task="hand-block", physics=physics, action_mode="relative", goal_timeout=100)
        env = BlockReorientEnv(cfg, num_envs)
        rows.append({"profile": physics, "processes": "1 (in process)", "num_envs": num_envs,
                     "env_steps_per_s": _rate(env, seconds)})
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
        env.close()
    cfg = EnvConfig(task="hand-block", physics="fast", action_mode="relative", goal_timeout=100)
    for workers in worker_counts:
        env = EnvWorkers(cfg, num_envs, workers)
        try:
            rows.append({"profile": "fast", "processes": f"{workers} env worker(s)", "num_envs": num_envs,
                         "env_steps_per_s": _rate(env, seconds)})
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
        finally:
            env.close()
    return rows


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:,.1f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["hold", "active", "env"], choices=["hold", "active", "env"])
    p.add_argument("--states", type=int, default=30, help="settled states for the hold and active checks")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per throughput measurement")
    p.add_argument("--num-envs", type=int, default=128)
    p.add_argument("--env-workers", nargs="+", type=int, default=[1, 2], help="env worker counts (default 1 2)")
    p.add_argument("--json", help="also write the environment throughput rows to this JSON file")
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"MuJoCo {mujoco.__version__}\n")
    states = reference_states(args.states) if {"hold", "active"} & set(args.parts) else []
    if "hold" in args.parts:
        print("hold (2 s under the hold commands):\n" + table(hold(states)) + "\n")
    if "active" in args.parts:
        print("active (4 s of random relative actions, same sequences):\n" + table(active(states)) + "\n")
    if "env" in args.parts:
        rows = env_throughput(args.seconds, args.num_envs, tuple(args.env_workers))
        print("environment throughput:\n" + table(rows) + "\n")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        first = rows[len(PHYSICS_PROFILES)]
        for n, r in zip(args.env_workers[1:], rows[len(PHYSICS_PROFILES) + 1:]):
            print(f"{args.env_workers[0]} -> {n} env workers: {r['env_steps_per_s'] / first['env_steps_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
