"""The multi-camera pose model, its losses and its error metrics.

One encoder with shared weights sees every camera; the per-camera features are
concatenated and an MLP head predicts the block's position and orientation (6D
rotation representation). The encoder is the "vision sub-model" a policy reuses:
`PoseNet.encoder` holds every weight up to the penultimate layer.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dexvision.sim.scenes import BLOCK_HALF_SIZE, BLOCK_REST_POINT
from dexvision.vision.encoders import create_encoder, normalization
from dexvision.vision.rotations import geodesic_angle, quat_to_matrix, rot6d_to_matrix


@dataclasses.dataclass
class PoseNetConfig:
    arch: str = "impala"
    image_size: int = 64
    num_cameras: int = 3
    head_hidden: int = 512
    position_center: tuple[float, float, float] = tuple(BLOCK_REST_POINT.tolist())  # block rest point (m)
    position_scale: float = 2 * BLOCK_HALF_SIZE  # m per unit of the head's position output (the block's size)


class PoseNet(nn.Module):
    def __init__(self, cfg: PoseNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = create_encoder(cfg.arch, cfg.image_size)
        mean, std = normalization(self.encoder)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("center", torch.tensor(cfg.position_center), persistent=False)
        features = self.encoder.num_features * cfg.num_cameras
        self.head = nn.Sequential(nn.Linear(features, cfg.head_hidden), nn.ReLU(), nn.Linear(cfg.head_hidden, 9))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, K, 3, H, W) uint8 or [0, 1] float -> (B, K * F) concatenated per-camera features."""
        b, k = images.shape[:2]
        x = images.flatten(0, 1)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[-1] != self.cfg.image_size:
            x = nn.functional.interpolate(x, size=self.cfg.image_size, mode="bilinear", antialias=True,
                                          align_corners=False)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.encoder(x).reshape(b, k * self.encoder.num_features)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.features(images)).float()
        return {"position": self.center + self.cfg.position_scale * out[:, :3], "rotation": rot6d_to_matrix(out[:, 3:])}


def pose_loss(pred: dict, position: torch.Tensor, quaternion: torch.Tensor, scale: float = 2 * BLOCK_HALF_SIZE
              ) -> dict:
    """Position: squared error in units of `scale` metres; orientation: squared chordal (Frobenius) distance."""
    target_rot = quat_to_matrix(quaternion)
    pos = (((pred["position"] - position) / scale) ** 2).sum(-1).mean()
    rot = ((pred["rotation"] - target_rot) ** 2).sum((-1, -2)).mean()
    return {"loss": pos + rot, "position": pos, "rotation": rot}


def pose_errors(pred: dict, position: torch.Tensor, quaternion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample position error (mm) and geodesic orientation error (degrees)."""
    return {
        "position_mm": (pred["position"] - position).norm(dim=-1) * 1000.0,
        "orientation_deg": torch.rad2deg(geodesic_angle(pred["rotation"], quat_to_matrix(quaternion))),
    }


def summarize(errors: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean, median and 90th percentile of each error."""
    out = {}
    for name, values in errors.items():
        v = values.double()
        out[f"{name}/mean"] = v.mean().item()
        out[f"{name}/median"] = v.quantile(0.5).item()
        out[f"{name}/p90"] = v.quantile(0.9).item()
    return out
