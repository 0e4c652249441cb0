"""Pixel work in numpy: procedural floor textures, block recolouring, post-processing."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image


# A photograph that ships with matplotlib (a required package): a natural-image floor, for the shift
# benchmarks. Nothing is ever downloaded.
PHOTO = "photo"
_PHOTO_FILE = ("mpl-data", "sample_data", "grace_hopper.jpg")


def photo_path() -> Path:
    """The photograph behind the `photo` floor pattern; ValueError (one line) if this installation lacks it."""
    spec = importlib.util.find_spec("matplotlib")
    path = Path(spec.submodule_search_locations[0]).joinpath(*_PHOTO_FILE) if spec else None
    if path is None or not path.is_file():
        raise ValueError(f"the '{PHOTO}' floor pattern needs matplotlib's sample photo "
                         f"({'/'.join(_PHOTO_FILE)}), which this installation lacks")
    return path


@functools.lru_cache(maxsize=1)
def _photo() -> np.ndarray:
    with Image.open(photo_path()) as img:
        return np.asarray(img.convert("RGB"))


def _photo_floor(rng: np.random.Generator, size: int) -> np.ndarray:
    """A seeded square crop of the photograph (30-100% of its short side), resized: RGB in [0, 1]."""
    photo = _photo()
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
    return np.asarray(crop, dtype=np.float32) / 255.0


def _mix_checker(xx, yy, scale, rng):
    return ((np.floor(xx * scale) + np.floor(yy * scale)) % 2).astype(np.float32)


def _mix_stripes(xx, yy, scale, rng):
    angle = rng.uniform(0, np.pi)
    return (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * scale * 2 * np.pi) > 0).astype(np.float32)


def _mix_noise(xx, yy, scale, rng):
    size = xx.shape[0]
    cells = max(2, int(scale))
    coarse = rng.random((cells, cells)).astype(np.float32)
    idx = (np.arange(size) * cells // size)
    return coarse[idx][:, idx]


def _mix_blobs(xx, yy, scale, rng):
    mix = np.zeros(xx.shape, np.float32)
    for _ in range(int(scale)):
        cx, cy, r = rng.random(), rng.random(), rng.uniform(0.03, 0.15)
        mix = np.maximum(mix, ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r).astype(np.float32))
    return mix


def _mix_rings(xx, yy, scale, rng):
    """Concentric rings about a seeded centre: curved hard edges, which no training pattern has."""
    cx, cy = rng.random(2)
    return (np.sin(np.hypot(xx - cx, yy - cy) * scale * 2 * np.pi) > 0).astype(np.float32)


def _mix_waves(xx, yy, scale, rng):
    """Three plane waves at seeded angles and frequencies: smooth continuous tones, no edges."""
    mix = np.zeros(xx.shape, np.float32)
    for angle, freq in zip(rng.uniform(0, np.pi, 3), rng.uniform(0.5, 1.5, 3) * scale):
        mix += np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * freq * 2 * np.pi).astype(np.float32)
    return 0.5 + mix / 6.0


def _mix_cells(xx, yy, scale, rng):
    """Voronoi cells about max(2, scale) seeded points, each cell its own seeded mix of the two colours."""
    points = rng.random((max(2, int(scale)), 2)).astype(np.float32)
    shades = rng.random(len(points)).astype(np.float32)
    dist = (xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2
    return shades[dist.argmin(axis=-1)]


_MIXES = {"flat": lambda xx, yy, scale, rng: np.zeros(xx.shape, np.float32), "checker": _mix_checker,
          "stripes": _mix_stripes, "noise": _mix_noise, "blobs": _mix_blobs, "rings": _mix_rings,
          "waves": _mix_waves, "cells": _mix_cells}


def floor_texture(floor: dict, size: int = 128) -> np.ndarray:
    """An RGB uint8 texture for the floor parameters of one sample (pattern, colours, scale, seed)."""
    rng = np.random.default_rng(floor["seed"])
    pattern = floor["pattern"]
    if pattern == PHOTO:
        img = _photo_floor(rng, size)
    elif pattern in _MIXES:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        mix = _MIXES[pattern](xx, yy, floor["scale"], rng)[..., None]
        a = np.asarray(floor["color_a"], dtype=np.float32)
        b = np.asarray(floor["color_b"], dtype=np.float32)
        img = a * (1 - mix) + b * mix
    else:
        raise ValueError(f"unknown floor pattern {pattern!r}")
    grain = rng.normal(0.0, 0.03, (size, size, 1)).astype(np.float32)
    return (np.clip(img + grain, 0, 1) * 255).astype(np.uint8)


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


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
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
        img = gaussian_blur(img, post["blur_sigma"])
    if post["noise_std"] > 0:
        img += sensor_noise(img.shape, post["noise_seed"]) * np.float32(post["noise_std"])
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
