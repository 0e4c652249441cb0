"""Control sequences as splines over a few knots, evaluated at the control steps of a horizon.

A plan is `knots` (K, nu) commands in [-1, 1]; `basis(...)` (H, K) maps them onto the H control steps of the
horizon (`controls = basis @ knots`). Zero-order: K equal segments, each holding its knot. Linear: knots at
K evenly spaced times from the first control step to the last, straight lines between them. Warm start: the
previous plan's controls shifted one control step earlier (the last held), projected back onto the knots by
least squares (for zero-order knots, each segment's mean).
"""

from __future__ import annotations

import numpy as np

INTERPOLATIONS = ("zero", "linear")


def basis(steps: int, knots: int, interpolation: str) -> np.ndarray:
    """The (steps, knots) matrix that evaluates a spline's knots at each control step."""
    if steps < 1 or knots < 1:
        raise ValueError(f"a spline needs steps >= 1 and knots >= 1, got {steps} and {knots}")
    out = np.zeros((steps, knots))
    if interpolation == "zero":
        segment = np.minimum((np.arange(steps) * knots) // steps, knots - 1)
        out[np.arange(steps), segment] = 1.0
        return out
    if interpolation != "linear":
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if knots == 1:
        out[:, 0] = 1.0
        return out
    position = np.arange(steps) * (knots - 1) / max(steps - 1, 1)  # in knot units
    left = np.minimum(np.floor(position).astype(int), knots - 2)
    frac = position - left
    out[np.arange(steps), left] = 1.0 - frac
    out[np.arange(steps), left + 1] = frac
    return out


def shift(knots: np.ndarray, b: np.ndarray, steps: int = 1) -> np.ndarray:
    """`knots` (K, nu) of a plan moved `steps` control steps on: the controls it would apply from then (the
    last held beyond its horizon), fitted back onto knots with the basis `b` (H, K)."""
    controls = b @ knots
    moved = np.concatenate([controls[steps:], np.repeat(controls[-1:], min(steps, len(controls)), axis=0)])
    return np.linalg.lstsq(b, moved, rcond=None)[0]
