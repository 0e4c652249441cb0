"""Image augmentation for train-vision, applied per camera image in the loader's worker processes.

Rendering randomizes the scene; augmentation perturbs the finished image, which is cheap
(no re-rendering) and reaches conditions the renderer's ranges do not: global gain and
contrast, per-channel tint, saturation, lens blur, sensor noise, and small image shifts, rolls
and zooms. The pose labels do not change (the pose is in the world frame); a shift, roll or zoom
is an exact change of the camera's intrinsics (K' = H K, H the warp in pixels), which the
sample's `cam_K` follows, so a keypoint head's targets and solve see the camera that made the
image.

Every range is drawn per camera image; a range of (1, 1) or (0, 0) leaves that step out.
Images stay uint8, so the rest of the pipeline is unchanged. Randomness comes from a torch
generator per loader worker, seeded from (seed, worker id): a seeded run draws the same
augmentations on every machine.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dexvision.config import Range, check_bounds
from dexvision.datasets.reader import iter_shard
from dexvision.files import atomic_write
from dexvision.render.images import gaussian_blur
from dexvision.render.cameras import pixel_centre
from dexvision.render.sheet import contact_sheet

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


@dataclasses.dataclass
class AugmentConfig:
    enabled: bool = False
    probability: float = 1.0  # chance that a camera image is augmented at all
    brightness: Range = (0.6, 1.4)  # multiplicative gain
    contrast: Range = (0.7, 1.3)  # about the image mean
    saturation: Range = (0.5, 1.5)  # 0: grey, 1: unchanged
    tint: float = 0.15  # per-channel gain drawn from 1 +- tint (a coloured light or white balance)
    blur_sigma: Range = (0.0, 1.5)  # Gaussian blur, pixels (a sigma below 0.2 blurs nothing)
    noise_std: Range = (0.0, 0.06)  # additive Gaussian noise, [0, 1] intensity units
    shift_px: float = 2.0  # image translation, up to this many pixels per axis
    rotate_deg: float = 3.0  # image roll about its centre, up to this many degrees
    zoom: Range = (0.9, 1.1)  # magnification about the image centre (a change of focal length)

    def __post_init__(self):
        check_bounds(self, {"probability": (0.0, 1.0), "brightness": (0.0, 4.0), "contrast": (0.0, 4.0),
                            "saturation": (0.0, 4.0), "tint": (0.0, 1.0), "blur_sigma": (0.0, 16.0),
                            "noise_std": (0.0, 1.0), "shift_px": (0.0, 64.0), "rotate_deg": (0.0, 180.0),
                            "zoom": (0.25, 4.0)})


def _uniform(g: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The renderer's Gaussian blur (`render.images.gaussian_blur`) on a (1, 3, H, W) float image."""
    hwc = np.ascontiguousarray(x[0].permute(1, 2, 0).numpy(), dtype=np.float32)
    return torch.from_numpy(gaussian_blur(hwc, sigma)).permute(2, 0, 1).unsqueeze(0)


def _warp(x: torch.Tensor, shift: torch.Tensor, angle: torch.Tensor, zoom: torch.Tensor | None = None) -> torch.Tensor:
    """Roll each (square) image by `angle` (radians), shift it by `shift` (pixels, x then y) and magnify it by
    `zoom` about its centre (none: 1); borders repeat."""
    n, _, h, w = x.shape
    inv = 1.0 if zoom is None else 1.0 / zoom
    cos, sin = torch.cos(angle) * inv, torch.sin(angle) * inv
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    theta[:, 0, 2] = -2 * shift[:, 0] / w
    theta[:, 1, 2] = -2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_homography(shift: torch.Tensor, angle: torch.Tensor, size: int, zoom: torch.Tensor | None = None) -> torch.Tensor:
    """The pixel map of `_warp` on (size x size) images, as (n, 3, 3) float64 affine homographies H: a point at
    pixel u (OpenCV convention, pixel centres at integers) of the input appears at H u in the output, so a camera
    K whose image was warped is H K."""
    shift, angle = shift.double(), angle.double()
    s = torch.ones_like(angle) if zoom is None else zoom.double()
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    rot_t = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # the roll's inverse, zoomed
    centre = torch.full((2,), pixel_centre(size), dtype=torch.float64)
    h = torch.eye(3, dtype=torch.float64).repeat(len(angle), 1, 1)
    # affine_grid samples input - c = (A / s)(output - c) - shift, A the roll, so output - c = s A^T (input - c + shift)
    h[:, :2, :2] = rot_t
    h[:, :2, 2] = (rot_t @ (shift - centre)[..., None])[..., 0] + centre
    return h


