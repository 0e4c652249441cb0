"""`report`: an experiment's report (self-contained HTML and Markdown) and its regression check.

    report configs/experiments/e2e-study.yaml --out reports/e2e-study.html     # also writes .md + figures
    report configs/experiments/e2e-study.yaml --check reports/e2e-study-baseline.json   # exit 1 on regression
    report configs/experiments/e2e-study.yaml --save-baseline reports/e2e-study-baseline.json --tolerance 0.25

The report reads the tracked runs in the experiment's runs_dir (run.json, metrics.jsonl,
metrics.json): the experiment's text, then per section its panels (one line per run,
coloured by run set, smoothed per panel) and the speed-up of each run set to the
section's threshold relative to its baseline set; a table of every run (config, git
SHA, final metrics, checkpoint); the conclusion. A baseline file lists metrics with a
reference value and tolerance: `{"checks": [{"run": ..., "metric": ..., "value": ...,
"tolerance": ..., "higher_is_better": true}]}`; a metric is a dotted path into the
run's metrics.json (`evaluation.median_successes`) or a key of its last metrics.jsonl
line that has it (`charts/median_successes`).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import io
import json
import math
from pathlib import Path

from dexvision.errors import UserError, cli
from dexvision.track.experiment import DEFAULT_PANELS, Experiment, Panel, Section, load_experiment, run_args
from dexvision.track.run import read_metrics


@dataclasses.dataclass
class RunData:
    name: str
    run_set: str  # "" for setup runs
    color: str
    command: str
    args: dict
    dir: Path
    meta: dict  # run.json ({} when absent)
    rows: list[dict]  # metrics.jsonl
    result: dict  # metrics.json ({} while running or absent)

    @property
    def finished(self) -> bool:
        return bool(self.result)


def load_runs(exp: Experiment) -> list[RunData]:
    runs = []
    for run, run_set in exp.all_runs():
        d = exp.run_dir(run.name)
        meta = json.loads((d / "run.json").read_text()) if (d / "run.json").exists() else {}
        result = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        if not result and (d / "dataset.json").exists():  # render-shards: its manifest, once complete
            manifest = json.loads((d / "dataset.json").read_text())
            if manifest.get("complete"):
                result = {k: manifest[k] for k in ("num_samples", "num_shards", "bytes_written")}
                result["git_sha"] = manifest.get("code_version", {}).get("git_sha", "")
        runs.append(RunData(run.name, run_set.name if run_set else "", run_set.color if run_set else "#555555",
                            run.command or exp.defaults.command, run_args(exp, run, run_set is not None), d, meta,
                            read_metrics(d), result))
    return runs


# -- series -----------------------------------------------------------------------------------
def x_value(row: dict, x: str, t0: float) -> float | None:
    if x == "frames":
        return row.get("charts/frames", row.get("step"))
    if x == "optimizer_steps":
        return row.get("charts/optimizer_steps", row.get("step"))
    wall = row.get("perf/wall_time_s")
    return wall / 60.0 if wall is not None else (row["time"] - t0) / 60.0


def series(run: RunData, metric: str, x: str) -> tuple[list[float], list[float]]:
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


def first_crossing(run: RunData, metric: str, value: float, x: str) -> float | None:
    for at, y in zip(*series(run, metric, x)):
        if y >= value:
            return at
    return None


def speedups(section: Section, runs: list[RunData]) -> list[dict]:
    """Per run set: the mean x at which its runs first reached the threshold, and baseline x / that x."""
    if section.threshold is None:
        return []
    th = section.threshold
    rows = []
    for name in section.run_sets:
        members = [r for r in runs if r.run_set == name]
        hits = [first_crossing(r, th.metric, th.value, th.x) for r in members]
        reached = [h for h in hits if h is not None]
        longest = max((series(r, th.metric, th.x)[0][-1:] or [0.0])[0] for r in members) if members else 0.0
        rows.append({"run_set": name, "x": sum(reached) / len(reached) if reached else None,
                     "reached": f"{len(reached)}/{len(members)}", "longest_x": longest})
        if len(reached) < len(members):
            rows[-1]["x"] = None  # a set counts as reaching the threshold only when all its runs did
    base = next((r["x"] for r in rows if r["run_set"] == section.baseline), None)
    for r in rows:
        r["speedup"] = base / r["x"] if base is not None and r["x"] else None
    return rows


# -- figures ----------------------------------------------------------------------------------
X_LABELS = {"frames": "frames collected", "optimizer_steps": "optimizer steps", "minutes": "wall time (min)"}


def section_figure(panels: list[Panel], runs: list[RunData]) -> bytes:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.5), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, panel in zip(axes[0], panels):
        seen_sets: dict[str, int] = {}
        for run in runs:
            xs, ys = series(run, panel.metric, panel.x)
            k = seen_sets.get(run.run_set, 0)
            seen_sets[run.run_set] = k + 1
            if not xs:
                continue
            label = f"{run.run_set or 'setup'}: {run.name}"
            ax.plot(xs, smooth(ys, panel.smoothing), styles[k % len(styles)], color=run.color, label=label, lw=1.6)
        ax.set_title(panel.title or panel.metric, fontsize=9)
        ax.set_xlabel(X_LABELS[panel.x] + (f"  (smoothing {panel.smoothing:g})" if panel.smoothing else ""),
                      fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=6.5)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


# -- table ------------------------------------------------------------------------------------
def final_metrics(run: RunData) -> str:
    r = run.result
    if not r:
        return "running" if run.rows else "not run"
    if run.command == "train-policy":
        e = r.get("evaluation", {})
        text = (f"successes median {e.get('median_successes', float('nan')):g} / mean "
                f"{e.get('mean_successes', float('nan')):.1f} ({e.get('episodes', 0)} greedy episodes); "
                f"{r['frames']:,} frames, {r['optimizer_steps']:,} optimizer steps, {r['wall_time_s'] / 60:.1f} min")
        return text + (" **(stopped by its time limit)**" if r.get("stopped_by_time_limit") else "")
    if run.command == "train-vision":
        v = r.get("validation", {})
        return (f"orientation {v.get('orientation_deg/median', float('nan')):.1f} deg, position "
                f"{v.get('position_mm/median', float('nan')):.1f} mm (medians); {r['steps']:,} steps, "
                f"{r['wall_time_s'] / 60:.1f} min")
    if run.command == "render-shards":
        return f"{r['num_samples']:,} samples in {r['num_shards']} shards, {r['bytes_written'] / 1e6:.0f} MB"
    return ", ".join(f"{k}: {v}" for k, v in r.items() if isinstance(v, (int, float)))[:200]


def run_table(runs: list[RunData]) -> list[list[str]]:
    rows = [["run", "run set", "config", "git SHA", "final metrics", "checkpoint"]]
    for run in runs:
        args = " ".join(f"{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in run.args.items())
        sha = (run.meta.get("git_sha") or run.result.get("git_sha") or "")[:7]
        ckpt = run.dir / "checkpoint.pt"
        rows.append([run.meta.get("name", run.name), run.run_set or "(setup)", f"{run.command} {args}", sha,
                     final_metrics(run), str(ckpt) if ckpt.exists() else ""])
    return rows


# -- documents --------------------------------------------------------------------------------
def _speedup_rows(section: Section, runs: list[RunData]) -> list[list[str]]:
    th = section.threshold
    rows = [["run set", f"{X_LABELS[th.x]} to {th.metric} >= {th.value:g}", "runs reaching it",
             f"speed-up vs {section.baseline or '(no baseline)'}"]]
    for r in speedups(section, runs):
        x = f"{r['x']:,.1f}" if r["x"] is not None else f"not reached (ran {r['longest_x']:,.1f})"
        rows.append([r["run_set"], x, r["reached"], f"{r['speedup']:.2f}x" if r["speedup"] else "-"])
    return rows


def _caption(panels: list[Panel]) -> str:
    parts = [f"{p.title or p.metric} (`{p.metric}`" + (f", smoothing {p.smoothing:g})" if p.smoothing else ")")
             for p in panels]
    return "*Panels, left to right:* " + "; ".join(parts) + "."


def build(exp: Experiment) -> tuple[list[tuple[str, object]], list[RunData]]:
    """The report as a list of blocks: ('md', text), ('figure', (name, png)), ('table', rows)."""
    runs = load_runs(exp)
    blocks: list[tuple[str, object]] = [("md", f"# {exp.title}")]
    for heading, text in (("Context", exp.context), ("Hypotheses", exp.hypotheses), ("Plan", exp.plan)):
        if text.strip():
            blocks.append(("md", f"## {heading}\n\n{text.strip()}"))
    for i, section in enumerate(exp.sections, 1):
        members = [r for r in runs if r.run_set in section.run_sets]
        blocks.append(("md", f"## {i}. {section.title}\n\n{section.text.strip()}"))
        notes = [f"*{name}*: {exp.run_set(name).note.strip()}" for name in section.run_sets if exp.run_set(name).note]
        if notes:
            blocks.append(("md", "\n\n".join(notes)))
        panels = section.panels or list(DEFAULT_PANELS)
        blocks.append(("figure", (f"section{i}", section_figure(panels, members))))
        blocks.append(("md", _caption(panels)))
        if section.threshold is not None:
            blocks.append(("table", _speedup_rows(section, runs)))
    vision = [r for r in runs if r.name in exp.vision_runs]
    if vision:
        blocks.append(("md", "## Vision pretraining\n\nValidation errors of the pose models the policies start from."))
        panels = [Panel("val/orientation_deg/median", "optimizer_steps", 0.0, "Orientation error (deg, median)"),
                  Panel("val/position_mm/median", "optimizer_steps", 0.0, "Position error (mm, median)")]
        blocks.append(("figure", ("vision", section_figure(panels, vision))))
        blocks.append(("md", _caption(panels)))
    blocks.append(("md", "## Runs"))
    blocks.append(("table", run_table(runs)))
    if exp.conclusion.strip():
        blocks.append(("md", f"## Conclusion\n\n{exp.conclusion.strip()}"))
    return blocks, runs


def _md_table(rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def write_markdown(blocks: list, path: Path) -> None:
    files = path.with_name(path.stem + "_files")
    files.mkdir(parents=True, exist_ok=True)
    parts = []
    for kind, content in blocks:
        if kind == "md":
            parts.append(content)
        elif kind == "figure":
            name, png = content
            (files / f"{name}.png").write_bytes(png)
            parts.append(f"![{name}]({files.name}/{name}.png)")
        else:
            parts.append(_md_table(content))
    path.write_text("\n\n".join(parts) + "\n")


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 6px;
vertical-align:top;text-align:left}th{background:#f3f3f3}img{max-width:100%}code{background:#f5f5f5}"""


