"""`train-policy`: a state teacher by PPO, a pixel student by behavioural cloning from it, then PPO.

    train-policy --task gimbal-block --obs state --algo ppo --steps 3M --out runs/teacher
    train-policy --task gimbal-block --obs pixels --algo bc --teacher runs/teacher/checkpoint.pt \\
        --init-vision runs/vision/checkpoint.pt --steps 200k --out runs/student
    train-policy ... --algo bc+ppo          # clone for --bc-steps frames (default half), then PPO
    train-policy --obs pixels --algo ppo    # PPO from pixels, no teacher
    torchrun --nproc_per_node 4 -m dexvision.policy.train ...   # each rank steps its own environments
    train-policy --out runs/teacher --resume                      # continue a killed run
    train-policy --algo dagger --planner configs/planner/hand.yaml ...   # distil the planner (dagger.py)

Every iteration collects `rollout` steps from `num_envs` environments per process,
then optimizes. In behavioural cloning (DAgger-style) the student acts and the
teacher labels every step it visits. Writes RUN_DIR/checkpoint.pt and
RUN_DIR/metrics.json, logs through dexvision.track (metrics.jsonl, TensorBoard, W&B).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import logging
import time
from pathlib import Path

import torch

from dexvision.config import check_flag_agrees, check_flags, flag_overrides, load_config, to_dict
from dexvision.datasets.format import parse_count
from dexvision.distributed import all_mean, gather_lists, is_main_process
from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.policy.checkpoint import load_for_resume, load_policy_checkpoint, load_teacher, save_policy
from dexvision.policy.config import TrainPolicyConfig
from dexvision.envs.curriculum import Curriculum
from dexvision.envs.episodes import MAX_PARALLEL, run_episodes, summarize_episodes
from dexvision.policy.loop import Collector, EpisodeStats, log_closing, log_when_due
from dexvision.policy.model import ActorCritic, PolicyConfig, policy_config_for
from dexvision.envs.task import BlockReorientEnv, evaluation_env, state_keys
from dexvision.policy.ppo import NoiseScale, RewardScaler, bc_loss, compute_gae, ppo_loss, update
from dexvision.policy.vision_init import vision_config
from dexvision.envs.workers import make_env, resolve_env_workers
from dexvision.track.run import add_run_flags, run_name
from dexvision.trainer import Scaffold, resumed_config, seeded
from dexvision.version import git_sha
from dexvision.vision.encoders import check_arch
from dexvision.vision.model import PoseNetConfig

log = logging.getLogger(__name__)


def default_run_dir(cfg: TrainPolicyConfig) -> Path:
    return Path("runs") / run_name(f"policy-{cfg.task}-{cfg.obs}-{cfg.algo.replace('+', '-')}")


def param_groups(model: ActorCritic, lr: float, vision_scale: float) -> list[dict]:
    vision = [p for n, p in model.named_parameters() if n.startswith("vision.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("vision.")]
    groups = [{"params": rest, "lr": lr}]
    if vision:
        groups.append({"params": vision, "lr": lr * vision_scale})
    return groups


def check_rollout_memory(cfg: TrainPolicyConfig, cameras: int, available: int | None = None) -> None:
    """Refuse, before anything renders, a pixel rollout whose images could not be held: a rollout keeps every
    step's uint8 images (rollout x num_envs x cameras x 3 x size^2 bytes) and stacking them copies them once, so
    twice that must fit in the memory available now (`available` bytes; default: what the system reports)."""
    if cfg.obs != "pixels":
        return
    images = cfg.rollout * cfg.num_envs * cameras * 3 * cfg.image_size ** 2
    if available is None:
        import psutil  # noqa: PLC0415

        available = psutil.virtual_memory().available
    if 2 * images > available:
        def size(n: int) -> str:
            return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"

        raise UserError(f"a rollout of {cfg.rollout} steps x {cfg.num_envs} environments x {cameras} cameras at "
                        f"{cfg.image_size} px holds {size(images)} of images ({size(2 * images)} while stacked), more "
                        f"than the {size(available)} available: lower --num-envs, rollout or --image-size")


class PolicyTrainer:
    """One train-policy run; `run()` trains and returns the summary written to metrics.json."""

    def __init__(self, cfg: TrainPolicyConfig, resume: bool = False):
        self.cfg = cfg
        self.scaffold = Scaffold(Path(cfg.out) if cfg.out else default_run_dir(cfg), resume)
        self.rank, self.world, self.device = self.scaffold.rank, self.scaffold.world, self.scaffold.device
        self.env_cfg = dataclasses.replace(cfg.env, task=cfg.task,
                                           render=dataclasses.replace(cfg.env.render, image_size=cfg.image_size))
        self.eval_env_cfg = evaluation_env(self.env_cfg)  # the task's episode rules, whatever training departs from
        # Every input is checked before a worker process starts: a user's mistake ends in one line,
        # with no worker left to print anything.
        self.teacher = self._load_teacher()
        vision, vision_weights = vision_config(cfg, self.env_cfg.render.randomization.cameras.count)
        check_rollout_memory(cfg, self.env_cfg.render.randomization.cameras.count)
        self.render_workers = cfg.render_workers if cfg.render_workers >= 0 else (
            torch.get_num_threads() if cfg.obs == "pixels" else 0)
        self.env_workers = resolve_env_workers(cfg.env_workers, cfg.obs, cfg.num_envs, cfg.task)
        probe = BlockReorientEnv(self.env_cfg, 1, obs="state")  # sizes only: no episode, no rendering
        try:
            self._build_model(probe, vision, vision_weights)
        finally:
            probe.close()
        self.env = make_env(self.env_cfg, cfg.num_envs, cfg.obs, self.env_workers, self.render_workers)
        try:
            self._start()
        except BaseException:
            self.env.close()
            raise

    def _load_teacher(self) -> ActorCritic | None:
        if self.cfg.algo == "ppo":
            return None
        teacher, _ = load_teacher(self.cfg.teacher, self.cfg.task, self.env_cfg)
        return teacher.to(self.device)

    def _build_model(self, env: BlockReorientEnv, vision: PoseNetConfig | None, vision_weights: dict | None) -> None:
        """Model, optimizer and training state (restored on --resume), sized by `env`."""
        cfg = self.cfg
        # a student's actions are drawn as its teacher's are: a squashed (tanh) Gaussian teacher, from soft
        # actor-critic, is cloned by a squashed Gaussian student (the KL of the two Normals before the squash)
        squashed = self.teacher is not None and self.teacher.cfg.action_dist == "tanh_gaussian"
        if squashed and cfg.algo != "bc":
            raise UserError(f"--teacher {cfg.teacher} draws squashed (tanh) Gaussian actions, which PPO here does "
                            f"not train: clone it with --algo bc, not {cfg.algo}")
        keys = state_keys(cfg.task, self.env_cfg.fingertips, self.env_cfg.goal_repr)
        self.policy_cfg = policy_config_for(env, cfg.obs, keys, vision,
                                            embed_dim=cfg.embed_dim, lstm_hidden=cfg.lstm_hidden,
                                            shared_embeddings=cfg.shared_embeddings, core=cfg.core,
                                            mlp_hidden=list(cfg.mlp_hidden), normalize_obs=cfg.normalize_obs,
                                            init_log_std=cfg.init_log_std,
                                            action_dist="tanh_gaussian" if squashed else None)
        self._check_teacher()
        with seeded(cfg.seed + 7919 * self.rank):
            self.model = ActorCritic(self.policy_cfg)
        if cfg.init_hold_prob > 0:
            self.model.favour_middle_bin(cfg.init_hold_prob)
        if vision_weights is not None:
            try:
                self.model.vision.load_pretrained(vision_weights)
            except ValueError as e:
                raise UserError(f"--init-vision {cfg.init_vision}: {e}") from None
        if cfg.epochs == 0:  # a frozen vision sub-model: the feature epochs alone train the rest
            self.model.vision.requires_grad_(False)
        self.model.to(self.device)
        # fused: Adam's update in one kernel per step, not a dozen per weight tensor (the hand student's
        # update: 1.15x less time at 144 steps per iteration, 1.08x at its 36; BENCHMARKS.md)
        self.optimizer = torch.optim.Adam(param_groups(self.model, cfg.lr, cfg.vision_lr_scale), eps=1e-5, fused=True)
        self.noise = NoiseScale()
        # behavioural cloning's earlier rollouts (vision features, no images) for the feature epochs
        self.replay: collections.deque = collections.deque(maxlen=max(cfg.bc_replay - 1, 0))
        self.reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma)
        self.curriculum = Curriculum(cfg.curriculum)
        self.frames = self.iteration = self.optimizer_steps = 0
        # seconds of this process's iterations by phase (not kept across --resume): where the time went
        self.seconds = {"iterations": 0.0, "collect": 0.0, "env": 0.0, "vision": 0.0}
        self._restore(self.scaffold.restore(load_policy_checkpoint))

    def _start(self) -> None:
        """What runs against the environments: the curriculum's goals, DDP, the tracker and the collector."""
        cfg = self.cfg
        self.env.set_goal_max_angle(self.curriculum.max_angle)
        # feature epochs leave the vision sub-model without gradients: DDP must expect unused parameters
        ddp = torch.nn.parallel.DistributedDataParallel
        self.forward = ddp(self.model, find_unused_parameters=cfg.obs == "pixels") if self.world > 1 else self.model
        self.tracker = self.scaffold.open_tracker(to_dict(cfg), cfg.wandb, self.frames)
        self.collector = Collector(self.env, self.model, self.teacher, cfg.rollout, cfg.chunk, self.device,
                                   seed=cfg.seed * 1000 + self.rank, bootstrap_truncated=cfg.bootstrap_truncated)
        self.stats = EpisodeStats(level=self.curriculum.promotions)
        self.generator = torch.Generator().manual_seed(cfg.seed + 31 * self.rank)

    def _check_teacher(self) -> None:
        if self.teacher is None:
            return
        t, p = self.teacher.cfg, self.policy_cfg
        if (t.num_actions, t.action_bins, t.action_dist) != (p.num_actions, p.action_bins, p.action_dist):
            raise UserError(f"teacher {self.cfg.teacher} has {t.num_actions} actuators x {t.action_bins} bins "
                            f"({t.action_dist}); this environment has {p.num_actions} x {p.action_bins} "
                            f"({p.action_dist})")

    @property
    def bc_frames(self) -> int:
        cfg = self.cfg
        if cfg.algo == "bc":
            return cfg.steps
        if cfg.algo == "bc+ppo":
            return cfg.bc_steps or cfg.steps // 2
        return 0

    def _restore(self, ckpt: dict | None) -> None:
        if ckpt is None:
            return
        # filled with today's defaults: a checkpoint from before a field existed resumes as it was built
        if dataclasses.asdict(PolicyConfig(**ckpt["policy_config"])) != dataclasses.asdict(self.policy_cfg):
            raise UserError(f"--resume: {self.scaffold.ckpt_path} holds a different model or observation setup")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.frames, self.iteration = ckpt["frames"], ckpt["iteration"]
        self.optimizer_steps = ckpt["optimizer_steps"]
        if "reward_scaler" in ckpt:
            self.reward_scaler.load_state_dict(ckpt["reward_scaler"])
        if "curriculum" in ckpt:
            self.curriculum.load_state_dict(ckpt["curriculum"])
        for group, lr in zip(self.optimizer.param_groups, ckpt.get("learning_rates", [])):
            group["lr"] = lr

    def checkpoint(self, metrics: dict | None = None) -> None:
        self.scaffold.checkpoint(lambda path: save_policy(path, {
            "task": self.cfg.task, "obs": self.cfg.obs, "policy_config": dataclasses.asdict(self.policy_cfg),
            "env_config": to_dict(self.eval_env_cfg), "train_env_config": to_dict(self.env_cfg),
            "physics": self.env_cfg.physics, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "frames": self.frames, "iteration": self.iteration,
            "optimizer_steps": self.optimizer_steps, "wall_time_s": self.scaffold.wall_time,
            "reward_scaler": self.reward_scaler.state_dict(), "curriculum": self.curriculum.state_dict(),
            "learning_rates": [g["lr"] for g in self.optimizer.param_groups],
            "config": to_dict(self.cfg), "git_sha": git_sha(), "run_name": self.tracker.name, "metrics": metrics or {},
        }))

    def evaluate(self) -> dict:
        """Greedy episodes of the full task (no curriculum) on fresh environments (rank 0 only)."""
        n = min(self.cfg.eval_episodes, MAX_PARALLEL)
        env = make_env(self.eval_env_cfg, n, self.cfg.obs, min(self.env_workers, n), self.render_workers)
        try:
            self.model.eval()
            results = run_episodes(self.model, env, self.cfg.eval_episodes, device=self.device)
        finally:
            self.model.train()
            env.close()
        return summarize_episodes(results)

    def iterate(self) -> dict:
        """Collect one rollout and optimize on it; returns this iteration's metrics."""
        cfg = self.cfg
        phase = "bc" if self.frames < self.bc_frames else "ppo"
        t0 = time.perf_counter()
        rollout, next_value = self.collector.collect(self.stats, label=phase == "bc")
        # every rank promotes on every rank's episodes: all train on the same goal bound
        finished = self.stats.take_finished()
        if not self.curriculum.complete and self.curriculum.update(gather_lists(finished, self.world)):
            self.env.set_goal_max_angle(self.curriculum.max_angle)
            self.stats.set_level(self.curriculum.promotions)
        t1 = time.perf_counter()
        if phase == "bc":
            extra, loss_fn = {}, functools.partial(bc_loss, dist_fn=self.model.distribution)
        else:
            rewards = (self.reward_scaler(rollout.rewards, rollout.dones).to(self.device) if cfg.normalize_rewards
                       else rollout.rewards)
            advantages, returns = compute_gae(rewards, rollout.values, rollout.dones, next_value,
                                              cfg.gamma, cfg.gae_lambda, bootstrap=rollout.bootstrap)
            extra = {"advantages": advantages, "returns": returns}
            loss_fn = functools.partial(ppo_loss, dist_fn=self.model.distribution)
        out = update(self.model, self.forward, self.optimizer, rollout, extra, loss_fn, cfg.loss,
                     epochs=cfg.epochs, minibatches=cfg.minibatches, chunk=cfg.chunk,
                     max_grad_norm=cfg.max_grad_norm, world=self.world, generator=self.generator,
                     feature_epochs=cfg.feature_epochs, replay=list(self.replay) if phase == "bc" else ())
        if phase == "ppo":
            self.replay.clear()  # bc+ppo: cloning is over
        elif self.replay.maxlen:
            self.replay.appendleft(dataclasses.replace(
                rollout, obs={k: v for k, v in rollout.obs.items() if k != "images"}))
        t2 = time.perf_counter()
        if phase == "ppo" and cfg.kl_target:
            self._adapt_lr(out["approx_kl"])
        new_frames = rollout.rewards.numel() * self.world
        for key, seconds in (("iterations", t2 - t0), ("collect", t1 - t0), ("env", self.collector.timing["env_s"]),
                             ("vision", self.collector.timing["vision_s"])):
            self.seconds[key] += seconds
        self.frames += new_frames
        self.iteration += 1
        self.optimizer_steps += out["optimizer_steps"]
        noise = self.noise.update(out["grad_small_sq"], out["grad_big_sq"], out["b_small"], out["b_big"])
        metrics = {f"losses/{k}": v for k, v in out.items()
                   if k not in ("optimizer_steps", "grad_small_sq", "grad_big_sq", "b_small", "b_big")}
        metrics.update({
            "charts/frames": self.frames, "charts/iterations": self.iteration,
            "charts/optimizer_steps": self.optimizer_steps, "charts/mean_reward": float(rollout.rewards.mean()),
            "charts/phase_is_bc": float(phase == "bc"), "charts/goal_max_angle": self.curriculum.max_angle,
            "perf/env_steps_per_s": new_frames / max(t1 - t0, 1e-9), "perf/frames_per_s": new_frames / (t2 - t0),
            "perf/collect_fraction": (t1 - t0) / (t2 - t0), "charts/learning_rate": self.optimizer.param_groups[0]["lr"],
            # within the iteration's wall time: stepping the environments (physics, and rendering for
            # pixels), and the vision sub-model's forward pass while acting
            "perf/env_fraction": self.collector.timing["env_s"] / (t2 - t0),
        })
        if self.model.vision is not None:
            metrics["perf/vision_fraction"] = self.collector.timing["vision_s"] / (t2 - t0)
        if noise is not None:
            metrics["charts/gradient_noise_scale"] = noise
        metrics.update(self.stats.metrics())
        return metrics

    def _adapt_lr(self, kl: float) -> None:
        """rl_games' adaptive schedule: divide the learning rates by 1.5 when the KL overshoots 2x the
        target, multiply when it stays under half, within [1e-6, 1e-2] x the configured rate's ratio.
        Every rank sees the same KL (DDP averages the gradients, not the KL: ranks agree on it by all-reduce)."""
        kl = all_mean(kl, self.world)
        factor = 1 / 1.5 if kl > 2.0 * self.cfg.kl_target else 1.5 if kl < 0.5 * self.cfg.kl_target else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = min(max(group["lr"] * factor, 1e-6), 1e-2)

    def _loop(self) -> tuple[dict, bool]:
        """Iterate to cfg.steps or the time limit (agreed by every rank); (last metrics, stopped by the limit)."""
        from tqdm import tqdm  # noqa: PLC0415

        cfg = self.cfg
        last = {"log": time.perf_counter(), "eval": time.perf_counter()}
        bar = tqdm(total=cfg.steps, initial=self.frames, desc=f"train-policy {cfg.algo}", unit="frame",
                   unit_scale=True, disable=not self.scaffold.main)
        metrics: dict = {}
        try:
            while self.frames < cfg.steps:
                if self.scaffold.time_up(cfg.time_limit_min):
                    return metrics, True
                before = self.frames
                metrics = self.iterate()
                bar.update(self.frames - before)
                if self.scaffold.main:
                    log_when_due(self, metrics, last)
                    bar.set_postfix(reward=f"{metrics['charts/mean_reward']:.3f}",
                                    successes=f"{metrics.get('charts/successes_per_episode', 0):.1f}")
                if self.iteration % cfg.checkpoint_every == 0:
                    self.checkpoint()
        finally:
            bar.close()
        return metrics, False

    def time_shares(self) -> dict[str, float]:
        """Fractions of this process's iteration time: collecting (of which stepping the environments, with
        rendering for pixels, and the vision sub-model's forward pass) and updating."""
        total = self.seconds["iterations"]
        if total <= 0:
            return {}
        shares = {"collect": self.seconds["collect"] / total, "env": self.seconds["env"] / total}
        if self.model.vision is not None:
            shares["vision"] = self.seconds["vision"] / total
        shares["update"] = 1.0 - shares["collect"]
        return shares

    def run(self) -> dict:
        cfg = self.cfg
        try:
            metrics, stopped_early = self._loop()
            final = self.evaluate() if self.scaffold.main else {}
        finally:
            self.env.close()
        wall = self.scaffold.wall_time
        self.checkpoint(final)
        result = {
            "run_name": self.tracker.name if self.tracker else "", "task": cfg.task, "obs": cfg.obs,
            "algo": cfg.algo, "frames": self.frames, "iterations": self.iteration,
            "optimizer_steps": self.optimizer_steps, "wall_time_s": wall, "stopped_by_time_limit": stopped_early,
            "frames_per_s": self.frames / wall if wall > 0 else 0.0, "evaluation": final,
            "train_episodes": self.stats.total, "world_size": self.world, "git_sha": git_sha(),
            "physics": self.env_cfg.physics, "env_workers": self.env_workers,
            "curriculum": self.curriculum.state_dict(), "checkpoint": str(self.scaffold.ckpt_path),
            "time_shares": self.time_shares(), "last_metrics": metrics,
        }
        log_closing(self, final, wall)
        self.scaffold.finish(result, self.tracker)
        return result


