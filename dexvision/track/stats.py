"""Statistics of a study with several seeds per run set: curve bands, bootstrap speed-up CIs, verdicts.

- `band`: the seeds' curves on a common x grid: mean, min and max.
- `speedup_ci`: the ratio of two run sets' mean x-to-threshold (baseline / other: above 1 the
  other set is faster) with a percentile bootstrap 95% CI that resamples each set's seeds.
  A seed that never reached the threshold counts at the last x it logged, so its set's mean is a
  lower bound and the ratio becomes a one-sided bound (`Ratio.bound`). With few seeds a percentile
  bootstrap is narrower than its name: on simulated sets with 20% log-normal spread it covered the
  true ratio 79% of the time with 3 seeds per set, 86% with 5 and 92% with 8 (tests/test_report_seeds.py
  checks 8).
- `mean_ci`: a mean with its percentile bootstrap 95% CI (e.g. a policy's successes over its episodes).
- `verdict`: a claimed speed-up range against the measured interval: contradicted when the
  interval excludes every claimed factor, reproduced when it overlaps the claim and excludes 1
  (no difference) on the claimed side (a claim whose range straddles 1, "about the same": when
  the interval lies inside it), inconclusive otherwise, and always inconclusive when either set has
  a single seed: a single seed gives its set no spread to resample, so the interval is too narrow
  (a point when both sets have one).

Everything here is deterministic: the bootstrap draws from a seeded generator.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


def band(curves: list[tuple[list[float], list[float]]], points: int = 120):
    """(grid, mean, low, high) over the x range every curve covers, or None when fewer than two
    curves overlap. Each curve is (xs ascending, ys), interpolated linearly onto the grid."""
    curves = [(xs, ys) for xs, ys in curves if len(xs) >= 2]
    if len(curves) < 2:
        return None
    start, end = max(xs[0] for xs, _ in curves), min(xs[-1] for xs, _ in curves)
    if not end > start:
        return None
    grid = np.linspace(start, end, points)
    values = np.stack([np.interp(grid, xs, ys) for xs, ys in curves])
    return grid, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def mean_ci(values: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its percentile bootstrap 95% CI (resampling the values)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    means = x[np.random.default_rng(seed).integers(0, x.size, (resamples, x.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(x.mean()), float(low), float(high)


@dataclasses.dataclass
class Ratio:
    """baseline mean / other mean, with its bootstrap CI. `bound`: '' (an estimate), 'upper' (the other
    set has seeds that never reached the threshold: its true mean is larger, the true ratio smaller),
    'lower' (the baseline has such seeds) or 'none' (both have: the data bound nothing). `seeds`: the
    fewer seeds of the two sets (below 2 the bootstrap has no spread to resample: `verdict` says
    inconclusive)."""

    value: float
    low: float
    high: float
    bound: str = ""
    seeds: int = 2

    def interval(self) -> tuple[float, float]:
        """What the data say about the true ratio, with a censored side opened up."""
        if self.bound == "upper":
            return 0.0, self.high
        if self.bound == "lower":
            return self.low, math.inf
        if self.bound == "none":
            return 0.0, math.inf
        return self.low, self.high

    def text(self) -> str:
        if self.bound == "none":
            return "unbounded (neither set reached the threshold on every seed)"
        if self.seeds < 2:
            ci = f"{self.value:.2f}x (one seed in a set: no confidence interval)"
        else:
            ci = f"{self.value:.2f}x [95% CI {self.low:.2f}-{self.high:.2f}]"
        return {"upper": f"at most {ci}", "lower": f"at least {ci}"}.get(self.bound, ci)


def speedup_ci(baseline: list[float], other: list[float], censored_baseline: bool = False,
               censored_other: bool = False, resamples: int = 10_000, seed: int = 0) -> Ratio:
    """mean(baseline) / mean(other) with a percentile bootstrap 95% CI (each set's values resampled
    with replacement, independently). Values are x-to-threshold per seed; censored_*: some of that
    set's values are the last x of a run that never reached the threshold."""
    if not baseline or not other:
        raise ValueError("speedup_ci needs at least one value per set")
    b, o = np.asarray(baseline, float), np.asarray(other, float)
    if (b <= 0).any() or (o <= 0).any():
        raise ValueError("x-to-threshold values must be positive")
    rng = np.random.default_rng(seed)
    b_means = b[rng.integers(0, len(b), (resamples, len(b)))].mean(axis=1)
    o_means = o[rng.integers(0, len(o), (resamples, len(o)))].mean(axis=1)
    low, high = np.percentile(b_means / o_means, [2.5, 97.5])
    bound = {(False, False): "", (False, True): "upper", (True, False): "lower", (True, True): "none"}
    return Ratio(float(b.mean() / o.mean()), float(low), float(high), bound[(censored_baseline, censored_other)],
                 seeds=min(len(b), len(o)))


def verdict(ratio: Ratio, claim: tuple[float, float]) -> tuple[str, str]:
    """(verdict, reason) for a claimed speed-up range [low, high] (a point claim: low == high)."""
    if ratio.seeds < 2:
        return INCONCLUSIVE, "a set has one seed: its spread between seeds is unknown (run 2 or more)"
    lo, hi = ratio.interval()
    c_lo, c_hi = claim
    faster, slower = c_lo >= 1 and c_hi > 1, c_hi <= 1 and c_lo < 1  # the claim's side of 1
    if hi < c_lo or lo > c_hi:
        if (faster and hi < 1) or (slower and lo > 1):
            return CONTRADICTED, "the interval lies on the other side of 1 (the opposite direction)"
        if lo <= 1 <= hi:
            return CONTRADICTED, "the interval includes no difference but excludes every claimed factor"
        return CONTRADICTED, "the direction holds, but the interval excludes every claimed factor"
    one_sided = "; one-sided: the factor is only bounded" if ratio.bound else ""
    if (faster and lo > 1) or (slower and hi < 1):
        return REPRODUCED, "the interval excludes 1 on the claimed side and includes a claimed factor" + one_sided
    if not (faster or slower) and c_lo <= lo and hi <= c_hi:  # a claim of little or no difference
        return REPRODUCED, "the interval lies within the claimed range"
    return INCONCLUSIVE, "the interval includes both a claimed factor and " + (
        "no difference" if lo <= 1 <= hi else "factors outside the claimed range")


def combine(verdicts: list[str]) -> str:
    """A hypothesis with several claims: contradicted if any is, reproduced if all are."""
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return INCONCLUSIVE
