"""The planner teacher on the full task, and a figure of where its goals fail.

`run` plays the planner as `evaluate-policy --planner` does and writes the same JSON (with one record per
goal); `figure` draws, for each JSON given, the per-goal success by the goal's starting angle (with each bin's
95% interval) and the outcome of every goal (reached, timed out, dropped) against its starting angle and the
control steps it took.

    python benchmarks/planner.py run --config configs/planner/hand.yaml --episodes 30 --seed 2026 \\
        --out out/planner/episode.json
    python benchmarks/planner.py run --config configs/planner/hand.yaml --episodes 10 --seed 2026 \\
        --set model=nominal --out out/planner/nominal.json
    python benchmarks/planner.py figure out/planner/episode.json out/planner/nominal.json --png docs/planner-goals.png

`tune` plays the tuning seeds (100 and up, one episode each, planner seed 1) with each setting until at least
`--goals` goals were attempted, one JSON line per setting (a setting is a quoted list of --set overrides):

    python benchmarks/planner.py tune --goals 40 "noise=0.5 noise_min=0.5" "samples=32" --out out/planner/tune.jsonl

`run` rewrites its JSON after every episode (`finished: false` until the last): a run stopped early keeps the
episodes it finished. `figure` pools several runs (other seeds) given as one argument `NAME=A.json,B.json`,
and `pool` prints the pooled figures of such a set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dexvision.errors import UserError, cli
from dexvision.files import atomic_write
from dexvision.planning.config import load_planner_config
from dexvision.envs.episodes import summarize_episodes
from dexvision.planning.evaluate import ANGLE_BINS, evaluate_planner, summarize_goals, wilson_interval
from dexvision.version import git_sha

OUTCOME_STYLE = {"success": ("tab:green", "o", "reached"), "timeout": ("tab:orange", "x", "timed out"),
                 "drop": ("tab:red", "v", "dropped")}


def run(args) -> None:
    cfg = load_planner_config(args.config, args.set)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    def write(summary: dict, final: bool = False) -> None:  # after every episode: a stopped run keeps its episodes
        summary.update(planner_config_file=args.config, git_sha=git_sha(), finished=final,
                       episodes_asked=args.episodes)
        atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(summary, indent=1) + "\n"))

    summary = evaluate_planner(cfg, args.episodes, seed=args.seed, physics=args.physics, on_episode=write)
    write(summary, final=True)
    print(f"{args.out}: {line(summary)}")


def tune(args) -> None:
    if args.average < 1:
        raise UserError(f"--average must be >= 1, got {args.average}")
    from dexvision.envs.task import BlockReorientEnv  # noqa: PLC0415
    from dexvision.planning.evaluate import play_planner  # noqa: PLC0415
    from dexvision.planning.planner import Planner  # noqa: PLC0415

    for setting in args.settings:
        cfg = load_planner_config(args.config, setting.split())
        env = BlockReorientEnv(cfg.env, 1)
        planner = Planner(cfg, env, seed=1)
        others: list[Planner] = []
        start, goals, episodes, seed = time.perf_counter(), [], [], 100
        played: list[np.ndarray] = []  # the commands played: how far one step's command is from the last one's
        act, ended = planner.act, planner.episodes_ended

        def averaged(e):
            played.append(np.mean([np.asarray(a(e), float) for a in [act, *(p.act for p in others)]], axis=0))
            return played[-1]

        def episodes_ended(done):
            for end in [ended, *(p.episodes_ended for p in others)]:
                end(done)

        planner.act, planner.episodes_ended = averaged, episodes_ended
        try:
            # --average K: K planners (own seeds, own plans) decide at each state and the mean of their commands is
            # played: what a network that regresses the planner's labels would learn to do (their conditional mean)
            others += [Planner(cfg, env, seed=1 + k) for k in range(1, args.average)]
            while len(goals) < args.goals:
                results, more = play_planner(planner, env, 1, seed, progress=False)
                goals += more
                episodes += [r["successes"] for r in results]
                seed += 1
        finally:
            for p in [planner, *others]:
                p.close()
            env.close()
        s = summarize_goals(goals)
        record = {"sets": setting.split(), "average": args.average, "p": round(s["per_goal_p"], 3), "goals": s["goals"],
                  "drops": round(s["drops_per_goal"], 3), "timeouts": round(s["timeouts_per_goal"], 3),
                  "steps_per_success": s["steps_per_success"], "angle_left": s["median_angle_left_at_timeout"],
                  "dec_s": round(planner.decisions / max(planner.planning_time, 1e-9), 1),
                  "wall": round(time.perf_counter() - start), "episodes": episodes, "git_sha": git_sha(),
                  # within episodes and across their ends alike (a new episode's first command jumps too)
                  "command_change": round(float(np.abs(np.diff(np.stack(played), axis=0)).mean()), 3)
                  if len(played) > 1 else None, "dec_s_of": "the first planner"}
        print(json.dumps(record), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(record) + "\n")


def line(summary: dict) -> str:
    low, high = summary["per_goal_p_ci95"]
    steps = summary["steps_per_success"]
    return (f"{summary['episodes']} episodes, successes mean {summary['mean_successes']:.1f} median "
            f"{summary['median_successes']:g}; p {summary['per_goal_p']:.3f} [{low:.3f}, {high:.3f}] over "
            f"{summary['goals']} goals; drops/goal {summary['drops_per_goal']:.3f}, timeouts/goal "
            f"{summary['timeouts_per_goal']:.3f}; steps/success {'-' if steps is None else f'{steps:.1f}'}; "
            f"{summary['decisions_per_s']:.1f} decisions/s")


def load_set(arg: str) -> tuple[str, dict]:
    """`NAME=A.json,B.json` (pooled) or one `A.json`: (name, a summary over all their episodes and goals)."""
    name, sep, files = arg.partition("=")
    paths = [Path(f) for f in (files if sep else arg).split(",")]
    name = name if sep else paths[0].stem
    results, goals, rates = [], [], []
    for p in paths:
        if not p.is_file():
            raise UserError(f"{p} not found (write it with: python benchmarks/planner.py run ... --out {p})")
        data = json.loads(p.read_text())
        if "goal_records" not in data:
            raise UserError(f"{p} holds no goal records: it is not a planner evaluation")
        results += [{"successes": s, "return": 0.0, "dropped": False} for s in data["successes"]]
        goals += data["goal_records"]
        rates.append(data["decisions_per_s"])
    summary = summarize_episodes(results)
    summary.update(summarize_goals(goals), goal_records=goals, decisions_per_s=sum(rates) / len(rates),
                   successes=[r["successes"] for r in results])
    return name, summary


def figure(args) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    runs = [load_set(arg) for arg in args.runs]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    mids = [(lo + min(hi, 3.1416)) / 2 for lo, hi in zip(ANGLE_BINS[:-1], ANGLE_BINS[1:])]
    for k, (name, data) in enumerate(runs):
        ps, errs = [], [[], []]
        for lo, hi in zip(ANGLE_BINS[:-1], ANGLE_BINS[1:]):
            inside = [g for g in data["goal_records"] if lo <= g["start_angle"] < hi]
            hits = sum(g["outcome"] == "success" for g in inside)
            p = hits / len(inside) if inside else float("nan")
            low, high = wilson_interval(hits, len(inside))
            ps.append(p)
            errs[0].append(p - low if inside else 0)
            errs[1].append(high - p if inside else 0)
        shift = (k - (len(runs) - 1) / 2) * 0.06
        axes[0].errorbar([m + shift for m in mids], ps, yerr=errs, marker="o", capsize=3,
                         label=f"{name}: p {data['per_goal_p']:.2f} over {data['goals']} goals")
    axes[0].set(xlabel="goal's starting angle from the block (rad)", ylabel="goals reached (95% interval)",
                ylim=(0, 1.05), title="per-goal success by starting angle")
    axes[0].axhline(0.9, color="grey", ls=":", lw=1)
    axes[0].legend(fontsize=8)
    name, data = runs[0]
    for outcome, (colour, marker, label) in OUTCOME_STYLE.items():
        goals = [g for g in data["goal_records"] if g["outcome"] == outcome]
        axes[1].scatter([g["start_angle"] for g in goals], [g["steps"] for g in goals], c=colour, marker=marker,
                        s=14, label=f"{label} ({len(goals)})")
    axes[1].set(xlabel="goal's starting angle from the block (rad)", ylabel="control steps spent on the goal",
                title=f"every goal of {name}")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=110)
    print(f"wrote {args.png}")


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="part", required=True)
    r = sub.add_parser("run")
    r.add_argument("--config", default="configs/planner/hand.yaml")
    r.add_argument("--episodes", type=int, default=30)
    r.add_argument("--seed", type=int, default=2026)
    r.add_argument("--physics")
    r.add_argument("--set", action="append", default=[])
    r.add_argument("--out", required=True)
    f = sub.add_parser("figure")
    f.add_argument("runs", nargs="+")
    f.add_argument("--png", default="docs/planner-goals.png")
    t = sub.add_parser("tune")
    t.add_argument("settings", nargs="+", help="each a quoted list of overrides, e.g. \"samples=32 noise=0.5\"")
    t.add_argument("--config", default="configs/planner/hand.yaml")
    t.add_argument("--goals", type=int, default=40)
    t.add_argument("--average", type=int, default=1, help="play the mean command of this many planners")
    t.add_argument("--out", required=True)
    q = sub.add_parser("pool")
    q.add_argument("runs", nargs="+")
    args = p.parse_args(argv)
    if args.part == "run":
        run(args)
    elif args.part == "tune":
        tune(args)
    elif args.part == "figure":
        figure(args)
    else:
        for arg in args.runs:
            name, summary = load_set(arg)
            print(f"{name}: {line(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