def train(cfg: TrainPolicyConfig, resume: bool = False) -> dict:
    if cfg.algo == "dagger":
        from dexvision.policy.dagger import DaggerTrainer  # noqa: PLC0415

        return DaggerTrainer(cfg, resume).run()
    if cfg.algo == "sac":
        from dexvision.policy.offpolicy import SacTrainer  # noqa: PLC0415

        return SacTrainer(cfg, resume).run()
    return PolicyTrainer(cfg, resume).run()


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="train-policy", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    p.add_argument("--config", help="YAML TrainPolicyConfig")
    p.add_argument("--task", help="gimbal-block (default) or hand-block")
    p.add_argument("--obs", help="state (default) or pixels")
    p.add_argument("--algo", help="ppo (default), bc, bc+ppo, sac (off-policy, hindsight goal relabelling) or dagger "
                                  "(distil the planner: needs --planner)")
    p.add_argument("--planner", help="dagger: the planner config whose actions label the visited states")
    p.add_argument("--steps", help="environment frames to collect, e.g. 2M or 200k (default 1M)")
    p.add_argument("--bc-steps", help="bc+ppo: frames of cloning first (default half of --steps)")
    p.add_argument("--teacher", help="state policy checkpoint to clone (bc, bc+ppo)")
    p.add_argument("--init-vision", help="train-vision checkpoint: starts the vision sub-model")
    p.add_argument("--shared-embeddings", action="store_true", help="value network reuses the policy's embeddings")
    p.add_argument("--image-size", type=int, help="rendered image size for --obs pixels (default 64)")
    p.add_argument("--num-envs", type=int, help="environments per process (default 64)")
    p.add_argument("--env-workers", type=int,
                   help="processes stepping the environments (default: one per core for hand-block state, else none)")
    p.add_argument("--physics", help="hand physics profile: fast (default) or reference")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--out", help="run directory (default runs/<sha7>-policy-<task>-<obs>-<algo>)")
    add_run_flags(p)
    return p


