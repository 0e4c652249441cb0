"""Seconds per update of the hand pixel student, by minibatch size and Adam implementation.

The update of configs/policy/hand-student-bc.yaml (frozen vision sub-model, feature epochs on cached
features drawn from the newest rollout and `bc_replay - 1` replayed ones) on synthetic rollouts of the
config's shape: 16 environments x 40 steps, 3 cameras x 64 px, the hand's inputs and 20 actuators.
Each variant is timed in turn, round after round, so that a shared machine's slow spells fall on all
of them; reports the median seconds per update and per optimizer step.

    python benchmarks/policy_update.py                          # minibatches 16 and 4, Adam default/fused
    python benchmarks/policy_update.py --minibatches 16 8 4 2 --adam default foreach fused --rounds 7
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time

import torch

from dexvision.config import load_config
from dexvision.policy.config import TrainPolicyConfig
from dexvision.envs.task import BlockReorientEnv, state_keys
from dexvision.policy.model import ActorCritic, PolicyConfig, policy_config_for
from dexvision.policy.ppo import Rollout, bc_loss, update
from dexvision.policy.train import param_groups
from dexvision.vision.model import PoseNetConfig

CONFIG = "configs/policy/hand-student-bc.yaml"
ADAM = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def synthetic_rollout(cfg: PolicyConfig, steps: int, envs: int, chunk: int, images: bool,
                      gen: torch.Generator) -> Rollout:
    """Random inputs and teacher labels of the student's shapes (what the update computes on does not
    depend on the values)."""
    obs = {k: torch.randn(steps, envs, n, generator=gen) for k, n in cfg.value_inputs.items()}
    if images:
        size, cams = cfg.vision["image_size"], cfg.vision["num_cameras"]
        obs["images"] = torch.zeros(steps, envs, cams, 3, size, size, dtype=torch.uint8)
    starts = (torch.rand(steps, envs, generator=gen) < 1 / 100).float()  # ~one episode start per 100 steps
    shape = (steps, envs)
    return Rollout(obs=obs, starts=starts, actions=torch.randn(*shape, cfg.num_actions, generator=gen),
                   logprobs=torch.randn(shape, generator=gen), values=torch.randn(shape, generator=gen),
                   rewards=torch.randn(shape, generator=gen), dones=torch.zeros(shape),
                   chunk_states=0.1 * torch.randn(steps // chunk, 4, envs, cfg.lstm_hidden, generator=gen),
                   teacher_logits=0.3 * torch.randn(*shape, cfg.num_actions, 2, generator=gen),
                   teacher_values=torch.randn(shape, generator=gen))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minibatches", type=int, nargs="+", default=[16, 4])
    p.add_argument("--adam", nargs="+", choices=list(ADAM), default=["default", "fused"])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    # the config asks for a teacher and a pretrained encoder; neither changes what the update computes
    cfg = load_config(TrainPolicyConfig, CONFIG, ["init_vision=unused", "teacher=unused"])
    env_cfg = cfg.env
    env_cfg.task = cfg.task
    probe = BlockReorientEnv(env_cfg, 1, obs="state")
    vision = PoseNetConfig(arch="impala", image_size=cfg.image_size, num_cameras=3)
    policy_cfg = policy_config_for(probe, "pixels", state_keys(cfg.task, env_cfg.fingertips), vision,
                                   embed_dim=cfg.embed_dim, lstm_hidden=cfg.lstm_hidden, core=cfg.core,
                                   normalize_obs=cfg.normalize_obs)
    probe.close()
    gen = torch.Generator().manual_seed(0)
    rollout = synthetic_rollout(policy_cfg, cfg.rollout, cfg.num_envs, cfg.chunk, True, gen)
    replay = [synthetic_rollout(policy_cfg, cfg.rollout, cfg.num_envs, cfg.chunk, False, gen)
              for _ in range(cfg.bc_replay - 1)]
    variants = {}
    for mb in args.minibatches:
        for adam in args.adam:
            torch.manual_seed(0)
            model = ActorCritic(policy_cfg)
            model.vision.requires_grad_(False)
            model.train()
            opt = torch.optim.Adam(param_groups(model, cfg.lr, cfg.vision_lr_scale), eps=1e-5, **ADAM[adam])
            run = functools.partial(update, model, model, opt, rollout, {},
                                    functools.partial(bc_loss, dist_fn=model.distribution), cfg.loss,
                                    epochs=0, minibatches=mb, chunk=cfg.chunk, max_grad_norm=cfg.max_grad_norm,
                                    generator=torch.Generator().manual_seed(0), feature_epochs=cfg.feature_epochs,
                                    replay=replay)
            run()  # warm-up: Adam's state, allocator
            variants[(mb, adam)] = {"run": run, "times": []}
    for r in range(args.rounds):
        for v in variants.values():
            t = time.perf_counter()
            v["steps"] = v["run"]()["optimizer_steps"]
            v["times"].append(time.perf_counter() - t)
        print(f"round {r + 1}/{args.rounds}", flush=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| environments per minibatch | Adam | optimizer steps | s per update (median) | ms per step |")
    print("|---|---|---|---|---|")
    rows = []
    for (mb, adam), v in variants.items():
        med = statistics.median(v["times"])
        rows.append({"minibatches": mb, "envs_per_minibatch": cfg.num_envs // mb, "adam": adam,
                     "optimizer_steps": v["steps"], "update_s": med, "times": v["times"]})
        print(f"| {cfg.num_envs // mb} | {adam} | {v['steps']} | {med:.2f} | {1000 * med / v['steps']:.1f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
