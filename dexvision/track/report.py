"""`report`: an experiment's report (self-contained HTML and Markdown) and its regression check.

    report configs/experiments/e2e-study.yaml --out reports/e2e-study.html     # also writes .md + figures
    report configs/experiments/e2e-study.yaml --check reports/e2e-study-baseline.json   # exit 1 on regression
    report configs/experiments/e2e-study.yaml --save-baseline reports/e2e-study-baseline.json --tolerance 0.25

The report reads the tracked runs in the experiment's runs_dir (run.json, metrics.jsonl,
metrics.json): the title, then the conclusion (the verdict on each claim of the original,
then the experiment's own conclusion text), the experiment's text, then per section its
panels (a line per run, coloured by run set, smoothed per panel; a run with seeds is the
mean over its seeds with a min-max band), the x to the section's threshold per seed and
each run set's speed-up over the baseline set with a bootstrap 95% CI, and the claims'
verdicts; a table of every run (seed, config, git SHA, final metrics, checkpoint).

A baseline file lists metrics with a reference value and tolerance: `{"checks": [{"run": ...,
"metric": ..., "value": ..., "tolerance": ..., "higher_is_better": true}]}`. A check names a
`"run"` (a run with seeds by its base name checks the mean over its seeds, so a baseline saved
before seeds keeps working) or a `"run_set"` (the mean over the set's runs: what
--save-baseline writes for sets with seeds). A metric is a dotted path into the run's
metrics.json (`evaluation.median_successes`) or a key of its last metrics.jsonl line that has
it (`charts/median_successes`).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
from pathlib import Path

from dexvision.config import check_flags
from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.files import check_writable, write_output, write_text_output
from dexvision.track.experiment import DEFAULT_PANELS, Experiment, Panel, Section, load_experiment, run_args
from dexvision.track.figures import X_LABELS, section_figure
from dexvision.track.run import read_json, read_metrics
from dexvision.track.speedups import claim_results, claimed_factor, speedups, verdict_lines


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
    seed: int | None = None  # one seed of a run set's run (seed expansion)
    base: str = ""  # that run's name without -seedK: the seeds of one base are averaged

    @property
    def group(self) -> str:
        return self.base or self.name

    @property
    def finished(self) -> bool:
        return bool(self.result)


def load_runs(exp: Experiment) -> list[RunData]:
    runs = []
    for run, run_set in exp.all_runs():
        d = exp.run_dir(run.name)
        meta = read_json(d / "run.json", "run record") or {}
        result = read_json(d / "metrics.json", "run summary") or {}
        if not result and (d / "dataset.json").exists():  # render-shards: its manifest, once complete
            manifest = read_json(d / "dataset.json", "dataset manifest") or {}
            if manifest.get("complete"):
                result = {k: manifest[k] for k in ("num_samples", "num_shards", "bytes_written")}
                result["git_sha"] = manifest.get("code_version", {}).get("git_sha", "")
        runs.append(RunData(run.name, run_set.name if run_set else "", run_set.color if run_set else "#555555",
                            run.command or exp.defaults.command, run_args(exp, run, run_set is not None), d, meta,
                            read_metrics(d), result, run.seed, run.base))
    return runs


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
    rows = [["run", "run set", "seed", "config", "git SHA", "final metrics", "checkpoint"]]
    for run in runs:
        args = " ".join(f"{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in run.args.items())
        sha = (run.meta.get("git_sha") or run.result.get("git_sha") or "")[:7]
        ckpt = run.dir / "checkpoint.pt"
        seed = run.seed if run.seed is not None else run.meta.get("config", {}).get("seed", "")
        config = f"reused {run.dir.resolve()}" if run.dir.is_symlink() else f"{run.command} {args}"
        rows.append([run.meta.get("name", run.name), run.run_set or "(setup)", str(seed), config,
                     sha, final_metrics(run), str(ckpt) if ckpt.exists() else ""])
    return rows


# -- documents --------------------------------------------------------------------------------
def _x(value: float, x: str) -> str:
    return f"{value:.1f}" if x == "minutes" else f"{value / 1000:.1f}k" if value >= 1000 else f"{value:g}"


def _speedup_rows(section: Section, runs: list[RunData]) -> list[list[str]]:
    th = section.threshold
    rows = [["run set", f"{X_LABELS[th.x]} to {th.metric} >= {th.value:g}, per seed", "mean", "seeds reaching it",
             f"speed-up vs {section.baseline or '(no baseline)'} (bootstrap 95% CI)"]]
    for r in speedups(section, runs):
        per_seed = ", ".join(("> " if c else "") + _x(v, th.x) for v, c in zip(r["values"], r["censored"]))
        mean = (("> " if any(r["censored"]) else "") + _x(sum(r["values"]) / len(r["values"]), th.x)
                if r["values"] else "-")
        rows.append([r["run_set"], per_seed or "no data", mean, r["reached"],
                     r["ratio"].text() if r["ratio"] and r["run_set"] != section.baseline else "-"])
    return rows


def _claim_rows(section: Section, runs: list[RunData]) -> list[list[str]]:
    rows = [["claim (the original)", "compared", "claimed speed-up", "measured (bootstrap 95% CI)", "verdict"]]
    for r in claim_results(section, runs):
        verdict = f"{r['verdict'].upper()}: {r['why']}" if r["verdict"] else r["why"]
        rows.append([r["claim"].text or "-", f"{r['claim'].run_set} vs {r['versus']}", claimed_factor(r["claim"]),
                     r["ratio"].text() if r["ratio"] else "-", verdict])
    return rows


def _caption(panels: list[Panel], runs: list[RunData]) -> str:
    parts = [f"{p.title or p.metric} (`{p.metric}`" + (f", smoothing {p.smoothing:g})" if p.smoothing else ")")
             for p in panels]
    text = "*Panels, left to right:* " + "; ".join(parts) + "."
    if any(r.seed is not None for r in runs):
        text += (" A run with seeds is drawn as the mean over its seeds (over the x range every seed reached), "
                 "shaded between the lowest and the highest seed; each seed is a faint line behind it.")
    return text


def build(exp: Experiment) -> tuple[list[tuple[str, object]], list[RunData]]:
    """The report as a list of blocks: ('md', text), ('figure', (name, png)), ('table', rows)."""
    runs = load_runs(exp)
    blocks: list[tuple[str, object]] = [("md", f"# {exp.title}")]
    verdicts = verdict_lines(exp, runs)
    if verdicts or exp.conclusion.strip():  # the findings first, as the original team placed theirs
        text = ("Verdicts on the original's claims, from percentile-bootstrap 95% confidence intervals over "
                "seeds (with 3 seeds per run set such intervals cover nearer 80%; the section tables give each "
                "seed):\n\n" + "\n".join(verdicts) + "\n\n") if verdicts else ""
        blocks.append(("md", f"## Conclusion\n\n{text}{exp.conclusion.strip()}".rstrip()))
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
        blocks.append(("md", _caption(panels, members)))
        if section.threshold is not None:
            blocks.append(("table", _speedup_rows(section, runs)))
        if section.claims:
            blocks.append(("table", _claim_rows(section, runs)))
    vision = [r for r in runs if r.name in exp.vision_runs]
    if vision:
        blocks.append(("md", "## Vision pretraining\n\nValidation errors of the pose models the policies start from."))
        panels = [Panel("val/orientation_deg/median", "optimizer_steps", 0.0, "Orientation error (deg, median)"),
                  Panel("val/position_mm/median", "optimizer_steps", 0.0, "Position error (mm, median)")]
        blocks.append(("figure", ("vision", section_figure(panels, vision))))
        blocks.append(("md", _caption(panels, vision)))
    blocks.append(("md", "## Runs"))
    blocks.append(("table", run_table(runs)))
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


def _checked(runs: list[RunData], c: dict) -> tuple[str, float | None]:
    """(what a check names, its value): one run's metric, or the mean over a run set's runs
    (`"run_set": ...`) or over the seeds of a run that has seeds (a `"run"` naming its base)."""
    metric = c["metric"]
    if "run_set" in c:
        members, what = [r for r in runs if r.run_set == c["run_set"]], f"run set {c['run_set']}"
    else:
        exact = [r for r in runs if r.name == c.get("run", "")]
        members, what = exact or [r for r in runs if r.base and r.base == c.get("run")], str(c.get("run"))
    values = [v for v in (metric_value(r, metric) for r in members if r.result) if v is not None]
    if not values:
        return f"{what}: {metric}", None
    label = f"{what}: {metric}" + (f" (mean of {len(values)} runs)" if len(members) > 1 else "")
    return label, sum(values) / len(values)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_baseline(baseline: Path) -> list[dict]:
    """The checks of a baseline file, each validated: one line naming the first bad entry, and a baseline that
    checks nothing is refused (a regression check of 0 checks would pass whatever the runs did)."""
    try:
        data = json.loads(baseline.read_text())
    except FileNotFoundError:
        raise UserError(f"baseline file not found: {baseline}") from None
    except IsADirectoryError:
        raise UserError(f"baseline {baseline} is a directory, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{baseline} is not a baseline file (not JSON)") from None
    checks = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(checks, list):
        raise UserError(f"{baseline} is not a baseline file (a JSON object with a 'checks' list)")
    if not checks:
        raise UserError(f"{baseline} holds 0 checks: it checks nothing (save one from an experiment with finished "
                        "runs: report EXPERIMENT --save-baseline FILE)")
    for i, c in enumerate(checks):
        where = f"{baseline}: check {i + 1} of {len(checks)}"
        if not isinstance(c, dict):
            raise UserError(f"{where} is not an object (it needs a metric, a value and a run or run_set)")
        if not isinstance(c.get("metric"), str) or not c["metric"]:
            raise UserError(f"{where} has no 'metric' (a dotted path such as evaluation.median_successes)")
        if not isinstance(c["run_set"] if "run_set" in c else c.get("run"), str):  # the order _checked reads them
            raise UserError(f"{where} names no 'run' or 'run_set' (a string)")
        if not _number(c.get("value")) or not math.isfinite(c["value"]):
            raise UserError(f"{where} ({c['metric']}): 'value' must be a number, got {json.dumps(c.get('value'))}")
        tol = c.get("tolerance", 0.0)
        if not _number(tol) or tol < 0:
            raise UserError(f"{where} ({c['metric']}): 'tolerance' must be a number >= 0, got {json.dumps(tol)}")
        if not isinstance(c.get("higher_is_better", True), bool):
            raise UserError(f"{where} ({c['metric']}): 'higher_is_better' must be true or false")
    return checks


def check(exp: Experiment, baseline: Path) -> list[str]:
    """Lines 'ok ...' / 'REGRESSED ...' / 'MISSING ...', one per check of the baseline file."""
    checks = read_baseline(baseline)
    runs = load_runs(exp)
    lines = []
    for c in checks:
        what, value = _checked(runs, c)
        ref, tol, higher = float(c["value"]), float(c.get("tolerance", 0.0)), c.get("higher_is_better", True)
        if value is None:
            lines.append(f"MISSING {what} (no such run or metric)")
            continue
        bad = not math.isfinite(value) or (value < ref - tol if higher else value > ref + tol)
        lines.append(f"{'REGRESSED' if bad else 'ok'} {what} = {value:g} (baseline {ref:g}, tolerance {tol:g}, "
                     f"{'higher' if higher else 'lower'} is better)")
    return lines


def save_baseline(exp: Experiment, path: Path, tolerance: float) -> int:
    """Setup runs and runs without seeds: one check per run; run sets with seeds: one per set, on the mean."""
    runs = load_runs(exp)
    checks = []
    for metric, higher in (("evaluation.median_successes", True), ("validation.orientation_deg/median", False)):
        keys = [{"run": r.name} for r in runs if r.seed is None] + [
            {"run_set": name} for name in dict.fromkeys(r.run_set for r in runs if r.seed is not None)]
        for key in keys:
            _, value = _checked(runs, {**key, "metric": metric})
            if value is not None and math.isfinite(value):
                checks.append({**key, "metric": metric, "value": value,
                               "tolerance": round(abs(value) * tolerance, 4), "higher_is_better": higher})
    if not checks:
        raise UserError(f"no finished run of {exp.path} has a metric to check: a baseline of 0 checks would check "
                        f"nothing; {path} not written")
    write_text_output(path, json.dumps({"experiment": exp.path, "checks": checks}, indent=1) + "\n", "baseline")
    return len(checks)


class RegressionError(UserError):
    """A checked metric moved past its tolerance: exit code 1, like a failing test."""

    exit_code = 1


@cli
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="report", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="experiment file (YAML)")
    p.add_argument("--out", help="HTML report to write (the Markdown version goes beside it, .md)")
    p.add_argument("--check", metavar="BASELINE.json", help="exit 1 when a metric regressed past its tolerance")
    p.add_argument("--save-baseline", metavar="BASELINE.json", help="write a baseline of the current results")
    p.add_argument("--tolerance", type=float, default=0.2, help="--save-baseline: relative tolerance (default 0.2)")
    args = p.parse_args(argv)
    if not (args.out or args.check or args.save_baseline):
        raise UserError("nothing to do: pass --out REPORT.html, --check BASELINE.json or --save-baseline FILE")
    check_flags(args, "tolerance")
    if args.tolerance != 0.2 and not args.save_baseline:
        raise UserError("--tolerance sets the tolerance of a baseline being saved: it needs --save-baseline (a "
                        "baseline file given to --check carries its own tolerances)")
    if args.out and Path(args.out).suffix.lower() != ".html":
        raise UserError(f"--out must name an .html file, got {args.out}")
    for flag, path in (("--out", args.out), ("--save-baseline", args.save_baseline)):
        if path:  # before the runs are read: a path that cannot be written ends here
            check_writable(path, flag)
    exp = load_experiment(args.experiment)
    if args.out:
        out = Path(args.out)
        blocks, runs = build(exp)

        def write_both(path: Path) -> None:
            write_html(blocks, path, exp.title)
            write_markdown(blocks, path.with_suffix(".md"))

        write_output(out, write_both, "report")
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
