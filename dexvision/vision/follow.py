"""`train-vision --follow`: training on a dataset that render-shards is still writing.

The run waits for the dataset and its first finished training shard, then trains on the
finished shards, reading a newly landed shard before it reads the others again
(`datasets.follow`), and stops on its own budget (--steps, time_limit_min). Without
--val-data it holds out every k-th shard of the dataset's plan (k = 1 / val_fraction: ids
k-1, 2k-1, ...; the last shard when there are fewer than k), so validation shards land
while rendering goes on; a validation finds only the held-out shards finished by then.
What the run read is recorded: samples trained on per shard and the step at which each
shard was first read, in metrics.json (`follow`) and in the checkpoint (a resumed run
goes on counting); under torchrun, summed over the ranks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from dexvision.datasets.follow import ShardWatcher, make_follow_loader
from dexvision.datasets.format import shard_name
from dexvision.datasets.loader import shard_urls
from dexvision.datasets.shards import check_val_data, load_manifest
from dexvision.distributed import gather_lists
from dexvision.errors import UserError

log = logging.getLogger(__name__)


def held_out_ids(num_shards: int, val_fraction: float) -> list[int]:
    """Every k-th shard id (k = round(1 / val_fraction), at least 2), or the last one if that gives none."""
    k = max(2, round(1 / val_fraction))
    return [i for i in range(num_shards) if (i + 1) % k == 0] or [num_shards - 1]


class ShardTally:
    """Samples trained on per shard, and the step at which each shard was first read."""

    def __init__(self, shard_size: int, shards: list[dict] | None = None):
        self.shard_size = shard_size
        self.samples = {r["id"]: r["samples"] for r in shards or []}
        self.first_step = {r["id"]: r["first_step"] for r in shards or []}

    def add(self, indices: torch.Tensor, step: int) -> None:
        ids, counts = torch.unique(indices // self.shard_size, return_counts=True)
        for shard_id, n in zip(ids.tolist(), counts.tolist()):
            self.samples[shard_id] = self.samples.get(shard_id, 0) + n
            self.first_step.setdefault(shard_id, step)

    def shards(self) -> list[dict]:
        return [{"shard": shard_name(i), "id": i, "samples": self.samples[i], "first_step": self.first_step[i]}
                for i in sorted(self.samples)]

    def merged(self, world: int) -> ShardTally:
        """The tally of every rank together (a collective under torchrun: every rank calls it)."""
        merged = ShardTally(self.shard_size)
        for r in gather_lists(self.shards(), world):
            merged.samples[r["id"]] = merged.samples.get(r["id"], 0) + r["samples"]
            merged.first_step[r["id"]] = min(merged.first_step.get(r["id"], r["first_step"]), r["first_step"])
        return merged

    def reads(self) -> dict[int, int]:
        """Whole-shard reads so far, per shard: where a resumed loader starts its counts."""
        return {i: n // self.shard_size for i, n in self.samples.items()}


class FollowData:
    """The data side of a --follow run: the watched dataset, its train/validation split and the tally."""

    def __init__(self, cfg, rank: int = 0, world: int = 1):
        if not Path(cfg.data).is_dir() and (Path(cfg.data).suffix == ".tar" or "{" in cfg.data):
            raise UserError(f"--follow reads a dataset directory made by render-shards, not shard paths ({cfg.data})")
        wait_s = 60 * cfg.follow_wait_min
        self.watcher = ShardWatcher(cfg.data, wait_s)
        spec, n = self.watcher.spec, self.watcher.spec.num_shards
        self.val_ids = [] if cfg.val_data else held_out_ids(n, cfg.val_fraction)
        held_out = set(self.val_ids)
        self.train_ids = [i for i in range(n) if i not in held_out]
        if not self.train_ids:
            raise UserError(f"{cfg.data} plans {n} shard(s): hold-out validation needs at least 2 "
                            "(use a smaller --shard-size, or pass --val-data)")
        if cfg.val_data:  # the same checks as without --follow, once the plan is known and before the shards
            check_val_data(cfg.data, spec, cfg.val_data, load_manifest(Path(cfg.val_data))[1])
        self.val_fixed = shard_urls(cfg.val_data) if cfg.val_data else None
        self.rank, self.world = rank, world
        self.tally = ShardTally(spec.shard_size)
        self.watcher.wait_for(self.train_ids, wait_s)
        spec_json = json.dumps(self.watcher.manifest["spec"], sort_keys=True)
        self.identity = {"path": str(Path(cfg.data).resolve()), "follow": True,
                         "spec_sha256": hashlib.sha256(spec_json.encode()).hexdigest(), "planned_shards": n,
                         "train_shards": len(self.train_ids), "val_shards": len(self.val_ids),
                         "val_data": cfg.val_data}

    def loader(self, cfg, transform=None):
        """Endless training batches, least-read shards first (counts resumed from the tally); `transform`
        maps each decoded sample (augmentation)."""
        return make_follow_loader(self.watcher, self.train_ids, cfg.batch_size, cfg.num_workers, cfg.shuffle_buffer,
                                  cfg.seed + 1000 * self.rank, self.rank, self.world, self.tally.reads(), transform)

    def first_train_shard(self) -> str:
        """A finished training shard (the run has waited for one)."""
        return self.watcher.path(self.watcher.finished_among(self.train_ids)[0])

    def val_urls(self) -> list[str]:
        """--val-data's shards, or the held-out shards finished by now (empty: nothing to validate on yet)."""
        if self.val_fixed is not None:
            return self.val_fixed
        urls = [self.watcher.path(i) for i in self.watcher.finished_among(self.val_ids)]
        if not urls:
            log.warning("no held-out shard of %s has finished yet (ids %s...): validation skipped",
                        self.watcher.root, self.val_ids[:3])
        return urls

    def state(self) -> dict:
        """What the checkpoint keeps (every rank calls it)."""
        return {"shards": self.tally.merged(self.world).shards()}

    def restore(self, state: dict | None) -> None:
        """Go on counting from a checkpoint's tally: rank 0 holds it, so the ranks' sum stays right."""
        shards = (state or {}).get("shards") if self.rank == 0 else None
        self.tally = ShardTally(self.watcher.spec.shard_size, shards)

    def summary(self) -> dict:
        """What metrics.json records (every rank calls it)."""
        shards = self.tally.merged(self.world).shards()
        return {"shards_read": len(shards), "samples_read": sum(r["samples"] for r in shards),
                "shards_finished": len(self.watcher.finished()), "planned_shards": self.watcher.spec.num_shards,
                "shards": shards}
