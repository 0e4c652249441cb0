"""Vision checkpoints: written atomically, read with one clear error for a wrong or missing file.

A checkpoint is a dict with `kind: "dexvision-vision"`, the model's config and
weights, the optimizer and scheduler states, the step, the resolved training config,
the git SHA, and the identity of the data it was trained on. `load_encoder` gives a
policy the encoder (every weight up to the penultimate layer) from the file alone.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch

from dexvision.config import from_dict
from dexvision.errors import UserError
from dexvision.vision.model import PoseNet, PoseNetConfig

KIND = "dexvision-vision"


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves a half-written checkpoint."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        torch.save({"kind": KIND, **state}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, kind: str = KIND) -> dict:
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


def build_model(ckpt: dict) -> PoseNet:
    """The PoseNet of a vision checkpoint, with its trained weights."""
    model = PoseNet(from_dict(PoseNetConfig, ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model


def load_encoder(path: str | Path) -> tuple[torch.nn.Module, PoseNetConfig]:
    """The trained encoder of a vision checkpoint (the policy's vision sub-model) and the model config."""
    ckpt = load_checkpoint(path)
    model = build_model(ckpt)
    return model.encoder, model.cfg
