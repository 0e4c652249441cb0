"""Renderer throughput: dexvision's randomized pyrender renderer vs MuJoCo's own renderer.

Both draw the same 3 views of the same sampled states, in one process on the same
machine. Ours has all randomization on (a fresh draw of cameras, lights, materials,
textures and post-processing per sample); MuJoCo's draws the nominal views with no
randomization. State sampling (physics settling) is timed separately: it is the same
for any renderer.

    python benchmarks/render.py                      # both tasks, 64 and 128 px
    python benchmarks/render.py --tasks hand-block --sizes 128 --samples 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402

from dexvision.config import load_config  # noqa: E402
from dexvision.render.randomization import sample_params  # noqa: E402
from dexvision.render.renderer import Renderer  # noqa: E402
from dexvision.render.sample import DataConfig  # noqa: E402
from dexvision.sim.sampler import StateSampler  # noqa: E402
from dexvision.sim.scenes import load_scene  # noqa: E402


_KEEP_ALIVE: list = []


def _rate(fn, n: int, warmup: int = 2) -> float:
    for i in range(warmup):
        fn(i)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def bench_task(task: str, size: int, n: int, msaa: int, extra: tuple[str, ...] = ()) -> dict:
    cfg = load_config(DataConfig, None, [f"task={task}", f"render.image_size={size}",
                                         f"render.msaa_samples={msaa}", *extra])
    scene = load_scene(task)
    sampler = StateSampler(scene, cfg.sampler)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    states = [sampler.sample(rng) for _ in range(n)]
    state_rate = n / (time.perf_counter() - t0)

    ours = Renderer(load_scene(task), cfg.render)
    rand = cfg.render.randomization
    render_rng = np.random.default_rng(1)

    def render_ours(i):
        ours.render(states[i % n].qpos, sample_params(rand, scene.look_at, render_rng))

    ours_rate = _rate(render_ours, n)

    model = load_scene(task).model
    data = mujoco.MjData(model)
    model.vis.global_.fovy = rand.cameras.fov_deg
    mj = mujoco.Renderer(model, size, size)
    cams = []
    for az in rand.cameras.azimuths():
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = scene.look_at
        cam.distance = rand.cameras.distance
        cam.azimuth = az + 180.0  # MuJoCo's azimuth is the viewing direction, ours the position
        cam.elevation = -rand.cameras.elevation_deg
        cams.append(cam)

    def render_mujoco(i):
        data.qpos[:] = states[i % n].qpos
        mujoco.mj_kinematics(model, data)
        for cam in cams:
            mj.update_scene(data, cam)
            mj.render()

    mujoco_rate = _rate(render_mujoco, n)
    # Not closed: closing a MuJoCo EGL context terminates the EGL display that
    # pyrender's context shares in this process. Both go at exit.
    _KEEP_ALIVE.append(mj)
    return {"task": task, "size": size, "cameras": len(cams), "msaa": msaa, "ours": ours_rate,
            "mujoco": mujoco_rate, "ratio": ours_rate / mujoco_rate, "state_sampling": state_rate}


ABLATION = [
    ("full-resolution meshes, 4x MSAA, pyrender's GGX shader", 4, ("render.max_mesh_faces=0", "render.shading=pbr")),
    ("meshes decimated to <= 1200 triangles", 4, ("render.max_mesh_faces=1200", "render.shading=pbr")),
    ("meshes decimated to <= 300 triangles (default)", 4, ("render.shading=pbr",)),
    ("MSAA off (default)", 0, ("render.shading=pbr",)),
    ("lean shader (default): all defaults", 0, ()),
]


def ablation(n: int) -> int:
    print("| hand-block, 128 px, 3 cameras | ours samples/s | mujoco samples/s | ratio |")
    print("|---|---|---|---|")
    for name, msaa, extra in ABLATION:
        r = bench_task("hand-block", 128, n, msaa, extra)
        print(f"| {name} | {r['ours']:.1f} | {r['mujoco']:.1f} | {r['ratio']:.2f} |", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["hand-block", "gimbal-block"])
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    p.add_argument("--samples", type=int, default=60)
    p.add_argument("--msaa", nargs="+", type=int, default=[0, 4], help="MSAA sample counts to measure")
    p.add_argument("--ablation", action="store_true",
                   help="instead: hand-block at 128 px under each speed-up switched off in turn")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()
    if args.ablation:
        return ablation(args.samples)
    rows = [bench_task(t, s, args.samples, m) for t in args.tasks for s in args.sizes for m in args.msaa]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"mujoco {mujoco.__version__}")
    print("| task | size | cams | msaa | ours samples/s | mujoco samples/s | ratio | state sampling/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['size']} | {r['cameras']} | {r['msaa']} | {r['ours']:.1f} | "
              f"{r['mujoco']:.1f} | {r['ratio']:.2f} | {r['state_sampling']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
