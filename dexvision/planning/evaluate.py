"""The planner played with the task's protocol (Learning Dexterity's rules, as for a checkpoint), goal by goal.

`evaluate_planner(cfg, episodes, seed)` plays whole episodes and returns the same summary as a checkpoint's
evaluation (per-episode successes, mean, median, drops), plus what only goal-level records show: the
per-goal success p with its 95% (Wilson) interval, drops and timeouts per goal, control steps per success,
the angle still to turn when a goal ran out of time, success by the goal's starting angle, and the
planner's decisions per second. `evaluate-policy --planner` prints and writes it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Callable

import numpy as np
from tqdm import tqdm

from dexvision.config import to_dict
from dexvision.envs.episodes import summarize_episodes
from dexvision.envs.task import BlockReorientEnv, evaluation_env
from dexvision.planning.config import PlannerConfig
from dexvision.planning.planner import Planner
from dexvision.sim.rotations import quat_angle

ANGLE_BINS = (0.0, 1.0, 1.5, 2.0, 2.5, math.pi + 1e-9)  # radians: success by the goal's starting angle


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a success probability (sound near 0 and 1, where the normal one is not)."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize_goals(goals: list[dict]) -> dict:
    """Goal-level figures from one record per attempted goal: {start_angle, steps, outcome (success, timeout or
    drop), angle_left}."""
    n = len(goals)
    reached = [g for g in goals if g["outcome"] == "success"]
    timeouts = [g for g in goals if g["outcome"] == "timeout"]
    low, high = wilson_interval(len(reached), n)
    by_angle = []
    for lo, hi in zip(ANGLE_BINS[:-1], ANGLE_BINS[1:]):
        inside = [g for g in goals if lo <= g["start_angle"] < hi]
        by_angle.append({"from_rad": lo, "to_rad": min(hi, math.pi), "goals": len(inside),
                         "p": sum(g["outcome"] == "success" for g in inside) / len(inside) if inside else None})
    return {
        "goals": n, "per_goal_p": len(reached) / n if n else 0.0, "per_goal_p_ci95": [low, high],
        "drops_per_goal": sum(g["outcome"] == "drop" for g in goals) / n if n else 0.0,
        "timeouts_per_goal": len(timeouts) / n if n else 0.0,
        "steps_per_success": statistics.fmean(g["steps"] for g in reached) if reached else None,
        "median_angle_left_at_timeout": statistics.median(g["angle_left"] for g in timeouts) if timeouts else None,
        "success_by_start_angle": by_angle,
    }


def play_planner(planner: Planner, env: BlockReorientEnv, episodes: int, seed: int, progress: bool = True,
                 on_episode: Callable[[list[dict], list[dict]], None] | None = None) -> tuple[list[dict], list[dict]]:
    """Play `episodes` whole episodes; (one dict per episode, one per attempted goal). `on_episode(results,
    goals)` is called after each episode ends (a long evaluation can keep what it has so far)."""
    n = env.num_envs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    env.reset(seed=seed)
    planner.episodes_ended(np.ones(n, bool))
    start_angle = np.array([quat_angle(env.block_pose(i)[1], env.goal[i]) for i in range(n)])
    goal_steps = np.zeros(n, int)
    successes = np.zeros(n, int)
    results: list[dict] = []
    goals: list[dict] = []
    bar = tqdm(total=episodes, desc="planner", unit="episode", disable=not progress)
    try:
        while len(results) < episodes:
            _, _, terminated, truncated, info = env.step(planner.act(env))
            done = info["done_mask"]
            goal_steps += 1
            reached = info["episode_successes"] > successes
            successes = np.where(done, 0, info["episode_successes"])
            left = quat_angle(info["achieved_quat"], info["step_goal"])
            for i in np.flatnonzero(quota > 0):
                if reached[i]:
                    goals.append({"start_angle": float(start_angle[i]), "steps": int(goal_steps[i]),
                                  "outcome": "success", "angle_left": float(left[i])})
                if done[i] and not reached[i]:  # a drop, or the goal's time ran out (a drop on a success step ends
                    # the episode before its next goal began: the success is the goal's outcome)
                    goals.append({"start_angle": float(start_angle[i]), "steps": int(goal_steps[i]),
                                  "outcome": "drop" if terminated[i] else "timeout", "angle_left": float(left[i])})
                if reached[i] or done[i]:
                    goal_steps[i] = 0
                    start_angle[i] = quat_angle(env.block_pose(i)[1], env.goal[i])
                if done[i]:
                    quota[i] -= 1
                    results.append({"successes": int(info["episode_successes"][i]),
                                    "return": float(info["episode_return"][i]),
                                    "length": int(info["episode_length"][i]), "dropped": bool(info["dropped"][i])})
                    bar.update(1)
                    if on_episode is not None:
                        on_episode(results, goals)
            bar.set_postfix(goals=len(goals), reached=sum(g["outcome"] == "success" for g in goals))
            planner.episodes_ended(done)
    finally:
        bar.close()
    return results, goals


def evaluate_planner(cfg: PlannerConfig, episodes: int, *, seed: int = 12345, physics: str | None = None,
                     parallel: int = 1, progress: bool = True, on_episode: Callable[[dict], None] | None = None) -> dict:
    """The planner's summary over `episodes` full-task episodes (see the module docstring); `on_episode(summary)`
    gets the summary of the episodes played so far after each one."""
    env_cfg = evaluation_env(cfg.env if physics is None else dataclasses.replace(cfg.env, physics=physics))
    env = BlockReorientEnv(env_cfg, min(parallel, episodes))
    planner = Planner(cfg, env, seed=seed)
    start = time.perf_counter()

    def summary_of(results: list[dict], goals: list[dict]) -> dict:
        summary = summarize_episodes(results)
        summary.update(summarize_goals(goals))
        summary.update(planner="cem" if cfg.elites > 1 else "predictive-sampling", task=env_cfg.task, obs="state",
                       physics=env_cfg.physics, planner_model=cfg.model, greedy=True, seed=seed,
                       goal_max_angle=math.pi, decisions_per_s=planner.decisions / max(planner.planning_time, 1e-9),
                       wall_time_s=time.perf_counter() - start, successes=[r["successes"] for r in results],
                       planner_config=to_dict(cfg), goal_records=list(goals))
        return summary

    partial = (lambda results, goals: on_episode(summary_of(results, goals))) if on_episode else None
    try:
        results, goals = play_planner(planner, env, episodes, seed, progress, partial)
        return summary_of(results, goals)
    finally:
        planner.close()
        env.close()