def config_from_args(args: argparse.Namespace) -> tuple[TrainPolicyConfig, list[str]]:
    """The run's config from parsed flags (no files written, nothing started), and its overrides."""
    overrides = flag_overrides(args, ("task", "obs", "algo", "planner", "teacher", "init_vision", "image_size", "num_envs",
                                      "env_workers", "seed", "out"), ("shared_embeddings", "wandb"))
    if args.physics is not None:
        check_flag_agrees(args.set, "env.physics", "--physics", args.physics)
        overrides.append(f"env.physics={args.physics}")
    for flag in ("steps", "bc_steps"):  # counts like 2M or 200k
        if getattr(args, flag) is not None:
            count = parse_count(getattr(args, flag), '--' + flag.replace('_', '-'))
            check_flag_agrees(args.set, flag, "--" + flag.replace("_", "-"), count)
            overrides.append(f"{flag}={count}")
    cfg = load_config(TrainPolicyConfig, args.config, overrides)
    if cfg.obs != "pixels" and cfg.render_workers != -1:  # a shared config may set it for its pixel runs: a warning
        log.warning("render_workers=%d is read by --obs pixels only; this run observes %s: it is ignored",
                    cfg.render_workers, cfg.obs)
    if args.image_size is not None and cfg.obs != "pixels":
        raise UserError(f"--image-size sets the images of --obs pixels; this run observes {cfg.obs} (drop it, or "
                        "add --obs pixels)")
    if cfg.obs == "pixels" and not cfg.init_vision:
        check_arch(cfg.vision_arch)
    return cfg, overrides


@cli
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    check_flags(args, "seed")  # before any file or directory is made
    cfg, overrides = config_from_args(args)
    if args.resume:
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        cfg = resumed_config(TrainPolicyConfig, cfg, run_dir, args.config, overrides, load_for_resume)
    result = train(cfg, resume=args.resume)
    if is_main_process():
        e = result["evaluation"]
        print(f"{result['run_name']}: {result['frames']} frames, {result['optimizer_steps']} optimizer steps in "
              f"{result['wall_time_s']:.0f} s ({result['frames_per_s']:.0f} frames/s); greedy evaluation over "
              f"{e.get('episodes', 0)} episodes: successes mean {e.get('mean_successes', 0):.1f}, "
              f"median {e.get('median_successes', 0):g}")
        shares = result["time_shares"]
        if shares:
            inside = f"environments {shares['env']:.0%}"
            if "vision" in shares:
                inside += f", encoder {shares['vision']:.0%}"
            print(f"iterations' time: collection {shares['collect']:.0%} ({inside}), update {shares['update']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
