"""Image encoders by name: `impala` (ours) and any timm model, `resnet50` first among them.

`create_encoder(name, image_size)` returns a module mapping (B, 3, H, W) float images
to (B, F) features, F being its `.num_features`. timm models are created with `pretrained=False` and no classifier
(`num_classes=0`): nothing is ever downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

from dexvision.errors import UserError

IMPALA_CHANNELS = (16, 32, 32)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaStage(nn.Module):
    """conv 3x3 -> max-pool 3x3 stride 2 -> two residual blocks (Espeholt et al. 2018)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0 = ResidualBlock(out_channels)
        self.res1 = ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaEncoder(nn.Module):
    """The IMPALA CNN: three stages of 16, 32, 32 channels, then ReLU, flatten and a 256-unit layer."""

    def __init__(self, image_size: int, channels: tuple[int, ...] = IMPALA_CHANNELS, out_features: int = 256):
        super().__init__()
        stages, c = [], 3
        for out in channels:
            stages.append(ImpalaStage(c, out))
            c = out
        self.stages = nn.Sequential(*stages)
        side = image_size
        for _ in channels:
            side = (side + 1) // 2
        self.fc = nn.Linear(c * side * side, out_features)
        self.num_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stages(x))
        return torch.relu(self.fc(torch.flatten(x, 1)))


def _timm_names_hint() -> str:
    return "impala, resnet50, or any timm model name (e.g. resnet18, efficientnet_b0; see timm.list_models())"


def check_arch(name: str) -> str:
    if name == "impala":
        return name
    import timm  # noqa: PLC0415 - timm imports slowly; only when a timm model is asked for

    if not timm.is_model(name):
        raise UserError(f"unknown encoder '{name}' (valid: {_timm_names_hint()})")
    return name


def create_encoder(name: str, image_size: int) -> nn.Module:
    """The encoder `name` (with `.num_features`); raises a UserError listing the valid names."""
    check_arch(name)
    if name == "impala":
        return ImpalaEncoder(image_size)
    import timm  # noqa: PLC0415

    return timm.create_model(name, pretrained=False, num_classes=0)


def normalization(encoder: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) to normalize [0, 1] RGB for `encoder`: timm's own config, or 0.5/0.5 for impala."""
    cfg = getattr(encoder, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", (0.5, 0.5, 0.5))), tuple(cfg.get("std", (0.5, 0.5, 0.5)))
