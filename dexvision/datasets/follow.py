"""Reading a dataset that render-shards is still writing: finished shards as they land, least-read first.

    watcher = ShardWatcher("data/hand-1M", wait_s=600)      # waits for the manifest (render-shards makes it first)
    watcher.wait_for(train_ids, wait_s=600)                 # until one of those shards is finished
    loader = make_follow_loader(watcher, train_ids, batch_size=64, num_workers=4)   # endless batches

A shard counts once it is finished: its record in `.records/` names it and its tar has the
recorded size (`shards.finished_record`). render-shards renames a shard into place whole
before it writes the record, so a finished shard is never partial; the watcher lists the
records, never the directory's shards, so the temporaries of a shard in the making
(`.shard-N.tar.tmp-...`) are never opened. Each time a DataLoader worker needs a shard it
takes, among the finished ones, one that this process has read least (counted over all its
workers; ties drawn at random), so a shard that has just landed is read before the others
are read again. On a finished dataset the same loader reads every shard in turn.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import webdataset as wds

from dexvision.datasets.format import shard_name
from dexvision.datasets.loader import collate, decode, web_loader
from dexvision.datasets.shards import MANIFEST, RECORDS, DatasetSpec, finished_record, load_manifest
from dexvision.errors import UserError

log = logging.getLogger(__name__)
_RECORD = re.compile(r"^shard-(\d+)\.json$")  # a finished shard's record; its temporaries start with a dot


def _wait(ready, wait_s: float, poll_s: float, message: str, timeout: str):
    """Call `ready()` until it returns something truthy; log `message` once if it has to wait."""
    deadline = time.monotonic() + wait_s
    logged = False
    while not (result := ready()):
        if time.monotonic() > deadline:
            raise UserError(timeout)
        if not logged:
            log.warning("%s", message)
            logged = True
        time.sleep(poll_s)
    return result


class ShardWatcher:
    """The finished shards of a dataset directory that may still be growing."""

    def __init__(self, root: str | Path, wait_s: float = 600.0, poll_s: float = 0.5):
        self.root = Path(root)
        self.poll_s = poll_s
        self.manifest, self.spec = _wait(self._manifest, wait_s, poll_s,
                                         f"waiting for the dataset {self.root} (render-shards creates it)",
                                         f"no dexvision dataset appeared at {self.root} within {wait_s:.0f} s")
        self._finished: dict[int, dict] = {}

    def _manifest(self) -> tuple[dict, DatasetSpec] | None:
        if not (self.root / MANIFEST).is_file():
            return None
        try:
            return load_manifest(self.root)
        except UserError:  # created without hard links, and not yet whole: read it again
            return None

    def finished(self) -> dict[int, dict]:
        """Records of the finished shards by id. The records directory is listed on every call (once per shard
        a loader takes: cheap next to reading the shard); only records not seen before are read."""
        try:
            names = os.listdir(self.root / RECORDS)
        except FileNotFoundError:
            return self._finished
        for name in names:
            if match := _RECORD.match(name):
                shard_id = int(match[1])
                if shard_id not in self._finished and shard_id < self.spec.num_shards:
                    record = finished_record(self.root, self.spec, shard_id)
                    if record is not None:
                        self._finished[shard_id] = record
        return self._finished

    def finished_among(self, ids: Iterable[int]) -> list[int]:
        done = self.finished()
        return sorted(i for i in ids if i in done)

    def path(self, shard_id: int) -> str:
        return str(self.root / shard_name(shard_id))

    def wait_for(self, ids: Iterable[int], wait_s: float) -> list[int]:
        """The finished shards among `ids`, once there is one (UserError after `wait_s` seconds without)."""
        ids = list(ids)
        return _wait(lambda: self.finished_among(ids), wait_s, self.poll_s,
                     f"waiting for the first finished shard of {self.root} ({len(ids)} to come)",
                     f"no shard of {self.root} was finished within {wait_s:.0f} s; is render-shards running?")


class LeastReadShards(torch.utils.data.IterableDataset):
    """Endless `{"url": path}` of finished shards among `ids`, each the one read least so far.

    `reads` (a shared array, one count per shard of the dataset) is shared by every DataLoader worker of
    this process. Under torchrun a rank prefers the shards whose id modulo the world size is its rank,
    and reads the others while none of its own has finished."""

    def __init__(self, watcher: ShardWatcher, ids: Iterable[int], reads, seed: int = 0, rank: int = 0,
                 world: int = 1):
        super().__init__()
        self.watcher, self.ids, self.reads = watcher, sorted(ids), reads
        self.seed, self.rank, self.world = seed, rank, world

    def next_shard(self, rng: np.random.Generator) -> int:
        finished = self.watcher.wait_for(self.ids, float("inf"))
        finished = [i for i in finished if i % self.world == self.rank] or finished
        with self.reads.get_lock():
            counts = [self.reads[i] for i in finished]
            least = [i for i, c in zip(finished, counts) if c == min(counts)]
            pick = least[int(rng.integers(len(least)))]
            self.reads[pick] += 1
        return pick

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, self.rank, info.id if info else 0])
        while True:
            yield {"url": self.watcher.path(self.next_shard(rng))}


def make_follow_loader(watcher: ShardWatcher, ids: Iterable[int], batch_size: int, num_workers: int = 2,
                       shuffle_buffer: int = 1000, seed: int = 0, rank: int = 0, world: int = 1,
                       reads: dict[int, int] | None = None,
                       transform: Callable[[dict], dict] | None = None) -> wds.WebLoader:
    """Endless batches (as `loader.make_loader` gives) from the finished shards among `ids`, least-read first.
    `reads` starts the counts (shard id -> times read), e.g. from a resumed run; `transform` maps each
    decoded sample in the worker."""
    counts = mp.Array("q", watcher.spec.num_shards)
    for shard_id, n in (reads or {}).items():
        counts[shard_id] = n
    source = LeastReadShards(watcher, ids, counts, seed, rank, world)
    shuffle = wds.shuffle(shuffle_buffer, initial=min(shuffle_buffer, 100)) if shuffle_buffer > 0 else None
    augment = [wds.map(transform)] if transform is not None else []
    pipeline = wds.DataPipeline(source, wds.tarfile_to_samples(), shuffle, wds.map(decode), *augment,
                                wds.batched(batch_size, collation_fn=collate, partial=False))
    return web_loader(pipeline, num_workers)
