"""Pixel work in numpy: procedural floor textures, block recolouring, post-processing."""

from __future__ import annotations

import functools

import numpy as np


def floor_texture(floor: dict, size: int = 128) -> np.ndarray:
    """An RGB uint8 texture for the floor parameters of one sample (pattern, colours, scale, seed)."""
    rng = np.random.default_rng(floor["seed"])
    a = np.asarray(floor["color_a"], dtype=np.float32)
    b = np.asarray(floor["color_b"], dtype=np.float32)
    scale = floor["scale"]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    pattern = floor["pattern"]
    if pattern == "flat":
        mix = np.zeros((size, size), np.float32)
    elif pattern == "checker":
        mix = ((np.floor(xx * scale) + np.floor(yy * scale)) % 2).astype(np.float32)
    elif pattern == "stripes":
        angle = rng.uniform(0, np.pi)
        mix = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * scale * 2 * np.pi) > 0).astype(np.float32)
    elif pattern == "noise":
        cells = max(2, int(scale))
        coarse = rng.random((cells, cells)).astype(np.float32)
        idx = (np.arange(size) * cells // size)
        mix = coarse[idx][:, idx]
    elif pattern == "blobs":
        mix = np.zeros((size, size), np.float32)
        for _ in range(int(scale)):
            cx, cy, r = rng.random(), rng.random(), rng.uniform(0.03, 0.15)
            mix = np.maximum(mix, ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r).astype(np.float32))
    else:
        raise ValueError(f"unknown floor pattern {pattern!r}")
    grain = rng.normal(0.0, 0.03, (size, size, 1)).astype(np.float32)
    img = a * (1 - mix[..., None]) + b * mix[..., None] + grain
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def hue_rotation_matrix(turns: float) -> np.ndarray:
    """3x3 RGB matrix rotating hue about the grey axis by `turns` of the colour wheel."""
    angle = 2 * np.pi * turns
    c, s = np.cos(angle), np.sin(angle)
    k = 1.0 / 3.0
    sq = np.sqrt(k)
    return np.array([
        [c + (1 - c) * k, k * (1 - c) - sq * s, k * (1 - c) + sq * s],
        [k * (1 - c) + sq * s, c + k * (1 - c), k * (1 - c) - sq * s],
        [k * (1 - c) - sq * s, k * (1 - c) + sq * s, c + k * (1 - c)],
    ], dtype=np.float32)


def recolor(image: np.ndarray, hue_shift: float, saturation: float, brightness: float) -> np.ndarray:
    """Hue rotation, saturation scale about grey, and brightness scale of an RGB uint8 image."""
    img = image.astype(np.float32) / 255.0
    img = img @ hue_rotation_matrix(hue_shift).T
    grey = img.mean(axis=-1, keepdims=True)
    img = grey + (img - grey) * saturation
    img = img * brightness
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(2.5 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge padding, (H, W, C) float32."""
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    h, w = img.shape[:2]
    padded = np.concatenate([img[:1].repeat(r, 0), img, img[-1:].repeat(r, 0)], axis=0)
    out = k[0] * padded[0:h]
    for i in range(1, len(k)):
        out += k[i] * padded[i:i + h]
    padded = np.concatenate([out[:, :1].repeat(r, 1), out, out[:, -1:].repeat(r, 1)], axis=1)
    img = k[0] * padded[:, 0:w]
    for i in range(1, len(k)):
        img += k[i] * padded[:, i:i + w]
    return img


_NOISE_BANK_SIZE = 512


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((_NOISE_BANK_SIZE, _NOISE_BANK_SIZE, 3), dtype=np.float32)


def sensor_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Unit Gaussian noise of `shape` (H, W, 3), a pure function of `seed`.

    A window at a seeded offset into a fixed bank of Gaussian samples, with a seeded
    sign and channel order: ten times cheaper than drawing fresh normals per pixel.
    Images larger than the bank draw fresh normals.
    """
    h, w = shape[:2]
    rng = np.random.default_rng(seed)
    if h > _NOISE_BANK_SIZE or w > _NOISE_BANK_SIZE:
        return rng.standard_normal(shape, dtype=np.float32)
    y, x = rng.integers(0, _NOISE_BANK_SIZE - h + 1), rng.integers(0, _NOISE_BANK_SIZE - w + 1)
    window = _noise_bank()[y:y + h, x:x + w][..., rng.permutation(3)]
    return window if rng.random() < 0.5 else -window


def tone_curve(post: dict) -> np.ndarray:
    """The 256-entry lookup table of contrast, brightness and gamma, in [0, 1] float32."""
    x = np.arange(256, dtype=np.float32) / 255.0
    x = (x - 0.5) * post["contrast"] + 0.5 + post["brightness"]
    return (np.clip(x, 0.0, 1.0) ** post["gamma"]).astype(np.float32)


def postprocess(image: np.ndarray, post: dict) -> np.ndarray:
    """Camera effects on a rendered RGB uint8 image: tone curve, lens blur, sensor noise."""
    img = tone_curve(post)[image]
    if post["blur_sigma"] > 0.05:
        img = _blur(img, post["blur_sigma"])
    if post["noise_std"] > 0:
        img += sensor_noise(img.shape, post["noise_seed"]) * np.float32(post["noise_std"])
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
