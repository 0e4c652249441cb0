"""`evaluate-policy`: successes per episode of a trained policy.

    evaluate-policy --checkpoint runs/gimbal-teacher/checkpoint.pt --episodes 20
    evaluate-policy --checkpoint runs/gimbal-student/checkpoint.pt --episodes 10 --out eval.json
    evaluate-policy --checkpoint runs/hand-teacher/checkpoint.pt --physics reference   # fidelity check
    evaluate-policy --checkpoint runs/hand-teacher/checkpoint.pt --goal-max-angle 0.8  # curriculum goals
    evaluate-policy --planner configs/planner/hand.yaml --episodes 30 --out planner.json   # the planner teacher

Each of up to 32 parallel environments plays its share of the episodes to the end
(so short, failed episodes do not crowd out long, successful ones); actions are the
policy's most likely ones unless --sample. Goals are the full task's (uniform random
orientations) unless `--goal-max-angle` draws them within that many radians of the block's
orientation, as a training curriculum does: a way to measure a policy that is still climbing
one, or a student's fidelity to such a teacher, where the full task gives both 0. `--physics`
runs the policy under another physics profile than the one it was trained on (a policy
learned on the fast hand should keep most of its successes on the reference hand). Prints
and writes the mean and median.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import torch

from dexvision.config import check_flags
from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.files import check_writable, write_text_output
from dexvision.policy.checkpoint import build_policy, env_config_of, load_policy_checkpoint
from dexvision.envs.episodes import MAX_PARALLEL, run_episodes, summarize_episodes
from dexvision.envs.workers import make_env, resolve_env_workers
from dexvision.sim.scenes import check_physics



def evaluate_checkpoint(path: str | Path, episodes: int, *, greedy: bool = True, seed: int = 12345,
                        render_workers: int = -1, env_workers: int = -1, physics: str | None = None,
                        goal_max_angle: float | None = None, progress: bool = True) -> dict:
    if physics is not None:
        check_physics(physics)
    if goal_max_angle is not None and not 0 < goal_max_angle <= math.pi:
        raise UserError(f"--goal-max-angle must be in (0, pi] radians, got {goal_max_angle:g}")
    ckpt = load_policy_checkpoint(path)
    if render_workers < 0:
        render_workers = torch.get_num_threads() if ckpt["obs"] == "pixels" else 0
    n = min(episodes, MAX_PARALLEL)
    env_workers = resolve_env_workers(env_workers, ckpt["obs"], n, ckpt["task"])
    model = build_policy(ckpt)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    env_cfg = env_config_of(ckpt, physics)
    env = make_env(env_cfg, n, ckpt["obs"], env_workers, render_workers)
    start = time.perf_counter()
    try:
        if goal_max_angle is not None:
            env.set_goal_max_angle(goal_max_angle)
        results = run_episodes(model, env, episodes, seed=seed, greedy=greedy, device=device, progress=progress)
    finally:
        env.close()
    summary = summarize_episodes(results)
    summary.update(checkpoint=str(path), task=ckpt["task"], obs=ckpt["obs"], physics=env_cfg.physics,
                   trained_physics=env_config_of(ckpt).physics, greedy=greedy, seed=seed,
                   goal_max_angle=math.pi if goal_max_angle is None else goal_max_angle,
                   frames_trained=ckpt["frames"], wall_time_s=time.perf_counter() - start,
                   successes=[r["successes"] for r in results])
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="evaluate-policy", description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="checkpoint.pt written by train-policy")
    which.add_argument("--planner", help="a planner config (configs/planner/hand.yaml): play the sampling-based "
                                         "planner on the simulator's state instead of a checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a planner config key (with --planner), e.g. --set samples=120")
    p.add_argument("--episodes", type=int, default=20, help="episodes to play (default 20)")
    p.add_argument("--sample", action="store_true", help="sample actions instead of taking the most likely")
    p.add_argument("--seed", type=int, default=12345, help="seed of the evaluation episodes")
    p.add_argument("--render-workers", type=int, default=-1,
                   help="processes rendering pixel observations (default: one per core; 0: in this process)")
    p.add_argument("--physics", help="physics profile to run under: fast or reference (default: the trained one)")
    p.add_argument("--env-workers", type=int, default=-1,
                   help="processes stepping the environments (default: one per core for hand-block state, else none)")
    p.add_argument("--goal-max-angle", type=float,
                   help="draw goals within this many radians of the block's orientation, as a curriculum does "
                        "(default: the full task, uniform random goals)")
    p.add_argument("--out", help="also write the summary to this JSON file")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    check_flags(args, "episodes", "seed", "render_workers", "env_workers")
    if args.out:
        check_writable(args.out, "--out")
    if args.planner is not None:
        return _evaluate_planner(args)
    if args.set:
        raise UserError("--set overrides a planner config: it needs --planner (a checkpoint's config is its own)")
    summary = evaluate_checkpoint(args.checkpoint, args.episodes, greedy=not args.sample, seed=args.seed,
                                  render_workers=args.render_workers, env_workers=args.env_workers,
                                  physics=args.physics, goal_max_angle=args.goal_max_angle)
    mean, median = summary["mean_successes"], summary["median_successes"]
    goals = "" if args.goal_max_angle is None else f", goals within {args.goal_max_angle:g} rad"
    print(f"{summary['task']} {summary['obs']} policy ({summary['physics']} physics{goals}), {summary['episodes']} "
          f"episodes: successes per episode "
          f"mean {mean:.1f}, median {median:g} (min {summary['min_successes']}, max {summary['max_successes']}); "
          f"drop rate {summary['drop_rate']:.0%}")
    if args.out:  # after the line above: a file that cannot be written loses nothing
        write_text_output(args.out, json.dumps(summary, indent=1) + "\n", "evaluation summary")
    return 0


def _evaluate_planner(args) -> int:
    from dexvision.planning.config import load_planner_config  # noqa: PLC0415 - only for --planner
    from dexvision.planning.evaluate import evaluate_planner  # noqa: PLC0415

    for flag, given in (("--sample", args.sample), ("--goal-max-angle", args.goal_max_angle is not None),
                        ("--render-workers", args.render_workers != -1), ("--env-workers", args.env_workers != -1)):
        if given:
            raise UserError(f"{flag} is read with --checkpoint only: the planner plays the full task on the state, "
                            "in this process")
    if args.physics is not None:
        check_physics(args.physics)
    cfg = load_planner_config(args.planner, args.set)
    summary = evaluate_planner(cfg, args.episodes, seed=args.seed, physics=args.physics)
    summary["planner_config_file"] = str(args.planner)
    low, high = summary["per_goal_p_ci95"]
    print(f"{summary['task']} planner ({summary['physics']} physics, {summary['planner_model']} model), "
          f"{summary['episodes']} episodes: successes per episode mean {summary['mean_successes']:.1f}, median "
          f"{summary['median_successes']:g} (min {summary['min_successes']}, max {summary['max_successes']}); "
          f"per-goal p {summary['per_goal_p']:.2f} [{low:.2f}, {high:.2f}] over {summary['goals']} goals, "
          f"{summary['drops_per_goal']:.2f} drops per goal; {summary['decisions_per_s']:.1f} decisions/s")
    if args.out:
        write_text_output(args.out, json.dumps(summary, indent=1) + "\n", "evaluation summary")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
