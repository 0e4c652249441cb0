"""train-policy benchmarks: environment throughput, the gimbal teacher and pixel student, hand-block iterations.

    python benchmarks/policy.py env                   # vectorized env vs raw mj_step, both tasks, one core
    python benchmarks/policy.py teacher --out /tmp/pb # PPO from state, 20 min budget, eval every minute
    python benchmarks/policy.py student --out /tmp/pb --vision VISION_CKPT   # BC from pixels, 30 min
    python benchmarks/policy.py hand --out /tmp/pb --vision VISION_CKPT      # one PPO + one BC iteration
    python benchmarks/policy.py hand-student --out /tmp/pb [--teacher T --vision V] [--iterations 6]
                                                      # the shipped hand student's frames/s, and where they go
    python benchmarks/policy.py curves --out /tmp/pb  # docs/policy-curves.png from the two runs above
    python benchmarks/policy.py hand-teacher --out /tmp/pb   # hand-teacher.yaml for 120 min, then evaluations
    python benchmarks/policy.py hand-curves --out /tmp/pb    # docs/hand-teacher-curves.png
    python benchmarks/policy.py hand-curves --runs A=/tmp/runs/a B=/tmp/runs/b --png docs/x.png   # several runs

The teacher and student parts run the real `train-policy` command with the shipped
configs (configs/policy/) and report the frames and wall time at which the median
successes per episode first reached the goal (teacher: 25; student: 80% of the
teacher's final greedy median), then the final greedy evaluation. The hand teacher
part trains configs/policy/hand-teacher-ppo.yaml (greedy evaluation every 10 minutes on the
full task), reports frames and minutes to medians of 1, 3 and 10, and evaluates the
final checkpoint on 20 episodes under both physics profiles (transfer: reference /
fast).

The hand-student part times the shipped configs/policy/hand-student-bc.yaml (pixels, frozen
pretrained encoder) for a few iterations: frames/s including the update, and the shares
of each iteration spent stepping the environments (physics and rendering), in the
encoder's forward pass and in the update. Its throughput does not depend on how good
the teacher and the pose model are, so without --teacher / --vision it first makes
small ones (a 20k-frame hand teacher, a 10-step pose model on 64 renders).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def env_throughput(seconds: float = 5.0) -> list[dict]:
    """Env steps/s of the vectorized state env and raw mj_step/s of the same model, same core."""
    import mujoco  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from dexvision.envs.task import BlockReorientEnv, EnvConfig  # noqa: PLC0415

    rows = []
    for task, n in (("gimbal-block", 64), ("hand-block", 16)):
        env = BlockReorientEnv(EnvConfig(task=task, physics="reference"), n)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        middle = env.cfg.action_bins // 2
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            # actions near the middle bins: the hand keeps the block (few resets, as in a trained policy)
            actions = np.clip(middle + rng.integers(-1, 2, (n, env.nu)), 0, env.cfg.action_bins - 1)
            _, _, _, _, info = env.step(actions)
            steps += n
        env_rate = steps / (time.perf_counter() - start)
        # raw: the same model and a state from the env, stepped with nothing else going on
        model, data = env.models[0], env.datas[0]
        raw_steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            mujoco.mj_step(model, data, nstep=1000)
            raw_steps += 1000
        raw_rate = raw_steps / (time.perf_counter() - start)
        physics_rate = env_rate * env.substeps
        rows.append({"task": task, "num_envs": n, "env_steps_per_s": env_rate, "substeps": env.substeps,
                     "env_physics_steps_per_s": physics_rate, "raw_mj_steps_per_s": raw_rate,
                     "ratio": physics_rate / raw_rate})
    return rows


def run_module(module: str, args: list[str], log: Path) -> None:
    """`python -m module args...` from the repository root, its output appended to `log`."""
    cmd = [sys.executable, "-m", module, *args]
    print("$", " ".join(cmd[2:]), flush=True)
    with open(log, "a") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if code:  # the command's own last line says why (a user error is one line); the rest is in the log
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
        raise SystemExit(f"{module} exited with {code}: {lines[-1] if lines else '(no output)'} (log: {log})")


def train(args: list[str], log: Path) -> None:
    log.unlink(missing_ok=True)  # one log per run
    run_module("dexvision.policy.train", args, log)


def first_reaching(run: Path, key: str, threshold: float) -> dict | None:
    for line in (run / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m.get(key, -1) >= threshold:
            return {"frames": int(m["step"]), "wall_min": m.get("perf/wall_time_s", 0) / 60, key: m[key]}
    return None


def teacher(out: Path, minutes: float) -> dict:
    run = out / "teacher"
    if not (run / "metrics.json").exists():
        train(["--config", "configs/policy/gimbal-teacher.yaml", "--steps", "100M", "--out", str(run),
               "--set", f"time_limit_min={minutes}", "--set", "eval_every_min=1", "--set", "eval_episodes=20"],
              out / "teacher.log")
    result = json.loads((run / "metrics.json").read_text())
    return {"reached_25_eval": first_reaching(run, "eval/median_successes", 25),
            "reached_25_train": first_reaching(run, "charts/median_successes", 25),
            "final": result["evaluation"], "frames": result["frames"], "wall_min": result["wall_time_s"] / 60}


def student(out: Path, vision: str, minutes: float) -> dict:
    run, teacher_run = out / "student", out / "teacher"
    target = 0.8 * json.loads((teacher_run / "metrics.json").read_text())["evaluation"]["median_successes"]
    if not (run / "metrics.json").exists():
        train(["--config", "configs/policy/gimbal-student-bc.yaml", "--teacher", str(teacher_run / "checkpoint.pt"),
               "--init-vision", vision, "--steps", "100M", "--out", str(run),
               "--set", f"time_limit_min={minutes}", "--set", "eval_episodes=20"], out / "student.log")
    result = json.loads((run / "metrics.json").read_text())
    return {"target_median": target, "reached_train": first_reaching(run, "charts/median_successes", target),
            "final": result["evaluation"], "frames": result["frames"], "wall_min": result["wall_time_s"] / 60}


def hand(out: Path, vision: str) -> dict:
    rows = {}
    common = ["--task", "hand-block", "--set", "eval_episodes=1", "--set", "env.max_successes=1",
              "--set", "env.goal_timeout=20", "--num-envs", "16", "--set", "rollout=40"]
    train(["--steps", "640", "--out", str(out / "hand-ppo"), *common], out / "hand-ppo.log")
    teacher_ckpt = str(out / "hand-ppo" / "checkpoint.pt")
    train(["--obs", "pixels", "--algo", "bc", "--teacher", teacher_ckpt, "--init-vision", vision, "--steps", "640",
           "--out", str(out / "hand-bc"), "--set", "epochs=1", "--set", "minibatches=16", *common],
          out / "hand-bc.log")
    for name in ("hand-ppo", "hand-bc"):
        lines = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
        it = next(m for m in lines if "perf/env_steps_per_s" in m)
        rows[name] = {"env_steps_per_s": it["perf/env_steps_per_s"], "frames_per_s": it["perf/frames_per_s"]}
    return rows


def hand_student(out: Path, teacher: str | None, vision: str | None, iterations: int, sets: list[str]) -> dict:
    """The shipped hand student for `iterations` iterations; medians over all but the first (warm-up)."""
    if teacher is None:
        teacher = str(out / "small-teacher" / "checkpoint.pt")
        if not Path(teacher).exists():
            train(["--config", "configs/policy/hand-teacher-ppo.yaml", "--steps", "20k",
                   "--out", str(out / "small-teacher"), "--set", "eval_episodes=1"], out / "small-teacher.log")
    if vision is None:
        vision = str(out / "small-vision" / "checkpoint.pt")
        if not Path(vision).exists():
            run_module("dexvision.datasets.render_shards", ["--n", "64", "--shard-size", "32", "--task", "hand-block",
                       "--image-size", "64", "--out", str(out / "small-renders")], out / "small-vision.log")
            run_module("dexvision.vision.train", ["--data", str(out / "small-renders"), "--arch", "impala", "--steps",
                       "10", "--batch-size", "16", "--num-workers", "1", "--out", str(out / "small-vision"),
                       "--set", "val_every=1000"], out / "small-vision.log")
    run = out / "hand-student"
    if run.exists():
        import shutil  # noqa: PLC0415

        shutil.rmtree(run)
    from dexvision.config import apply_override, read_yaml  # noqa: PLC0415

    config = read_yaml(ROOT / "configs" / "policy" / "hand-student-bc.yaml")
    for kv in sets:
        apply_override(config, kv)
    frames = iterations * int(config["num_envs"]) * int(config["rollout"])
    started = time.perf_counter()
    # the overrides first: the benchmark's own settings (frames, logging, no evaluation) come last and win
    train(["--config", "configs/policy/hand-student-bc.yaml", "--teacher", teacher, "--init-vision", vision,
           *[x for kv in sets for x in ("--set", kv)], "--steps", str(frames), "--out", str(run),
           "--set", "eval_every_min=100000", "--set", "eval_episodes=1", "--set", "log_every_s=0"],
          out / "hand-student.log")
    rows = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "perf/frames_per_s" in m]
    if len(rows) < 2:
        raise SystemExit(f"hand-student: {len(rows)} iteration(s) logged; need --iterations >= 2")
    keys = {"frames_per_s": "perf/frames_per_s", "env_steps_per_s": "perf/env_steps_per_s",
            "collect_fraction": "perf/collect_fraction", "env_fraction": "perf/env_fraction",
            "vision_fraction": "perf/vision_fraction"}
    later = rows[1:]
    result = {k: statistics.median([r[m] for r in later]) for k, m in keys.items() if all(m in r for r in later)}
    result["update_fraction"] = 1.0 - result["collect_fraction"]
    result.update({"iterations": len(rows),
                   "per_iteration_frames_per_s": [round(r["perf/frames_per_s"], 1) for r in rows],
                   "cores_usable": len(os.sched_getaffinity(0)), "sets": sets,
                   "wall_s": time.perf_counter() - started, "machine": machine()})
    return result


def evaluate(checkpoint: Path, physics: str, log: Path) -> dict:
    out = log.with_suffix(".json")
    log.unlink(missing_ok=True)
    run_module("dexvision.policy.evaluate", ["--checkpoint", str(checkpoint), "--episodes", "20", "--physics", physics,
               "--out", str(out)], log)
    return json.loads(out.read_text())


def bounded_evaluation(checkpoint: Path, physics: str, max_angle: float, episodes: int = 20) -> dict:
    """Greedy episodes with goals within `max_angle` of the block (the curriculum's bound), under `physics`:
    where the full task is still out of reach, this is where transfer between profiles can be read."""
    from dexvision.policy.checkpoint import build_policy, env_config_of, load_policy_checkpoint  # noqa: PLC0415
    from dexvision.envs.episodes import run_episodes, summarize_episodes  # noqa: PLC0415
    from dexvision.envs.workers import make_env  # noqa: PLC0415

    ckpt = load_policy_checkpoint(checkpoint)
    env = make_env(env_config_of(ckpt, physics), episodes, "state", env_workers=min(2, os.cpu_count() or 1))
    try:
        env.set_goal_max_angle(max_angle)
        summary = summarize_episodes(run_episodes(build_policy(ckpt), env, episodes))
    finally:
        env.close()
    return {"physics": physics, "goal_max_angle": max_angle, **summary}


def hand_teacher(out: Path, minutes: float) -> dict:
    run = out / "hand-teacher"
    if not (run / "metrics.json").exists():
        train(["--config", "configs/policy/hand-teacher-ppo.yaml", "--steps", "1G", "--out", str(run),
               "--set", f"time_limit_min={minutes}"], out / "hand-teacher.log")
    result = json.loads((run / "metrics.json").read_text())
    evals = {p: evaluate(run / "checkpoint.pt", p, out / f"hand-teacher-eval-{p}.log") for p in ("fast", "reference")}
    fast, ref = evals["fast"]["median_successes"], evals["reference"]["median_successes"]
    bound = result["curriculum"]["max_angle"]
    bounded = {p: bounded_evaluation(run / "checkpoint.pt", p, bound) for p in ("fast", "reference")}
    return {"frames": result["frames"], "wall_min": result["wall_time_s"] / 60,
            "frames_per_s": result["frames_per_s"], "curriculum": result["curriculum"],
            **{f"reached_{k}_eval": first_reaching(run, "eval/median_successes", k) for k in (1, 3, 10)},
            **{f"reached_{k}_train": first_reaching(run, "charts/median_successes", k) for k in (1, 3, 10)},
            "final_fast": evals["fast"], "final_reference": evals["reference"],
            "transfer_reference_over_fast": ref / fast if fast else None,
            "at_curriculum_bound": bounded,
            "bounded_transfer_mean": (bounded["reference"]["mean_successes"] / bounded["fast"]["mean_successes"]
                                      if bounded["fast"]["mean_successes"] else None)}


def _smoothed(values: list[float], width: int = 10) -> list[float]:
    return [sum(values[max(0, i - width + 1):i + 1]) / len(values[max(0, i - width + 1):i + 1])
            for i in range(len(values))]


def hand_curves(runs: dict[str, Path], png: Path) -> None:
    """Training successes (curriculum goals), full-task greedy evaluations and the curriculum's bound
    against frames, one colour per run (label -> run directory)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for k, (label, run) in enumerate(runs.items()):
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        timed = [m for m in lines if "perf/wall_time_s" in m]
        train = [(m["step"] / 1e6, m["charts/successes_per_episode"]) for m in timed
                 if "charts/successes_per_episode" in m]
        evals = [(m["step"] / 1e6, m["eval/median_successes"]) for m in timed if "eval/median_successes" in m]
        if train:
            x, y = zip(*train)
            axes[0].plot(x, y, lw=0.5, alpha=0.3, color=f"C{k}")
            axes[0].plot(x, _smoothed(list(y)), color=f"C{k}", label=f"{label}: training episodes (curriculum goals)")
        if evals:
            axes[0].plot(*zip(*evals), "o--", color=f"C{k}", ms=4, label=f"{label}: greedy, full task, median of 20")
        angle = [(m["step"] / 1e6, m["charts/goal_max_angle"]) for m in timed if "charts/goal_max_angle" in m]
        if angle:
            axes[1].plot(*zip(*angle), color=f"C{k}", label=label)
    axes[0].set(title="hand-block PPO teacher (state, fast physics, 2 CPU cores)", xlabel="frames (M)",
                ylabel="successes per episode")
    axes[0].legend(fontsize=7, loc="upper left")
    axes[1].set(title="curriculum: goal distance bound", xlabel="frames (M)", ylabel="radians", ylim=(0, 3.3))
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def curves(out: Path, png: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name, title in ((axes[0], "teacher", "PPO teacher (state)"),
                            (axes[1], "student", "BC student (pixels, pretrained vision)")):
        lines = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
        train_pts = [(m["perf/wall_time_s"] / 60, m["charts/median_successes"]) for m in lines
                     if "charts/median_successes" in m and "perf/wall_time_s" in m]
        eval_pts = [(m["perf/wall_time_s"] / 60, m["eval/median_successes"]) for m in lines
                    if "eval/median_successes" in m and "perf/wall_time_s" in m]
        if train_pts:
            ax.plot(*zip(*train_pts), label="training episodes (sampled actions), median of last 20")
        if eval_pts:
            ax.plot(*zip(*eval_pts), "o-", label="greedy evaluation, median of 20 episodes")
        ax.set(title=f"gimbal-block: {title}", xlabel="wall time (min, 2 CPU cores)",
               ylabel="successes per episode", ylim=(-1, 52))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=["env", "teacher", "student", "hand", "hand-student", "curves", "hand-teacher",
                                    "hand-curves"])
    p.add_argument("--out", default="/tmp/bench-policy", help="run directories and logs")
    p.add_argument("--vision", help="train-vision checkpoint for --init-vision (student, hand, hand-student)")
    p.add_argument("--teacher", help="hand-student: the state teacher's checkpoint (default: a small one made first)")
    p.add_argument("--iterations", type=int, default=6, help="hand-student: iterations to time (the first is warm-up)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="hand-student: a config override for train-policy (repeatable)")
    p.add_argument("--teacher-minutes", type=float, default=20)
    p.add_argument("--student-minutes", type=float, default=30)
    p.add_argument("--hand-teacher-minutes", type=float, default=120)
    p.add_argument("--png", help="curves: default docs/policy-curves.png; hand-curves: docs/hand-teacher-curves.png")
    p.add_argument("--runs", nargs="+", metavar="LABEL=RUN_DIR",
                   help="hand-curves: the runs to draw (default: the hand-teacher run under --out)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    if args.part in ("student", "hand") and not args.vision:
        p.error(f"{args.part} needs --vision CHECKPOINT")
    if args.part == "env":
        result = env_throughput()
    elif args.part == "teacher":
        result = teacher(out, args.teacher_minutes)
    elif args.part == "student":
        result = student(out, args.vision, args.student_minutes)
    elif args.part == "hand":
        result = hand(out, args.vision)
    elif args.part == "hand-student":
        result = hand_student(out, args.teacher, args.vision, args.iterations, args.sets)
    elif args.part == "hand-teacher":
        result = hand_teacher(out, args.hand_teacher_minutes)
    elif args.part == "hand-curves":
        runs = dict(r.split("=", 1) for r in args.runs) if args.runs else {"hand-teacher": out / "hand-teacher"}
        hand_curves({label: Path(run) for label, run in runs.items()},
                    Path(args.png or ROOT / "docs" / "hand-teacher-curves.png"))
        return
    else:
        curves(out, Path(args.png or ROOT / "docs" / "policy-curves.png"))
        return
    (out / f"{args.part}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
