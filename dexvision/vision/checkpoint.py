"""Vision checkpoints: written atomically, read with one clear error for a wrong or missing file.

A checkpoint is a dict with `kind: "dexvision-vision"`, the model's config and
weights, the optimizer and scheduler states, the step, the resolved training config,
the git SHA, and the identity of the data it was trained on. `load_encoder` gives a
policy the encoder (every weight up to the penultimate layer) from the file alone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dexvision import files
from dexvision.config import from_dict
from dexvision.vision.model import PoseNet, PoseNetConfig

KIND = "dexvision-vision"


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic save (temporary file, then rename): a crash never leaves a half-written checkpoint."""
    files.save_checkpoint(path, KIND, state)


def load_checkpoint(path: str | Path) -> dict:
    """A vision checkpoint; one clear error for a missing, unreadable or foreign file."""
    return files.load_checkpoint(path, KIND)


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