def augment_images(images: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """uint8 (K, 3, H, W) camera images -> augmented uint8 images of the same shape."""
    return augment(images, cfg, g)[0]


def augment(images: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (K, 3, H, W) camera images -> (augmented uint8 images of the same shape, (K, 3, 3) float64 pixel
    homographies of their shifts, rolls and zooms: `warp_homography`, the identity for an image not moved)."""
    k = images.shape[0]
    warps = torch.eye(3, dtype=torch.float64).repeat(k, 1, 1)
    chosen = torch.rand(k, generator=g) < cfg.probability
    if not chosen.any():
        return images, warps
    x = images[chosen].float() / 255.0
    n = x.shape[0]
    view = (n, 1, 1, 1)
    if cfg.shift_px > 0 or cfg.rotate_deg > 0 or tuple(cfg.zoom) != (1.0, 1.0):
        shift = _uniform(g, 2 * n, -cfg.shift_px, cfg.shift_px).view(n, 2)
        angle = torch.deg2rad(_uniform(g, n, -cfg.rotate_deg, cfg.rotate_deg))
        zoom = _uniform(g, n, *cfg.zoom) if tuple(cfg.zoom) != (1.0, 1.0) else None
        x = _warp(x, shift, angle, zoom)
        warps[chosen] = warp_homography(shift, angle, images.shape[-1], zoom)
    x = x * _uniform(g, n, *cfg.brightness).view(view)
    if cfg.tint > 0:
        x = x * _uniform(g, 3 * n, 1 - cfg.tint, 1 + cfg.tint).view(n, 3, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _uniform(g, n, *cfg.contrast).view(view) + mean
    grey = (x * _LUMA).sum(dim=1, keepdim=True)
    x = (x - grey) * _uniform(g, n, *cfg.saturation).view(view) + grey
    x = x.clamp(0.0, 1.0)
    sigmas = _uniform(g, n, *cfg.blur_sigma)
    x = torch.cat([_blur(x[i:i + 1], float(s)) if s >= 0.2 else x[i:i + 1] for i, s in enumerate(sigmas)])
    noise = _uniform(g, n, *cfg.noise_std).view(view)
    x = x + noise * torch.randn(x.shape, generator=g)
    out = images.clone()
    out[chosen] = (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return out, warps


class Augment:
    """The loader's per-sample map: augments `sample["images"]`, and moves `sample["cam_K"]` (when it has one)
    with each image's shift, roll and zoom; one generator per worker process."""

    def __init__(self, cfg: AugmentConfig, seed: int):
        self.cfg, self.seed = cfg, seed
        self._g: torch.Generator | None = None
        self._worker: int | None = None

    def _generator(self) -> torch.Generator:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else -1
        if self._g is None or worker != self._worker:
            self._g = torch.Generator().manual_seed(self.seed * 1009 + worker + 1)
            self._worker = worker
        return self._g

    def __call__(self, sample: dict) -> dict:
        sample["images"], warps = augment(sample["images"], self.cfg, self._generator())
        if "cam_K" in sample:
            sample["cam_K"] = warps.to(sample["cam_K"]) @ sample["cam_K"]
        return sample


def write_sheet(shard: str | Path, cfg: AugmentConfig, seed: int, out: Path, samples: int = 3,
                draws: int = 2) -> None:
    """A contact sheet PNG of what training sees: per sample, its rendered cameras, then `draws` augmentations."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for images, label in itertools.islice(iter_shard(Path(shard)), samples):
        plain = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy())
        rows.append((images, label))
        for _ in range(draws):
            augmented = augment_images(plain, cfg, g).numpy().transpose(0, 2, 3, 1)
            rows.append((list(augmented), label))
    sheet = contact_sheet(rows)
    atomic_write(out, lambda tmp: sheet.save(tmp, format="PNG"))
