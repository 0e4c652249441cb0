"""The multi-camera pose model, its losses and its error metrics.

One encoder with shared weights sees every camera. Two heads (`PoseNetConfig.head`):
- `direct` (as the original): the per-camera features are concatenated and an MLP
  predicts the block's position and orientation (6D rotation representation);
- `keypoints`: an MLP shared by the cameras predicts, from each camera's features alone,
  where the block's 8 corners and centre fall in that image and how sure it is of each;
  the pose comes from the cameras' calibration by a multi-view solve
  (dexvision/vision/keypoints.py), so the model never has to infer where a camera is.
The encoder is the "vision sub-model" a policy reuses, with the head's hidden layer
(`PoseNet.penultimate`): every weight up to the penultimate layer.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dexvision.config import check_choice
from dexvision.sim.scenes import BLOCK_HALF_SIZE, BLOCK_REST_POINT
from dexvision.vision.encoders import create_encoder, normalization
from dexvision.vision.keypoints import NUM_KEYPOINTS, keypoint_nll, keypoint_targets, solve_pose, to_pixels
from dexvision.vision.rotations import geodesic_angle, quat_to_matrix, rot6d_to_matrix

HEADS = ("direct", "keypoints")


@dataclasses.dataclass
class PoseNetConfig:
    arch: str = "impala"
    image_size: int = 64
    num_cameras: int = 3
    head_hidden: int = 512
    position_center: tuple[float, float, float] = tuple(BLOCK_REST_POINT.tolist())  # block rest point (m)
    position_scale: float = 2 * BLOCK_HALF_SIZE  # m per unit of the head's position output (the block's size)
    head: str = "direct"  # direct (pose from the concatenated features) or keypoints (per camera, then solved)

    def __post_init__(self):
        check_choice("head", self.head, HEADS)


def penultimate_features(cfg: PoseNetConfig) -> int:
    """What a policy's vision sub-model outputs: the head's hidden layer (a keypoint head's: per camera, side by side)."""
    return cfg.head_hidden * (cfg.num_cameras if cfg.head == "keypoints" else 1)


def cameras_of(batch: dict, device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """The calibration of a loader batch's cameras: K, R, t and (width, height), each (B, cameras, ...)."""
    return {k: batch[f"cam_{k}"].to(device) if device else batch[f"cam_{k}"] for k in ("K", "R", "t", "size")}


class PoseNet(nn.Module):
    def __init__(self, cfg: PoseNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = create_encoder(cfg.arch, cfg.image_size)
        mean, std = normalization(self.encoder)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("center", torch.tensor(cfg.position_center), persistent=False)
        if cfg.head == "direct":
            features, outputs = self.encoder.num_features * cfg.num_cameras, 9
        else:  # per camera: (u, v) and a log scale for each keypoint
            features, outputs = self.encoder.num_features, 3 * NUM_KEYPOINTS
        self.head = nn.Sequential(nn.Linear(features, cfg.head_hidden), nn.ReLU(), nn.Linear(cfg.head_hidden, outputs))
        self.penultimate_features = penultimate_features(cfg)

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

    def _head_input(self, images: torch.Tensor) -> torch.Tensor:
        """Direct: (B, K * F) concatenated features; keypoints: (B, K, F) per camera."""
        features = self.features(images)
        return features if self.cfg.head == "direct" else features.view(images.shape[0], images.shape[1], -1)

    def penultimate(self, images: torch.Tensor) -> torch.Tensor:
        """(B, penultimate_features): the head's hidden layer, every camera's side by side."""
        return self.head[:-1](self._head_input(images)).flatten(1)

    def forward(self, images: torch.Tensor, cameras: dict[str, torch.Tensor] | None = None
                ) -> dict[str, torch.Tensor]:
        """Direct: position (B, 3) and rotation (B, 3, 3). Keypoints: keypoints (B, K, 9, 2) in normalized image
        coordinates and their log scales (B, K, 9); with the cameras' calibration (`cameras_of(batch)`), the
        position and rotation solved from them too."""
        out = self.head(self._head_input(images)).float()
        if self.cfg.head == "direct":
            return {"position": self.center + self.cfg.position_scale * out[:, :3],
                    "rotation": rot6d_to_matrix(out[:, 3:])}
        out = out.view(*out.shape[:2], NUM_KEYPOINTS, 3)
        pred = {"keypoints": out[..., :2], "log_scale": out[..., 2].clamp(-9.0, 3.0)}
        if cameras is not None:
            pred["position"], pred["rotation"] = solve_pose(pred["keypoints"].detach(),
                                                            pred["log_scale"].detach().exp(), cameras)
        return pred

    def truth(self, batch: dict) -> dict[str, torch.Tensor]:
        """A batch's labels on this model's device: position, quaternion, rotation, and for a keypoint head the
        cameras and where the keypoints truly fall (normalized image coordinates)."""
        device = self.center.device
        truth = {"position": batch["position"].to(device), "quaternion": batch["quaternion"].to(device)}
        truth["rotation"] = quat_to_matrix(truth["quaternion"])
        if self.cfg.head == "keypoints":
            truth["cameras"] = cameras_of(batch, device)
            truth["keypoints"] = keypoint_targets(truth["position"], truth["rotation"], truth["cameras"])
        return truth

    def loss(self, pred: dict, truth: dict) -> dict[str, torch.Tensor]:
        """The training loss of this head on a batch (its 'loss', and the parts it is made of), against the
        batch's `self.truth(batch)`."""
        if self.cfg.head == "direct":
            return pose_loss(pred, truth["position"], truth["quaternion"], self.cfg.position_scale)
        loss = keypoint_nll(pred["keypoints"], pred["log_scale"], truth["keypoints"].float())
        return {"loss": loss, "keypoints": loss}

    def errors(self, pred: dict, truth: dict) -> dict[str, torch.Tensor]:
        """Per-sample errors against the batch's `self.truth(batch)`: position (mm) and orientation (degrees); a
        keypoint head's mean keypoint error too (pixels of the images as rendered)."""
        errors = pose_errors(pred, truth["position"], truth["quaternion"])
        if self.cfg.head == "keypoints":
            size = truth["cameras"]["size"][:, :, None, :]
            errors["keypoint_px"] = (to_pixels(pred["keypoints"].double(), size) - to_pixels(truth["keypoints"], size)
                                     ).norm(dim=-1).mean((1, 2)).float()
        return errors


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
