"""Domain randomization: config sections and the sampler of one sample's parameters.

`sample_params(cfg, look_at, rng)` returns a plain dict (stored with every sample)
grouped like the config: cameras, lighting, appearance, post. Rendering is a pure
function of (state, params); `nominal_params` gives the un-randomized look.
"""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np

from dexvision.config import Range, check_bounds
from dexvision.render.cameras import CameraConfig, sample_cameras
from dexvision.render.images import PHOTO, photo_path

# The floor patterns training data draws from, and those it never sees by default: held out for the shift
# benchmarks (configs/data/shift-floor.yaml). Any of them may be listed in appearance.floor_patterns.
FLOOR_PATTERNS = ("flat", "checker", "stripes", "noise", "blobs")
HELD_OUT_FLOOR_PATTERNS = ("rings", "waves", "cells", PHOTO)
ALL_FLOOR_PATTERNS = FLOOR_PATTERNS + HELD_OUT_FLOOR_PATTERNS
_UNIT = (0.0, 1.0)


@dataclasses.dataclass
class LightingConfig:
    count: tuple[int, int] = (1, 4)  # number of directional lights, inclusive
    intensity: Range = (0.15, 2.5)  # per light (pyrender lux); more washes the block faces out
    elevation_deg: Range = (20.0, 90.0)  # light comes from above the horizon
    color_saturation: Range = (0.0, 0.85)  # 0 = white light
    ambient: Range = (0.0, 0.35)  # grey level of the ambient term
    hue: Range = (0.0, 1.0)  # turns of the colour wheel a light's tint is drawn from (e.g. [0.02, 0.12]: warm)

    def __post_init__(self):
        if not 1 <= self.count[0] <= self.count[1] <= 8:
            raise ValueError("lighting.count must satisfy 1 <= low <= high <= 8")
        check_bounds(self, {"intensity": (0.0, None), "elevation_deg": (-90.0, 90.0), "color_saturation": _UNIT,
                            "ambient": _UNIT, "hue": (-1.0, 1.0)})


@dataclasses.dataclass
class AppearanceConfig:
    hand_value: Range = (0.25, 0.95)  # brightness of the hand's colour
    hand_saturation: Range = (0.0, 0.4)
    hand_link_jitter: float = 0.06  # std of per-link colour variation
    roughness: Range = (0.3, 1.0)
    metallic: Range = (0.0, 0.4)
    floor_patterns: tuple[str, ...] = FLOOR_PATTERNS
    floor_scale: Range = (2.0, 24.0)  # pattern repeats across the floor texture
    floor_saturation: Range = (0.0, 0.8)  # of each of the floor's two colours
    floor_value: Range = (0.1, 0.9)
    floor_roughness: Range = (0.5, 1.0)
    background_value: Range = (0.0, 1.0)
    background_saturation: Range = (0.0, 0.6)
    block_hue_shift: Range = (-0.03, 0.03)  # turns of the colour wheel: faces stay distinct
    block_saturation: Range = (0.8, 1.15)
    block_brightness: Range = (0.75, 1.15)
    block_roughness: Range = (0.4, 1.0)

    def __post_init__(self):
        bad = [p for p in self.floor_patterns if p not in ALL_FLOOR_PATTERNS]
        if bad or not self.floor_patterns:
            raise ValueError(f"appearance.floor_patterns: unknown {bad} (valid: {', '.join(ALL_FLOOR_PATTERNS)})")
        if PHOTO in self.floor_patterns:
            photo_path()  # the photo ships with matplotlib: say so now if this installation lacks it
        if max(abs(self.block_hue_shift[0]), abs(self.block_hue_shift[1])) > 0.08:
            raise ValueError("appearance.block_hue_shift beyond +-0.08 turns makes block faces ambiguous")
        check_bounds(self, {
            "hand_value": _UNIT, "hand_saturation": _UNIT, "hand_link_jitter": (0.0, 1.0), "roughness": _UNIT,
            "metallic": _UNIT, "floor_scale": (1.0, 256.0), "floor_saturation": _UNIT, "floor_value": _UNIT,
            "floor_roughness": _UNIT, "background_value": _UNIT, "background_saturation": _UNIT,
            "block_saturation": (0.0, 4.0), "block_brightness": (0.0, 4.0), "block_roughness": _UNIT})


@dataclasses.dataclass
class PostConfig:
    gamma: Range = (0.8, 1.25)
    contrast: Range = (0.8, 1.2)
    brightness: Range = (-0.06, 0.06)
    blur_sigma: Range = (0.0, 1.2)  # pixels, at the rendered size
    noise_std: Range = (0.0, 0.05)  # in [0, 1] intensity units

    def __post_init__(self):
        check_bounds(self, {"gamma": (0.05, 20.0), "contrast": (0.0, 10.0), "brightness": (-1.0, 1.0),
                            "blur_sigma": (0.0, 32.0), "noise_std": (0.0, 1.0)})


