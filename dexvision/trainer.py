"""What every trainer does around its own loop: one scaffold for train-vision and train-policy.

    scaffold = Scaffold(run_dir, resume)            # process group, fresh-or-resume check
    ckpt = scaffold.restore(load_fn)                # on --resume: the checkpoint (and its wall time)
    tracker = scaffold.open_tracker(config, wandb, step)
    while ...:
        if scaffold.time_up(cfg.time_limit_min): break   # agreed by every rank
        ...
        scaffold.checkpoint(lambda path: save(path, state))  # rank 0 writes, every rank waits
    scaffold.finish(result, tracker)                # metrics.json, tracker closed, process group down

`resumed_config` gives `--resume` the run's own config back (a flag or file given again
still overrides it). The wall clock spans resumes: a run's time limit and its reported
wall time count the time before an interruption too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch

from dexvision.config import ConfigError, apply_override, deep_update, from_dict, read_yaml
from dexvision.distributed import any_rank, barrier, setup_distributed, teardown
from dexvision.errors import UserError
from dexvision.files import RunLock, check_writable, write_text_output
from dexvision.track.run import Run

log = logging.getLogger(__name__)
T = TypeVar("T")
CHECKPOINT = "checkpoint.pt"


def resumed_config(cls: type[T], cfg: T, run_dir: Path, config_file: str | None, overrides: list[str],
                   load: Callable[[Path], dict]) -> T:
    """--resume continues with the run's own config; only what is given again (file, flags) changes it."""
    ckpt_path = Path(run_dir) / CHECKPOINT
    if not ckpt_path.exists():
        return cfg  # Scaffold reports the missing checkpoint
    ckpt = load(ckpt_path)
    data = ckpt["config"]
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"--resume: {ckpt_path} was written by another version of dexvision (git "
                          f"{str(ckpt.get('git_sha') or 'unknown')[:12]}) whose config has the key '{unknown[0]}', "
                          "which this version does not know: resume it with that version, or start a new run")
    if config_file:
        deep_update(data, read_yaml(config_file))
    for override in overrides:
        apply_override(data, override)
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        if config_file or overrides:
            raise
        raise ConfigError(f"--resume: the config saved in {ckpt_path} (git {str(ckpt.get('git_sha') or 'unknown')[:12]}) "
                          f"is not one this version reads: {e}") from None


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block (a model's initialization) on torch's CPU generator seeded with `seed`, then give the
    process its previous generator state back: the weights are a function of the seed, and nothing
    outside the block sees a changed global state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Scaffold:
    """Run directory, resume, wall clock, agreed time limit, checkpoint + barrier, metrics.json, teardown."""

    def __init__(self, run_dir: str | Path, resume: bool = False):
        # Values below float32's normal range count as zero on the CPU. Without this, a randomly
        # initialized encoder trained by cloning filled a third of Adam's moments with denormals and
        # its updates ran 3x slower (BENCHMARKS.md, "Why the random-init student slowed").
        torch.set_flush_denormal(True)
        self.rank, self.world, self.device = setup_distributed()
        self.run_dir = Path(run_dir)
        self.ckpt_path = self.run_dir / CHECKPOINT
        self.resume = resume
        if resume and not self.ckpt_path.exists():
            raise UserError(f"--resume: no checkpoint in {self.run_dir}")
        if not resume and self.ckpt_path.exists():
            raise UserError(f"{self.run_dir} already holds a run; pass --resume to continue it, or another --out")
        # before any work: a run directory that cannot be written ends here, not at the first save; then one writer
        # per run directory (rank 0 holds the lock for all ranks; every rank learns whether rank 0 got it)
        self.lock = RunLock(self.run_dir)
        refused = None
        if self.main:
            try:
                check_writable(self.run_dir, "--out", directory=True)
                self.lock.acquire()
            except UserError as e:
                refused = e
        if any_rank(refused is not None, self.world, self.device):
            raise refused or UserError(f"{self.run_dir} is in use by another run (see rank 0's message)")
        self._start = time.perf_counter()

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints, metrics and logs."""
        return self.rank == 0

    def restore(self, load: Callable[[Path], dict]) -> dict | None:
        """The checkpoint to continue from (None for a fresh run); the wall clock resumes where it stopped."""
        if not self.resume:
            return None
        ckpt = load(self.ckpt_path)
        self.start_clock(ckpt.get("wall_time_s", 0.0))
        return ckpt

    def start_clock(self, elapsed: float = 0.0) -> None:
        """(Re)start the wall clock, `elapsed` seconds already spent (before an interruption)."""
        self._start = time.perf_counter() - elapsed

    @property
    def wall_time(self) -> float:
        return time.perf_counter() - self._start

    def time_up(self, limit_min: float) -> bool:
        """True on every rank once any rank has run `limit_min` minutes (0: no limit). Every rank must call
        it at the same points of its loop: it is a collective under torchrun."""
        over = bool(limit_min) and self.wall_time > 60 * limit_min
        if any_rank(over, self.world, self.device):
            log.warning("time limit of %.1f min reached", limit_min)
            return True
        return False

    def open_tracker(self, config: dict, wandb: bool, step: int) -> Run | None:
        """The run's tracker on rank 0 (None elsewhere); a resumed run keeps its name and its metrics up to `step`."""
        if not self.main:
            return None
        return Run(self.run_dir, self.run_dir.name, config, wandb=wandb, resume=self.resume, resume_step=step)

    def checkpoint(self, save: Callable[[Path], Any]) -> None:
        """Rank 0 calls `save(path)`; every rank waits for it (so none reads or ends before the file exists)."""
        if self.main:
            save(self.ckpt_path)
        barrier(self.world)

    def finish(self, result: dict, tracker: Run | None) -> None:
        """Write RUN_DIR/metrics.json and close the tracker (rank 0), then leave the process group."""
        if self.main:
            try:
                write_text_output(self.run_dir / "metrics.json", json.dumps(result, indent=1) + "\n", "run's summary")
            finally:
                if tracker is not None:
                    tracker.close()
                self.lock.release()
        teardown(self.world)