def write_html(blocks: list, path: Path, title: str) -> None:
    import markdown  # noqa: PLC0415 - installed with tensorboard; declared in pyproject

    body = []
    for kind, content in blocks:
        if kind == "md":
            body.append(markdown.markdown(content, extensions=["tables"]))
        elif kind == "figure":
            name, png = content
            data = base64.b64encode(png).decode()
            body.append(f'<p><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"></p>')
        else:
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in content[0])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                           for row in content[1:])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


# -- regression check -------------------------------------------------------------------------
def metric_value(run: RunData, metric: str) -> float | None:
    node: object = run.result
    for part in metric.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return float(node)
    for row in reversed(run.rows):
        if metric in row:
            return float(row[metric])
    return None


def check(exp: Experiment, baseline: Path) -> list[str]:
    """Lines 'ok ...' / 'REGRESSED ...' / 'MISSING ...', one per check of the baseline file."""
    try:
        checks = json.loads(baseline.read_text())["checks"]
    except FileNotFoundError:
        raise UserError(f"baseline file not found: {baseline}") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{baseline} is not a baseline file (a JSON object with a 'checks' list)") from None
    runs = {r.name: r for r in load_runs(exp)}
    lines = []
    for c in checks:
        run = runs.get(c.get("run", ""))
        value = metric_value(run, c["metric"]) if run else None
        ref, tol, higher = float(c["value"]), float(c.get("tolerance", 0.0)), c.get("higher_is_better", True)
        what = f"{c.get('run')}: {c['metric']}"
        if value is None:
            lines.append(f"MISSING {what} (no such run or metric)")
            continue
        bad = not math.isfinite(value) or (value < ref - tol if higher else value > ref + tol)
        lines.append(f"{'REGRESSED' if bad else 'ok'} {what} = {value:g} (baseline {ref:g}, tolerance {tol:g}, "
                     f"{'higher' if higher else 'lower'} is better)")
    return lines


