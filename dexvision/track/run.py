"""A tracked run: a directory with the run's name, config, code version and metrics.

    RUN_DIR/run.json        name (<sha7>-<name>), git SHA, resolved config, command line
    RUN_DIR/metrics.jsonl   one JSON line per logging step: {"step": ..., "time": ..., metric: value}
    RUN_DIR/tb/             TensorBoard event files (no account, no server: `tensorboard --logdir runs`)
    RUN_DIR/wandb/          Weights & Biases files, with --wandb (offline unless WANDB_MODE=online
                            or an API key is set; `wandb sync RUN_DIR/wandb/offline-run-*` uploads later)

Metric names are grouped: `losses/`, `errors/`, `charts/`, `perf/`, `system/`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from dexvision.errors import UserError
from dexvision.track.system import SystemMonitor
from dexvision.version import git_sha


def run_name(name: str) -> str:
    """`<sha7>-<name>`: every run name says which code made it."""
    sha = git_sha()
    prefix = sha[:7] if sha != "unknown" else "nogit"
    return name if name.startswith(prefix + "-") else f"{prefix}-{name}"


class Run:
    """Logs metrics of one run to JSON lines, TensorBoard and optionally W&B. Only rank 0 should create one."""

    def __init__(self, run_dir: str | Path, name: str, config: dict, wandb: bool = False, resume: bool = False,
                 resume_step: int | None = None):
        """A fresh run starts metrics.jsonl anew; a resumed one keeps the lines up to `resume_step` (the
        checkpoint's step: what was logged after it is trained again)."""
        self.dir = Path(run_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run directory {self.dir}: {e.strerror or e}") from None
        meta_path = self.dir / "run.json"
        if resume and meta_path.exists():
            self.name = json.loads(meta_path.read_text())["name"]
        else:
            self.name = run_name(name)
            meta = {"name": self.name, "git_sha": git_sha(), "config": config, "argv": sys.argv,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        self.config = config
        self.system = SystemMonitor()
        jsonl = self.dir / "metrics.jsonl"
        if resume and resume_step is not None and jsonl.exists():
            kept = [line for line in jsonl.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            jsonl.write_text("".join(line + "\n" for line in kept))
        self._jsonl = open(jsonl, "a" if resume else "w")
        from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - heavy import

        self._tb = SummaryWriter(str(self.dir / "tb"))
        self._wandb = None
        if wandb:
            self._wandb = _init_wandb(self.dir, self.name, config)

    def log(self, step: int, metrics: dict[str, float], with_system: bool = True) -> None:
        values = dict(metrics)
        if with_system:
            values.update(self.system.sample())
        values = {k: float(v) for k, v in values.items()}
        self._jsonl.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self._jsonl.flush()
        for key, value in values.items():
            self._tb.add_scalar(key, value, step)
        self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def close(self) -> None:
        self._jsonl.close()
        self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def add_run_flags(parser) -> None:
    """The flags every training command shares: --resume, --wandb and --set overrides."""
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--wandb", action="store_true",
                        help="also log to Weights & Biases (offline without an API key)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config field")


def _init_wandb(run_dir: Path, name: str, config: dict):
    try:
        import wandb  # noqa: PLC0415
    except ImportError:
        raise UserError("--wandb needs Weights & Biases: pip install wandb") from None
    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "dexvision"), name=name, id=name.replace("/", "-"),
                      dir=str(run_dir), config=config, mode=mode, resume="allow")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The metrics.jsonl of a run, as a list of dicts."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
