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
import logging
import os
import sys
import time
from pathlib import Path

from dexvision.errors import UserError
from dexvision.track.system import SystemMonitor
from dexvision.version import git_sha

log = logging.getLogger(__name__)


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
        meta = read_json(meta_path, "run record") if resume else None
        if meta and "name" in meta:
            self.name = meta["name"]
        else:
            self.name = run_name(name)
            meta = {"name": self.name, "git_sha": git_sha(), "config": config, "argv": sys.argv,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        self.config = config
        self.system = SystemMonitor()
        jsonl = self.dir / "metrics.jsonl"
        if resume and resume_step is not None and jsonl.exists():
            kept = [row for row in read_metrics(self.dir) if row.get("step", 0) <= resume_step]
            jsonl.write_text("".join(json.dumps(row) + "\n" for row in kept))
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


def read_json(path: str | Path, what: str = "file") -> dict | None:
    """A JSON object a run wrote (run.json, metrics.json, a done-record); None when there is none. One line
    naming the file when it is cut (a run killed while writing it) or not JSON."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the {what} {path} ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        how = "is empty" if not text.strip() else f"is cut short or not valid JSON (line {e.lineno})"
        raise UserError(f"the {what} {path} {how} (a run killed while writing it?); delete it, or run "
                        "that run again") from None
    if not isinstance(data, dict):
        raise UserError(f"the {what} {path} holds no JSON object")
    return data


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The metrics.jsonl of a run, as a list of dicts. A run killed while writing a line leaves it cut: the
    lines before it are read, and a warning line says what was skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            rest = sum(1 for later in lines[number:] if later.strip())
            log.warning("%s: line %d is cut or not JSON (a killed run?); read the %d line(s) before it%s", path,
                        number, len(rows), f", skipped {rest} after it" if rest else "")
            break
        rows.append(row)
    return rows
