"""`train-vision`: pretrain a pose estimator (three camera images -> block position and orientation).

    train-vision --data data/gimbal-20k --arch impala --image-size 64 --steps 5000 --out runs/gimbal-impala
    train-vision --data data/hand-1M --arch resnet50 --batch-size 128 --steps 100000 --wandb
    torchrun --nproc_per_node 8 -m dexvision.vision.train --data /shared/hand-10M --arch resnet50 ...
    train-vision --out runs/gimbal-impala --data data/gimbal-20k --resume      # continue a killed run
    train-vision --data data/hand-1M --follow --time-limit-min 60               # while render-shards writes it

Reads shards through dexvision.datasets (multi-worker, shuffled, split by node and
worker); without --val-data the last shards of --data (a deterministic 10%) are
held out for validation. With --follow it trains on a dataset render-shards is
still writing, taking up shards as they land (vision/follow.py). Writes
RUN_DIR/checkpoint.pt (every --checkpoint-every steps and at the end) and
RUN_DIR/metrics.json; logs to TensorBoard (and W&B).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from dexvision.config import bounds, check_bounds, check_choice, flag_overrides, load_config, to_dict
from dexvision.datasets.loader import make_loader
from dexvision.datasets.shards import check_val_data, load_manifest, shard_paths
from dexvision.distributed import barrier, is_main_process
from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.track.run import add_run_flags, run_name
from dexvision.trainer import Scaffold, resumed_config, seeded
from dexvision.version import git_sha
from dexvision.vision.augment import Augment, AugmentConfig, write_sheet
from dexvision.vision.checkpoint import load_checkpoint, save_checkpoint
from dexvision.vision.encoders import check_arch
from dexvision.vision.evaluation import evaluate, next_batch
from dexvision.vision.follow import FollowData
from dexvision.vision.keypoints import solve_pose
from dexvision.vision.model import HEADS, PoseNet, PoseNetConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainVisionConfig:
    data: str = ""
    val_data: str | None = None
    arch: str = "impala"
    image_size: int | None = None  # default: the dataset's; other sizes are resized on the fly
    batch_size: int = 64  # per process
    steps: int = 2000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    val_fraction: float = 0.1  # of the shards of --data, when there is no --val-data
    val_every: int = 500
    val_samples: int = 2000  # validation samples per evaluation (0: all)
    checkpoint_every: int = 500
    log_every_s: float = 5.0
    num_workers: int = 2
    shuffle_buffer: int = 2000
    seed: int = 0
    compile: bool = False
    head_hidden: int = 512
    # direct: position and 6D rotation from the cameras' concatenated features (as the original); keypoints: each
    # camera's corner and centre projections, solved to a pose with the labels' calibration (vision/keypoints.py)
    head: str = "direct"
    out: str = ""  # run directory; default runs/<sha7>-vision-<arch>-<dataset>
    wandb: bool = False
    time_limit_min: float = 0.0  # stop (validate, checkpoint) once training has run this long; 0: no limit
    follow: bool = False  # train on a dataset render-shards is still writing (vision/follow.py)
    follow_wait_min: float = 10.0  # --follow: how long to wait for the dataset and its first finished shard
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)  # training images (vision/augment.py)

    def __post_init__(self):
        check_bounds(self, bounds("seed"))
        for name in ("batch_size", "steps", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be in (0, 1)")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        check_bounds(self, bounds("num_workers", "time_limit_min", "log_every_s", "follow_wait_min"))
        if self.image_size is not None:
            check_bounds(self, bounds("image_size"))
        for name in ("warmup_steps", "val_samples", "shuffle_buffer"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.head_hidden < 1 or self.weight_decay < 0:
            raise ValueError("need head_hidden >= 1 and weight_decay >= 0")
        check_choice("head", self.head, HEADS)


# -- data -----------------------------------------------------------------------------------
def split_shards(data: str, val_data: str | None, val_fraction: float) -> tuple[list[str], list[str], dict]:
    """(train shard paths, validation shard paths, data identity) for the config."""
    manifest, spec = load_manifest(Path(data))
    paths = shard_paths(data, manifest)
    counts = [r["count"] for r in sorted(manifest["shards"], key=lambda r: r["id"])]
    if val_data:
        train, (val_manifest, val_spec) = paths, load_manifest(Path(val_data))
        check_val_data(data, spec, val_data, val_spec)
        val = [str(Path(val_data) / r["shard"]) for r in sorted(val_manifest["shards"], key=lambda r: r["id"])]
    else:
        if len(paths) < 2:
            raise UserError(f"{data} has {len(paths)} finished shard(s): hold-out validation needs at least 2 "
                            "(render more, use a smaller --shard-size, or pass --val-data)")
        n_val = max(1, round(val_fraction * len(paths)))
        train, val = paths[:-n_val], paths[-n_val:]
        counts = counts[:-n_val]
    if not train or not val:
        raise UserError(f"no training or validation shards in {data}")
    spec_json = json.dumps(manifest["spec"], sort_keys=True)
    identity = {"path": str(Path(data).resolve()), "spec_sha256": hashlib.sha256(spec_json.encode()).hexdigest(),
                "train_shards": len(train), "train_samples": sum(counts), "val_shards": len(val),
                "val_data": val_data}
    return train, val, {"identity": identity, "spec": spec}


# -- training -------------------------------------------------------------------------------
# A keypoint head's logged training errors need a pose solve per batch (8% of a step): one step in this many is
# solved, and the window's errors are the mean of those steps' medians (the direct head's: every step's).
KEYPOINT_ERRORS_EVERY = 4


def lr_lambda(cfg: TrainVisionConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def default_run_dir(cfg: TrainVisionConfig) -> Path:
    return Path("runs") / run_name(f"vision-{cfg.arch}-{Path(cfg.data).name}")


class _Window:
    """Running sums of the training statistics logged every few seconds."""

    KEYS = ("wait", "busy", "steps", "error_steps", "images", "loss")

    def __init__(self):
        self.start = time.perf_counter()
        self.sums = dict.fromkeys(self.KEYS, 0.0)

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def metrics(self, lr: float) -> dict[str, float]:
        """The window's means: losses/total and each part of the head's loss (losses/position, losses/rotation or
        losses/keypoints), and the median training errors (errors/train_<error>_median)."""
        s, n = self.sums, max(self.sums["steps"], 1)
        elapsed = time.perf_counter() - self.start
        parts = {f"losses/{k[5:]}": v / n for k, v in s.items() if k.startswith("loss_")}
        errors = {f"errors/train_{k}_median": v / max(s["error_steps"], 1) for k, v in s.items()
                  if k not in self.KEYS and not k.startswith("loss_")}
        return {
            "losses/total": s["loss"] / n, **parts, **errors,
            "charts/learning_rate": lr, "perf/images_per_s": s["images"] / max(elapsed, 1e-9),
            "perf/data_wait_fraction": s["wait"] / max(s["busy"], 1e-9),
        }


class VisionTrainer:
    """One train-vision run: model, optimizer, data, tracking; `run()` trains and returns the summary."""

    def __init__(self, cfg: TrainVisionConfig, resume: bool = False):
        self.cfg = cfg
        check_arch(cfg.arch)
        if not cfg.follow:
            self.train_urls, self.val_urls, data = split_shards(cfg.data, cfg.val_data, cfg.val_fraction)
        self.scaffold = Scaffold(Path(cfg.out) if cfg.out else default_run_dir(cfg), resume)
        self.follow = FollowData(cfg, self.scaffold.rank, self.scaffold.world) if cfg.follow else None  # waits
        if self.follow:
            data = {"identity": self.follow.identity, "spec": self.follow.watcher.spec}
        self.data_identity, spec = data["identity"], data["spec"]
        self.task = spec.data.task  # recorded in checkpoints: a policy's --init-vision checks it
        self.rank, self.world, self.device = self.scaffold.rank, self.scaffold.world, self.scaffold.device
        self.model_cfg = PoseNetConfig(arch=cfg.arch, image_size=cfg.image_size or spec.data.render.image_size,
                                       num_cameras=spec.data.render.randomization.cameras.count,
                                       head_hidden=cfg.head_hidden, head=cfg.head)
        if cfg.head == "keypoints" and self.model_cfg.num_cameras < 2:
            raise UserError(f"the keypoint head triangulates the block from two or more calibrated cameras; {cfg.data} "
                            "has 1 per sample (use head=direct)")
        if not cfg.follow and cfg.batch_size > self.data_identity["train_samples"]:  # (after --out's and the data's checks)
            raise UserError(f"--batch-size {cfg.batch_size} is larger than the {self.data_identity['train_samples']} "
                            f"training samples of {cfg.data}: render more, or a smaller --batch-size")
        with seeded(cfg.seed + self.rank):
            self.model = PoseNet(self.model_cfg).to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg))
        self.step = self._restore(self.scaffold.restore(load_checkpoint))
        ddp = torch.nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model
        self.forward = torch.compile(ddp) if cfg.compile else ddp
        self.tracker = self.scaffold.open_tracker(to_dict(cfg), cfg.wandb, self.step)
        augment = None
        if cfg.augment.enabled:  # seeded by rank and step: a resumed run draws new augmentations
            augment = Augment(cfg.augment, cfg.seed + 1000 * self.rank + 7919 * self.step)
            first = self.follow.first_train_shard() if self.follow else self.train_urls[0]
            if self.rank == 0 and Path(first).is_file():  # a picture of what the model is trained on
                write_sheet(first, cfg.augment, cfg.seed, self.scaffold.run_dir / "augment-sheet.png")
        self.loader = self.follow.loader(cfg, augment) if self.follow else make_loader(
            self.train_urls, cfg.batch_size, num_workers=cfg.num_workers, shuffle_buffer=cfg.shuffle_buffer,
            seed=cfg.seed + 1000 * self.rank, resampled=True, transform=augment)
        cuda = self.device.type == "cuda"
        self.amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
        self.stopped_at: int | None = None  # the step at which the time limit stopped the run

    def _restore(self, ckpt: dict | None) -> int:
        """The step to continue from: 0 for a fresh run, the checkpoint's after loading its states."""
        if ckpt is None:
            return 0
        if {"head": "direct", **ckpt["model_config"]} != to_dict(self.model_cfg):  # (older runs lack "head")
            raise UserError(f"--resume: {self.scaffold.ckpt_path} holds a different model "
                            f"({ckpt['model_config']['arch']})")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.follow:
            self.follow.restore(ckpt.get("follow"))
        return ckpt["step"]

    def checkpoint(self, metrics: dict | None = None) -> None:
        follow = {"follow": self.follow.state()} if self.follow else {}  # every rank: the tallies are gathered
        self.scaffold.checkpoint(lambda path: save_checkpoint(path, {
            "model_config": to_dict(self.model_cfg), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "step": self.step, "wall_time_s": self.scaffold.wall_time, "config": to_dict(self.cfg),
            "git_sha": git_sha(), "run_name": self.tracker.name, "data": self.data_identity, "metrics": metrics or {},
            "task": self.task, **follow,
        }))

    def validate(self) -> dict:
        metrics = {}
        if self.scaffold.main:
            cfg = self.cfg
            urls = self.follow.val_urls() if self.follow else self.val_urls
            if urls:
                metrics = evaluate(self.model, urls, cfg.batch_size, cfg.num_workers, self.device, cfg.val_samples,
                                   cfg.data)
                self.tracker.log(self.step, {f"val/{k}": v for k, v in metrics.items()}, with_system=False)
        barrier(self.world)  # the other ranks wait for validation
        return metrics

    def train_step(self, iterator, window: _Window) -> None:
        t0 = time.perf_counter()
        batch = next_batch(iterator, self.cfg.data)
        t1 = time.perf_counter()
        images = batch["images"].to(self.device, non_blocking=True)
        with self.amp:
            pred = self.forward(images)
        truth = self.model.truth(batch)
        losses = self.model.loss(pred, truth)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        if self.follow:
            self.follow.tally.add(batch["index"], self.step)
        errs = {}
        if self.cfg.head == "direct" or not window.sums["error_steps"] or self.step % KEYPOINT_ERRORS_EVERY == 0:
            with torch.no_grad():
                pred = {k: v.detach() for k, v in pred.items()}
                if "position" not in pred:  # a keypoint head: the pose its keypoints solve to
                    pred.update(zip(("position", "rotation"),
                                    solve_pose(pred["keypoints"], pred["log_scale"].exp(), truth["cameras"])))
                errs = {k: v.median().item() for k, v in self.model.errors(pred, truth).items()}
        window.add(wait=t1 - t0, busy=time.perf_counter() - t0, steps=1, error_steps=float(bool(errs)),
                   images=images.shape[0] * images.shape[1] * self.world, loss=losses["loss"].item(),
                   **{f"loss_{k}": v.item() for k, v in losses.items() if k != "loss"}, **errs)

    def run_loop(self) -> tuple[float, float, float]:
        """Train to cfg.steps (or the time limit, which every rank reaches at the same step); returns (wall
        seconds of this process, images seen, seconds waiting for data)."""
        cfg, start = self.cfg, time.perf_counter()
        iterator, window, totals = iter(self.loader), _Window(), {"images": 0.0, "wait": 0.0}
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train-vision", unit="step", disable=self.rank != 0)
        try:
            while self.step < cfg.steps:
                if self.scaffold.time_up(cfg.time_limit_min):
                    self.stopped_at = self.step
                    log.warning("rank %d stopped by the time limit at step %d of %d", self.rank, self.step, cfg.steps)
                    break
                self.train_step(iterator, window)
                bar.update(1)
                if self.rank == 0 and (time.perf_counter() - window.start >= cfg.log_every_s
                                       or self.step == cfg.steps):
                    metrics = window.metrics(self.scheduler.get_last_lr()[0])
                    self.tracker.log(self.step, metrics)
                    bar.set_postfix(loss=f"{metrics['losses/total']:.3f}",
                                    mm=f"{metrics['errors/train_position_mm_median']:.1f}",
                                    deg=f"{metrics['errors/train_orientation_deg_median']:.1f}")
                    totals["images"] += window.sums["images"]
                    totals["wait"] += window.sums["wait"]
                    window = _Window()
                if self.step % cfg.val_every == 0 and self.step < cfg.steps:
                    self.validate()
                if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                    self.checkpoint()
        finally:
            bar.close()  # before any error message, so it starts on its own line
        totals["images"] += window.sums["images"]
        totals["wait"] += window.sums["wait"]
        return time.perf_counter() - start, totals["images"], totals["wait"]

    def run(self) -> dict:
        wall, images, wait = self.run_loop()
        val_metrics = self.validate()
        self.checkpoint(val_metrics)
        result = {
            "run_name": self.tracker.name if self.tracker else "", "steps": self.step,
            "wall_time_s": self.scaffold.wall_time, "stopped_by_time_limit": self.stopped_at is not None,
            "images_per_s": images / wall if wall > 0 else 0.0, "data_wait_fraction": wait / wall if wall > 0 else 0.0,
            "validation": val_metrics, "arch": self.cfg.arch, "image_size": self.model_cfg.image_size,
            "world_size": self.world, "git_sha": git_sha(), "data": self.data_identity,
            **({"follow": self.follow.summary()} if self.follow else {}),
        }
        self.scaffold.finish(result, self.tracker)
        return result


