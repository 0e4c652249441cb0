"""Files written whole or not at all, and checkpoints that say what they are.

`atomic_write` writes to a temporary name beside the target and renames it into
place, so a crash (or kill -9) never leaves a half-written shard, record or checkpoint
under the real name. A checkpoint is a dict with a `kind` ("dexvision-vision",
"dexvision-policy"): each package writes and reads its own kind through
`save_checkpoint` / `load_checkpoint`, and a file of another kind is refused in one line.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

import torch

from dexvision.errors import UserError


def atomic_write(path: str | Path, write: Callable[[Path], None], fsync: bool = False) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, kind: str, state: dict) -> None:
    """torch.save `state` as a checkpoint of `kind`, atomically."""
    atomic_write(path, lambda tmp: torch.save({**state, "kind": kind}, tmp))


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """A checkpoint of `kind`; one clear error for a missing, unreadable or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - pickle, zip and torch errors all mean "not a checkpoint"
        raise UserError(f"{path} is not a readable torch checkpoint ({type(e).__name__})") from None
    found = ckpt.get("kind") if isinstance(ckpt, dict) else None
    if found != kind:
        raise UserError(f"{path} is a {found or 'foreign'} checkpoint, not a {kind} checkpoint")
    return ckpt