def save_baseline(exp: Experiment, path: Path, tolerance: float) -> int:
    checks = []
    for run in load_runs(exp):
        for metric, higher in (("evaluation.median_successes", True), ("validation.orientation_deg/median", False)):
            value = metric_value(run, metric) if run.result else None
            if value is not None:
                checks.append({"run": run.name, "metric": metric, "value": value,
                               "tolerance": round(abs(value) * tolerance, 4), "higher_is_better": higher})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"experiment": exp.path, "checks": checks}, indent=1) + "\n")
    return len(checks)


class RegressionError(UserError):
    """A checked metric moved past its tolerance: exit code 1, like a failing test."""

    exit_code = 1


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="report", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="experiment file (YAML)")
    p.add_argument("--out", help="HTML report to write (the Markdown version goes beside it, .md)")
    p.add_argument("--check", metavar="BASELINE.json", help="exit 1 when a metric regressed past its tolerance")
    p.add_argument("--save-baseline", metavar="BASELINE.json", help="write a baseline of the current results")
    p.add_argument("--tolerance", type=float, default=0.2, help="--save-baseline: relative tolerance (default 0.2)")
    args = p.parse_args(argv)
    if not (args.out or args.check or args.save_baseline):
        raise UserError("nothing to do: pass --out REPORT.html, --check BASELINE.json or --save-baseline FILE")
    exp = load_experiment(args.experiment)
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() != ".html":
            raise UserError(f"--out must name an .html file, got {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        blocks, runs = build(exp)
        write_html(blocks, out, exp.title)
        write_markdown(blocks, out.with_suffix(".md"))
        done = sum(r.finished for r in runs)
        print(f"wrote {out} and {out.with_suffix('.md')} ({done} of {len(runs)} runs finished)")
    if args.save_baseline:
        n = save_baseline(exp, Path(args.save_baseline), args.tolerance)
        print(f"wrote {args.save_baseline} ({n} checks)")
    if args.check:
        lines = check(exp, Path(args.check))
        print("\n".join(lines))
        bad = [line for line in lines if not line.startswith("ok")]
        if bad:
            raise RegressionError(f"{len(bad)} of {len(lines)} checks failed: {bad[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