@dataclasses.dataclass
class RandomizationConfig:
    enabled: bool = True
    cameras: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    lighting: LightingConfig = dataclasses.field(default_factory=LightingConfig)
    appearance: AppearanceConfig = dataclasses.field(default_factory=AppearanceConfig)
    post: PostConfig = dataclasses.field(default_factory=PostConfig)


def _hsv(h: float, s: float, v: float) -> list[float]:
    return list(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _sample_lighting(cfg: LightingConfig, rng: np.random.Generator) -> dict:
    lights = []
    for _ in range(int(rng.integers(cfg.count[0], cfg.count[1] + 1))):
        az = rng.uniform(0, 2 * np.pi)
        el = np.radians(rng.uniform(*cfg.elevation_deg))
        toward_light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        lights.append({
            "direction": (-toward_light).tolist(),
            "color": _hsv(rng.uniform(*cfg.hue), rng.uniform(*cfg.color_saturation), 1.0),
            "intensity": float(rng.uniform(*cfg.intensity)),
        })
    return {"ambient": float(rng.uniform(*cfg.ambient)), "lights": lights}


def _sample_appearance(cfg: AppearanceConfig, rng: np.random.Generator) -> dict:
    floor = {
        "pattern": str(cfg.floor_patterns[int(rng.integers(len(cfg.floor_patterns)))]),
        "color_a": _hsv(rng.random(), rng.uniform(*cfg.floor_saturation), rng.uniform(*cfg.floor_value)),
        "color_b": _hsv(rng.random(), rng.uniform(*cfg.floor_saturation), rng.uniform(*cfg.floor_value)),
        "scale": float(rng.uniform(*cfg.floor_scale)),
        "seed": _seed(rng),
        "roughness": float(rng.uniform(*cfg.floor_roughness)),
    }
    return {
        "hand": {
            "color": _hsv(rng.random(), rng.uniform(*cfg.hand_saturation), rng.uniform(*cfg.hand_value)),
            "link_jitter": cfg.hand_link_jitter,
            "link_seed": _seed(rng),
            "roughness": float(rng.uniform(*cfg.roughness)),
            "metallic": float(rng.uniform(*cfg.metallic)),
        },
        "floor": floor,
        "background": _hsv(rng.random(), rng.uniform(*cfg.background_saturation), rng.uniform(*cfg.background_value)),
        "block": {
            "hue_shift": float(rng.uniform(*cfg.block_hue_shift)),
            "saturation": float(rng.uniform(*cfg.block_saturation)),
            "brightness": float(rng.uniform(*cfg.block_brightness)),
            "roughness": float(rng.uniform(*cfg.block_roughness)),
        },
    }


def _sample_post(cfg: PostConfig, rng: np.random.Generator) -> dict:
    return {
        "gamma": float(rng.uniform(*cfg.gamma)),
        "contrast": float(rng.uniform(*cfg.contrast)),
        "brightness": float(rng.uniform(*cfg.brightness)),
        "blur_sigma": float(rng.uniform(*cfg.blur_sigma)),
        "noise_std": float(rng.uniform(*cfg.noise_std)),
        "noise_seed": _seed(rng),
    }


def sample_params(cfg: RandomizationConfig, look_at: np.ndarray, rng: np.random.Generator) -> dict:
    """One sample's randomization; falls back to `nominal_params` when disabled."""
    if not cfg.enabled:
        return nominal_params(cfg, look_at)
    cameras = sample_cameras(cfg.cameras, look_at, rng)
    return {
        "cameras": cameras,
        "lighting": _sample_lighting(cfg.lighting, rng),
        "appearance": _sample_appearance(cfg.appearance, rng),
        "post": [_sample_post(cfg.post, rng) for _ in cameras],
    }


def nominal_params(cfg: RandomizationConfig, look_at: np.ndarray) -> dict:
    """The un-randomized look: nominal cameras, two white lights, grey hand, plain floor."""
    cameras = sample_cameras(cfg.cameras, look_at, None)
    white = [1.0, 1.0, 1.0]
    return {
        "cameras": cameras,
        "lighting": {"ambient": 0.25, "lights": [
            {"direction": [0.0, 0.0, -1.0], "color": white, "intensity": 2.5},
            {"direction": [0.3, 0.5, -0.8], "color": white, "intensity": 1.0},
        ]},
        "appearance": {
            "hand": {"color": [0.85, 0.85, 0.85], "link_jitter": 0.0, "link_seed": 0,
                     "roughness": 0.6, "metallic": 0.1},
            "floor": {"pattern": "checker", "color_a": [0.2, 0.3, 0.4], "color_b": [0.1, 0.15, 0.2],
                      "scale": 8.0, "seed": 0, "roughness": 0.8},
            "background": [0.45, 0.6, 0.75],
            "block": {"hue_shift": 0.0, "saturation": 1.0, "brightness": 1.0, "roughness": 0.6},
        },
        "post": [{"gamma": 1.0, "contrast": 1.0, "brightness": 0.0, "blur_sigma": 0.0,
                  "noise_std": 0.0, "noise_seed": 0} for _ in cameras],
    }