def train(cfg: TrainVisionConfig, resume: bool = False) -> dict:
    """Train a pose model as configured; returns the summary also written to RUN_DIR/metrics.json."""
    return VisionTrainer(cfg, resume).run()


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="train-vision", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="YAML TrainVisionConfig")
    p.add_argument("--data", help="dataset directory made by render-shards")
    p.add_argument("--val-data", help="validation dataset directory (default: hold out the last shards of --data)")
    p.add_argument("--arch", help="impala, resnet50 or any timm model name (default impala)")
    p.add_argument("--image-size", type=int, help="input size (default: the dataset's)")
    p.add_argument("--batch-size", type=int, help="per process (default 64)")
    p.add_argument("--steps", type=int, help="optimizer steps (default 2000)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    p.add_argument("--num-workers", type=int, help="data loader processes per trainer (default 2)")
    p.add_argument("--out", help="run directory (default runs/<sha7>-vision-<arch>-<dataset>)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--follow", action="store_true",
                   help="train on a dataset render-shards is still writing, taking up shards as they land")
    p.add_argument("--time-limit-min", type=float, help="stop (validate, checkpoint) after this many minutes")
    add_run_flags(p)
    return p


def config_from_args(args: argparse.Namespace) -> tuple[TrainVisionConfig, list[str]]:
    """The run's config from parsed flags (no files written, nothing started), and its overrides."""
    overrides = flag_overrides(args, ("data", "val_data", "arch", "image_size", "batch_size", "steps", "lr",
                                      "num_workers", "out", "time_limit_min"), ("compile", "wandb", "follow"))
    cfg = load_config(TrainVisionConfig, args.config, overrides)
    check_arch(cfg.arch)
    return cfg, overrides


def summary_line(result: dict) -> str:
    """The closing line: steps, speed, validation errors (and, with --follow, what was read)."""
    v = result["validation"]
    line = f"{result['run_name']}: {result['steps']} steps in {result['wall_time_s']:.0f} s, " \
           f"{result['images_per_s']:.0f} images/s; "
    if "follow" in result:
        f = result["follow"]
        line += f"read {f['samples_read']} samples from {f['shards_read']} of {f['planned_shards']} shards; "
    if not v:
        return line + "no validation: none of the held-out shards had finished (evaluate-vision the checkpoint later)"
    return line + (f"validation ({v.get('samples', 0):.0f} samples): "
                   f"position {v['position_mm/median']:.1f} mm median ({v['position_mm/p90']:.1f} p90), "
                   f"orientation {v['orientation_deg/median']:.1f} deg median ({v['orientation_deg/p90']:.1f} p90)")


@cli
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    cfg, overrides = config_from_args(args)
    if args.resume:
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        cfg = resumed_config(TrainVisionConfig, cfg, run_dir, args.config, overrides, load_checkpoint)
    if not cfg.data:
        raise UserError("--data is required: a dataset directory made by render-shards")
    result = train(cfg, resume=args.resume)
    if is_main_process():
        print(summary_line(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
