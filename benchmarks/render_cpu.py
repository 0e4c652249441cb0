"""CPU time per rendered image, on the two paths that render: a policy's pixel environments and a dataset.

- policy: `--envs` hand-block environments, each with one randomization draw (its episode's), rendered in
  turn after each of `--steps` environment steps, as the pixel student's render workers do;
- dataset: the same states, each with a fresh randomization draw, as render-shards does.

CPU time (time.process_time, all threads of the process) rather than wall time: it is what a render
process costs when every core is busy, and it is less disturbed by other work on a shared machine.
Compare two checkouts side by side by running this file with each on PYTHONPATH, alternating:

    PYTHONPATH=. LP_NUM_THREADS=0 python benchmarks/render_cpu.py --size 64
    PYTHONPATH=/tmp/base LP_NUM_THREADS=1 python benchmarks/render_cpu.py --size 64   # an older checkout
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("MUJOCO_GL", "egl")

import dexvision  # noqa: E402
from dexvision.envs.task import BlockReorientEnv, EnvConfig  # noqa: E402
from dexvision.render.randomization import sample_params  # noqa: E402


def measure(size: int, envs: int, steps: int, reps: int) -> dict:
    cfg = EnvConfig(task="hand-block", action_type="continuous", action_mode="relative", goal_timeout=100)
    cfg.render.image_size = size
    env = BlockReorientEnv(cfg, envs, obs="pixels", render_workers=0)
    env.reset(seed=0)
    renderer = env._renderer._local
    rng = np.random.default_rng(0)
    states = []
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, (envs, env.nu)).astype(np.float32))
        states.append(np.stack([d.qpos for d in env.datas]))
    fresh = [sample_params(cfg.render.randomization, env.scene.look_at, rng) for _ in range(steps * envs)]
    images = steps * envs * len(env.render_params[0]["cameras"])
    times: dict[str, list[float]] = {"policy": [], "dataset": []}
    for _ in range(reps):
        start = time.process_time()
        for qpos in states:
            for i in range(envs):
                renderer.render(qpos[i], env.render_params[i])
        times["policy"].append(1000 * (time.process_time() - start) / images)
        start = time.process_time()
        for k, qpos in enumerate(states):
            for i in range(envs):
                renderer.render(qpos[i], fresh[k * envs + i])
        times["dataset"].append(1000 * (time.process_time() - start) / images)
    env.close()
    return {"size": size, "envs": envs, "images_per_rep": images, "lp_num_threads": os.environ.get("LP_NUM_THREADS"),
            "code": os.path.dirname(os.path.dirname(dexvision.__file__)),
            **{f"{k}_cpu_ms_per_image": round(min(v), 3) for k, v in times.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--reps", type=int, default=3, help="repetitions; the fastest is reported")
    args = p.parse_args()
    print(json.dumps(measure(args.size, args.envs, args.steps, args.reps)))


if __name__ == "__main__":
    main()
