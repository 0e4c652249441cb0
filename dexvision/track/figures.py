"""The report's figures: one panel per metric, a line per run coloured by its run set; a run with
seeds is drawn as the mean over its seeds with a shaded min-max band (each seed faint behind it)."""

from __future__ import annotations

import io
import math

from dexvision.track import stats

X_LABELS = {"frames": "frames collected", "optimizer_steps": "optimizer steps", "minutes": "wall time (min)"}


# -- series ------------------------------------------------------------------------------------
def x_value(row: dict, x: str, t0: float) -> float | None:
    if x == "frames":
        return row.get("charts/frames", row.get("step"))
    if x == "optimizer_steps":
        return row.get("charts/optimizer_steps", row.get("step"))
    wall = row.get("perf/wall_time_s")
    return wall / 60.0 if wall is not None else (row["time"] - t0) / 60.0


def series(run, metric: str, x: str) -> tuple[list[float], list[float]]:
    t0 = run.rows[0]["time"] if run.rows else 0.0
    xs, ys = [], []
    for row in run.rows:
        value = row.get(metric)
        at = x_value(row, x, t0)
        if value is not None and at is not None and math.isfinite(value):
            xs.append(float(at))
            ys.append(float(value))
    return xs, ys


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average (TensorBoard's smoothing): weight of the previous smoothed value."""
    out, last = [], None
    for v in values:
        last = v if last is None else weight * last + (1 - weight) * v
        out.append(last)
    return out


# -- figures ----------------------------------------------------------------------------------
def _groups(runs: list) -> dict[tuple[str, str], list]:
    """Runs by (run set, base run): the seeds of one run are one group."""
    groups: dict[tuple[str, str], list] = {}
    for run in runs:
        groups.setdefault((run.run_set, run.group), []).append(run)
    return groups


def _draw(ax, panel, members: list, style: str) -> None:
    """One run (a line) or the seeds of one run: each seed faint, their mean over the x range every
    seed covers as the line, shaded between the lowest and highest seed (labelled in the legend)."""
    curves = [(xs, smooth(ys, panel.smoothing)) for xs, ys in (series(r, panel.metric, panel.x) for r in members)
              if xs]
    if not curves:
        return
    first = members[0]
    name = f"{first.run_set or 'setup'}: {first.group}"
    agg = stats.band(curves) if len(members) > 1 else None
    if agg is None:  # a run without seeds, one seed with data so far, or seeds that do not overlap
        seeds = f" ({len(curves)} of {len(members)} seeds, no band)" if first.seed is not None else ""
        for k, curve in enumerate(curves):
            ax.plot(*curve, style, color=first.color, lw=1.6, label=None if k else name + seeds)
        return
    for xs, ys in curves:
        ax.plot(xs, ys, style, color=first.color, lw=0.6, alpha=0.35)
    grid, mean, low, high = agg
    ax.fill_between(grid, low, high, color=first.color, alpha=0.18, lw=0)
    ax.plot(grid, mean, style, color=first.color, lw=1.8,
            label=f"{name}: mean of {len(curves)} seeds, band min-max")


def draw_panel(ax, panel, runs: list) -> None:
    """One panel: per run set, a line per run (the seeds of a run as a mean with its band), the run
    set's colour, line styles telling a set's runs apart; titled, with the x axis and smoothing named."""
    styles = ["-", "--", ":", "-."]
    per_set: dict[str, int] = {}
    for (run_set, _), members in _groups(runs).items():
        k = per_set.get(run_set, 0)
        per_set[run_set] = k + 1
        _draw(ax, panel, members, styles[k % len(styles)])
    ax.set_title(panel.title or panel.metric, fontsize=9)
    ax.set_xlabel(X_LABELS[panel.x] + (f"  (smoothing {panel.smoothing:g})" if panel.smoothing else ""), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6.5)
    else:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="gray")


def section_figure(panels: list, runs: list) -> bytes:
    """The panels side by side, as PNG bytes."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        draw_panel(ax, panel, runs)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
