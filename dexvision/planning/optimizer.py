"""The cross-entropy method over spline knots, one update per planning step (continuous replanning).

Each step samples `samples` knot sets around the mean (Gaussian, per knot and actuator, clipped to the
command range [-1, 1]; the first sample is the mean itself, so a good plan is never lost to noise), and
the caller scores them; `update` moves the mean to the mean of the `elites` cheapest and the noise to their
spread, kept within [noise_min, noise]. Predictive sampling is the one-elite case with noise_min = noise:
the best sample becomes the plan, and the noise stays fixed.
"""

from __future__ import annotations

import numpy as np


class CrossEntropy:
    """A Gaussian over (K knots, nu actuators) of commands in [-1, 1]."""

    def __init__(self, samples: int, elites: int, noise: float, noise_min: float, rng: np.random.Generator,
                 fixed_noise: bool = False):
        """`fixed_noise`: draw the standard normal noise once and reuse it at every step (the same candidates
        around the same mean)."""
        if samples < 1 or not 1 <= elites <= samples:
            raise ValueError(f"need samples >= 1 and 1 <= elites <= samples, got {samples} and {elites}")
        if not 0 <= noise_min <= noise:
            raise ValueError(f"need 0 <= noise_min <= noise, got {noise_min} and {noise}")
        self.samples, self.elites, self.noise, self.noise_min, self.rng = samples, elites, noise, noise_min, rng
        self.fixed_noise = fixed_noise
        self._draws: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def reset(self, mean: np.ndarray) -> None:
        """Start from the plan `mean` (K, nu) with the widest noise."""
        self.mean = np.clip(np.asarray(mean, dtype=np.float64), -1.0, 1.0)
        self.std = np.full_like(self.mean, self.noise)

    def sample(self) -> np.ndarray:
        """(samples, K, nu) knot sets; the first is the mean."""
        shape = (self.samples - 1,) + self.mean.shape
        if not self.fixed_noise or self._draws is None or self._draws.shape != shape:
            self._draws = self.rng.standard_normal(shape)
        noise = self._draws * self.std
        return np.clip(np.concatenate([self.mean[None], self.mean + noise]), -1.0, 1.0)

    def update(self, knots: np.ndarray, costs: np.ndarray) -> int:
        """Refit the Gaussian to the elites of `knots` scored `costs` (lower is better); the best's index."""
        order = np.argsort(costs, kind="stable")
        elite = knots[order[:self.elites]]
        self.mean = elite.mean(axis=0)
        spread = elite.std(axis=0) if self.elites > 1 else np.zeros_like(self.mean)
        self.std = np.clip(spread, self.noise_min, self.noise)
        return int(order[0])
