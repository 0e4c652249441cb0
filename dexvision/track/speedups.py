"""Speed-ups to a section's threshold over seeds, and the verdicts on the original's claims.

Each seed of a run set contributes the x (frames, optimizer steps or minutes) at which it first
reached the section's threshold; a seed that never did contributes the last x it logged, marked
censored (its true x is larger). A run set is compared with the section's baseline set by the ratio
of their means with a bootstrap 95% CI (`stats.speedup_ci`), and each claim of the section gets a
verdict from that interval (`stats.verdict`).
"""

from __future__ import annotations

import math

from dexvision.track import stats
from dexvision.track.experiment import Claim, Experiment, Section
from dexvision.track.figures import series


def threshold_x(run, section: Section) -> tuple[float, bool] | None:
    """(x at which the run first reached the section's threshold, False), or (its last logged x, True)
    when it never did (censored: the true x is larger); None without any logged point."""
    th = section.threshold
    xs, ys = series(run, th.metric, th.x)
    if not xs:
        return None
    hit = next((at for at, y in zip(xs, ys) if y >= th.value), None)
    return (hit, False) if hit is not None else (xs[-1], True)


def speedups(section: Section, runs: list) -> list[dict]:
    """Per run set of the section: each seed's x to the threshold (`values`, `censored` flags; seeds
    without a logged point yet are left out), their mean `x` (None unless every run reached it), and
    `ratio`: the baseline set's mean / this set's mean with its bootstrap CI (a stats.Ratio)."""
    if section.threshold is None:
        return []
    rows = []
    for name in section.run_sets:
        members = [r for r in runs if r.run_set == name]
        found = [(r, t) for r, t in ((r, threshold_x(r, section)) for r in members) if t is not None]
        values = [t[0] for _, t in found]
        censored = [t[1] for _, t in found]
        complete = bool(values) and len(found) == len(members) and not any(censored)
        rows.append({"run_set": name, "seeds": [r.seed for r, _ in found], "values": values, "censored": censored,
                     "x": sum(values) / len(values) if complete else None,
                     "reached": f"{censored.count(False)}/{len(members)}"})
    by_name = {r["run_set"]: r for r in rows}
    for r in rows:
        r["ratio"] = _ratio(by_name.get(section.baseline), r)
        r["speedup"] = r["ratio"].value if r["ratio"] and not r["ratio"].bound else None
    return rows


def _ratio(base: dict | None, other: dict) -> stats.Ratio | None:
    if not base or not base["values"] or not other["values"]:
        return None
    return stats.speedup_ci(base["values"], other["values"], any(base["censored"]), any(other["censored"]))


def claim_results(section: Section, runs: list) -> list[dict]:
    """Each claim of the section with the measured ratio and its verdict (verdict None: no data yet)."""
    by_name = {r["run_set"]: r for r in speedups(section, runs)}
    out = []
    for claim in section.claims:
        versus = claim.versus or section.baseline
        ratio = _ratio(by_name.get(versus), by_name[claim.run_set])
        verdict, why = stats.verdict(ratio, tuple(claim.speedup)) if ratio else (None, "no data yet")
        out.append({"claim": claim, "versus": versus, "ratio": ratio, "verdict": verdict, "why": why})
    return out


def claimed_factor(claim: Claim) -> str:
    """The claimed speed-up as text: `4x`, `2x-3x`, `above 1x` (open-ended)."""
    lo, hi = claim.speedup
    if lo == hi:
        return f"{lo:.3g}x"
    return f"above {lo:.3g}x" if math.isinf(hi) else f"{lo:.3g}x-{hi:.3g}x"


def verdict_lines(exp: Experiment, runs: list) -> list[str]:
    """One Markdown list item per section with claims: its combined verdict and each claim's numbers."""
    lines = []
    for i, section in enumerate(exp.sections, 1):
        results = claim_results(section, runs)
        if not results:
            continue
        found = [r["verdict"] for r in results]
        overall = "no data yet" if None in found else stats.combine(found)
        parts = [f"{r['claim'].run_set} vs {r['versus']}: {r['ratio'].text() if r['ratio'] else 'no data'} "
                 f"(original: {claimed_factor(r['claim'])})" for r in results]
        lines.append(f"- **{i}. {section.title}: {overall}.** " + "; ".join(parts) + ".")
    return lines
