"""Whole episodes of a policy and their statistics: train-policy's evaluations and evaluate-policy's."""

from __future__ import annotations

import statistics

import numpy as np
import torch
from tqdm import tqdm

from dexvision.envs.task import BlockReorientEnv

MAX_PARALLEL = 32  # environments playing evaluation episodes at once


def obs_tensors(obs: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device) for k, v in obs.items()}


@torch.no_grad()
def run_episodes(model, env: BlockReorientEnv, episodes: int, *, seed: int = 12345, greedy: bool = True,
                 device: torch.device | str = "cpu", progress: bool = False) -> list[dict]:
    """Play `episodes` whole episodes; one dict (successes, return, length, dropped) per episode."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)  # for sampled (not greedy) actions
    n = env.num_envs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    obs, _ = env.reset(seed=seed)
    state = model.initial_state(n, device)
    starts = torch.ones(n, device=device)
    results: list[dict] = []
    bar = tqdm(total=episodes, desc="evaluate", unit="episode", disable=not progress)
    try:
        while len(results) < episodes:
            action, *_, state = model.get_action_and_value(obs_tensors(obs, device), state, starts, greedy=greedy,
                                                           generator=generator)
            obs, _, _, _, info = env.step(action.cpu().numpy())
            done = info["done_mask"]
            for i in np.flatnonzero(done & (quota > 0)):
                quota[i] -= 1
                results.append({"successes": int(info["episode_successes"][i]),
                                "return": float(info["episode_return"][i]),
                                "length": int(info["episode_length"][i]), "dropped": bool(info["dropped"][i])})
                bar.update(1)
            starts = torch.from_numpy(done.astype(np.float32)).to(device)
    finally:
        bar.close()
    return results


def summarize_episodes(results: list[dict]) -> dict:
    successes = [r["successes"] for r in results]
    return {"episodes": len(results), "mean_successes": statistics.fmean(successes),
            "median_successes": float(statistics.median(successes)), "min_successes": min(successes),
            "max_successes": max(successes), "mean_return": statistics.fmean(r["return"] for r in results),
            "drop_rate": statistics.fmean(float(r["dropped"]) for r in results)}
