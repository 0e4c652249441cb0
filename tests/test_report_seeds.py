"""Studies with seeds: bootstrap speed-up CIs, verdicts on claims, bands, and reports of synthetic runs.

The runs here are synthetic run directories (metrics.jsonl, metrics.json) written by the test, so
nothing trains; test_experiment.py runs real tiny trainings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import one_error_line
from dexvision.track import figures, launch, report, speedups, stats
from dexvision.track.experiment import Panel, load_experiment
from dexvision.track.stats import CONTRADICTED, INCONCLUSIVE, REPRODUCED, Ratio
from test_experiment import TINY, experiment

# x (frames) at which each seed first reaches median successes >= 25; None: never (stops at 1000)
HITS = {"sep": [400, 600], "shr": [200, 300]}  # shared is 2x faster: (400 + 600) / (200 + 300)


def seeded_study(tmp_path: Path, hits: dict = HITS, **changes) -> Path:
    """A two-seed experiment of two run sets, its runs written as if they had run."""
    sets = [{"name": "separate", "color": "#1f77b4", "runs": [{"name": "sep"}]},
            {"name": "shared", "color": "#d62728", "runs": [{"name": "shr", "args": {"shared-embeddings": True}}]}]
    section = {"title": "Embeddings", "text": "Separate vs shared.", "run_sets": ["separate", "shared"],
               "baseline": "separate", "threshold": {"metric": "charts/median_successes", "value": 25, "x": "frames"},
               "claims": [{"run_set": "shared", "speedup": [1.2, 3], "text": "shared is faster"}]}
    path = experiment(tmp_path, setup=[], run_sets=sets, sections=[section],
                      defaults={"command": "train-policy", "args": {"steps": 80, "set": dict(TINY)}, "seeds": [0, 1]},
                      **changes)
    exp = load_experiment(path)
    for run_set in exp.run_sets:
        for run in run_set.runs:
            write_run(exp.run_dir(run.name), hits[run.base][run.seed], reward_scale=1 + run.seed)
    return path


def write_run(d: Path, hit: int | None, reward_scale: float = 1.0, final: float = 30.0) -> None:
    """A finished train-policy run logged every 100 frames up to 1000."""
    d.mkdir(parents=True)
    rows = [{"step": f, "time": 1000.0 + f, "charts/frames": f, "charts/optimizer_steps": f // 10,
             "perf/wall_time_s": f * 0.6, "charts/mean_reward": reward_scale * f / 1000,
             "charts/median_successes": 30.0 if hit is not None and f >= hit else 10.0}
            for f in range(100, 1001, 100)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "metrics.json").write_text(json.dumps({"evaluation": {"median_successes": final, "mean_successes": final,
                                                               "episodes": 2},
                                                "frames": 1000, "optimizer_steps": 100, "wall_time_s": 600}))


# -- bootstrap CI ------------------------------------------------------------------------------
def test_bootstrap_ci_of_synthetic_runs_covers_the_known_ratio():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):  # 8 seeds per set, 20% lognormal spread, true ratio of the means 2
        base, other = 2000 * rng.lognormal(0, 0.2, 8), 1000 * rng.lognormal(0, 0.2, 8)
        ci = stats.speedup_ci(list(base), list(other), resamples=2000, seed=trial)
        assert ci.low <= ci.value <= ci.high
        covered += ci.low <= 2.0 <= ci.high
    assert covered / 200 >= 0.88


def test_bootstrap_ci_is_deterministic_and_marks_censored_sets():
    a = stats.speedup_ci([400, 600], [200, 300])
    assert a == stats.speedup_ci([400, 600], [200, 300])
    assert a.value == pytest.approx(2.0) and a.low == pytest.approx(400 / 300) and a.high == pytest.approx(3.0)
    assert stats.speedup_ci([400], [900], censored_other=True).interval()[0] == 0.0  # at most
    assert stats.speedup_ci([900], [400], censored_baseline=True).interval()[1] == math.inf  # at least
    assert stats.speedup_ci([900], [900], True, True).text().startswith("unbounded")
    assert a.seeds == 2 and stats.speedup_ci([400, 600, 500], [200]).seeds == 1
    assert "one seed" in stats.speedup_ci([400], [200]).text() and "CI" in a.text()
    with pytest.raises(ValueError):
        stats.speedup_ci([0.0], [1.0])


def test_speedups_of_a_seeded_study_give_each_seed_and_the_ci(tmp_path):
    exp = load_experiment(seeded_study(tmp_path))
    rows = speedups.speedups(exp.sections[0], report.load_runs(exp))
    sep, shr = rows
    assert sep["values"] == [400, 600] and shr["values"] == [200, 300] and shr["seeds"] == [0, 1]
    assert shr["reached"] == "2/2" and shr["x"] == 250
    assert shr["speedup"] == pytest.approx(2.0) and shr["ratio"].low <= 2.0 <= shr["ratio"].high
    assert sep["speedup"] == pytest.approx(1.0)


def test_a_seed_that_never_reached_the_threshold_makes_the_speedup_a_bound(tmp_path):
    exp = load_experiment(seeded_study(tmp_path, hits={"sep": [400, 600], "shr": [200, None]}))
    shr = speedups.speedups(exp.sections[0], report.load_runs(exp))[1]
    assert shr["censored"] == [False, True] and shr["values"] == [200, 1000] and shr["reached"] == "1/2"
    assert shr["x"] is None and shr["speedup"] is None and shr["ratio"].bound == "upper"
    assert shr["ratio"].text().startswith("at most")


# -- verdicts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio, claim, verdict, reason", [
    (Ratio(2.0, 1.5, 2.6), (2, 3), REPRODUCED, "excludes 1 on the claimed side"),
    (Ratio(0.5, 0.4, 0.6), (0.25, 0.5), REPRODUCED, "excludes 1 on the claimed side"),
    (Ratio(3.0, 2.5, 4.0, "lower"), (30, 30), REPRODUCED, "one-sided"),  # the other set never got there
    (Ratio(1.0, 0.9, 1.1), (0.8, 1.25), REPRODUCED, "within the claimed range"),  # "about the same"
    (Ratio(0.6, 0.5, 0.8), (2, 3), CONTRADICTED, "opposite direction"),
    (Ratio(1.0, 0.8, 1.3), (2, 3), CONTRADICTED, "includes no difference but excludes every claimed factor"),
    (Ratio(1.3, 1.2, 1.4), (30, 30), CONTRADICTED, "the direction holds"),
    (Ratio(1.5, 0.9, 2.5), (2, 3), INCONCLUSIVE, "no difference"),
    (Ratio(1.5, 1.2, 1.8, "upper"), (1, math.inf), INCONCLUSIVE, "no difference"),  # the faster set is censored
    (Ratio(1.0, 1.0, 1.0, "none"), (4, 4), INCONCLUSIVE, "no difference"),
    (Ratio(1.1, 1.05, 1.4), (0.8, 1.25), INCONCLUSIVE, "outside the claimed range"),
    (Ratio(0.1, 0.1, 0.1, seeds=1), (30, 30), INCONCLUSIVE, "one seed"),  # far off, but one seed
    (Ratio(4.0, 4.0, 4.0, seeds=1), (4, 4), INCONCLUSIVE, "one seed"),  # spot on, but one seed
])
def test_verdict_rules(ratio, claim, verdict, reason):
    found, why = stats.verdict(ratio, claim)
    assert found == verdict and reason in why


def test_a_hypothesis_with_several_claims_combines_their_verdicts():
    assert stats.combine([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert stats.combine([REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert stats.combine([REPRODUCED, CONTRADICTED, INCONCLUSIVE]) == CONTRADICTED


@pytest.mark.parametrize("claims, fragment", [
    ([{"run_set": "nope", "speedup": 2}], "a claim names run set 'nope'"),
    ([{"run_set": "separate", "speedup": 2}], "compares run set 'separate' with itself"),
    ([{"run_set": "shared", "speedup": [3, 2]}], "speedup must be one positive factor or [low, high]"),
])
def test_bad_claims_are_one_clear_line(tmp_path, capsys, claims, fragment):
    section = {"title": "S", "run_sets": ["separate", "shared"], "baseline": "separate",
               "threshold": {"value": 25}, "claims": claims}
    assert launch.main([str(experiment(tmp_path, sections=[section])), "--dry-run"]) == 2
    one_error_line(capsys.readouterr().err, fragment)


def test_claims_need_a_threshold(tmp_path, capsys):
    section = {"title": "S", "run_sets": ["separate", "shared"], "baseline": "separate",
               "claims": [{"run_set": "shared", "speedup": 2}]}
    assert launch.main([str(experiment(tmp_path, sections=[section])), "--dry-run"]) == 2
    one_error_line(capsys.readouterr().err, "claims need a threshold and a baseline")


# -- figures and documents -----------------------------------------------------------------------
def test_a_panel_draws_the_mean_over_seeds_inside_a_labelled_band(tmp_path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    exp = load_experiment(seeded_study(tmp_path))
    runs = report.load_runs(exp)
    panel = Panel("charts/mean_reward", "frames", 0.5, "reward")
    fig, ax = plt.subplots()
    figures.draw_panel(ax, panel, runs)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["separate: sep: mean of 2 seeds, band min-max", "shared: shr: mean of 2 seeds, band min-max"]
    mean = next(line for line in ax.lines if line.get_label() == labels[0])
    seeds = [figures.smooth(figures.series(r, panel.metric, "frames")[1], 0.5) for r in runs if r.base == "sep"]
    assert mean.get_color() == "#1f77b4"
    assert mean.get_ydata()[0] == pytest.approx((seeds[0][0] + seeds[1][0]) / 2)  # smoothed, then averaged
    assert mean.get_ydata()[-1] == pytest.approx((seeds[0][-1] + seeds[1][-1]) / 2)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(min(seeds[0][0], seeds[1][0]))  # from the lowest seed ...
    assert band.max() == pytest.approx(max(seeds[0][-1], seeds[1][-1]))  # ... to the highest
    plt.close(fig)


def test_report_of_a_two_seed_study_has_bands_cis_and_verdicts_in_html_and_markdown(tmp_path):
    path = seeded_study(tmp_path)
    out = tmp_path / "report.html"
    assert report.main([str(path), "--out", str(out)]) == 0
    md, page = out.with_suffix(".md").read_text(), out.read_text()
    for doc in (md, page):
        assert "shaded between the lowest and the highest seed" in doc  # the band, in the caption
        assert "speed-up vs separate (bootstrap 95% CI)" in doc
        assert "2.00x [95% CI 1.33-3.00]" in doc
        assert "REPRODUCED: the interval excludes 1" in doc  # the claim's table
        assert "shared is faster" in doc
        assert "400, 600" in doc and "200, 300" in doc  # x to the threshold per seed
    # the conclusion, verdicts first, stands under the title, before the context
    assert md.index("# Tiny study") < md.index("## Conclusion") < md.index("Embeddings: reproduced.") < md.index(
        "What we found.") < md.index("## Context")
    assert "<strong>1. Embeddings: reproduced.</strong>" in page
    runs = report.load_runs(load_experiment(path))
    assert [row[2] for row in report.run_table(runs)[1:]] == ["0", "1", "0", "1"]
    assert "| sep-seed1 | separate | 1 |" in md


def test_verdicts_wait_for_data(tmp_path):
    path = seeded_study(tmp_path)
    exp = load_experiment(path)
    for run_set in exp.run_sets[1:]:
        for run in run_set.runs:
            (exp.run_dir(run.name) / "metrics.jsonl").unlink()
    assert speedups.verdict_lines(exp, report.load_runs(exp)) == [
        "- **1. Embeddings: no data yet.** shared vs separate: no data (original: 1.2x-3x)."]


# -- regression check on run-set means -----------------------------------------------------------
def test_baseline_checks_run_set_means_and_old_per_run_baselines_check_the_mean_of_seeds(tmp_path, capsys):
    path = seeded_study(tmp_path)
    exp = load_experiment(path)
    baseline = tmp_path / "baseline.json"
    assert report.main([str(path), "--save-baseline", str(baseline), "--tolerance", "0.1"]) == 0
    checks = json.loads(baseline.read_text())["checks"]
    assert [(c.get("run_set"), c["value"]) for c in checks] == [("separate", 30.0), ("shared", 30.0)]
    assert report.main([str(path), "--check", str(baseline)]) == 0
    old = tmp_path / "old.json"  # a baseline from before seeds names the run, not the seeded runs
    old.write_text(json.dumps({"checks": [{"run": "sep", "metric": "evaluation.median_successes", "value": 30.0}]}))
    (exp.run_dir("sep-seed1") / "metrics.json").write_text(json.dumps({"evaluation": {"median_successes": 10.0}}))
    capsys.readouterr()
    assert report.main([str(path), "--check", str(old)]) == 1
    assert "REGRESSED sep: evaluation.median_successes (mean of 2 runs) = 20" in capsys.readouterr().out


def test_the_committed_e2e_baseline_checks_the_seeded_study(tmp_path):
    """reports/e2e-study-baseline.json (saved from the three-seed study) checks each run set on its seeds' mean."""
    root = Path(__file__).resolve().parents[1]
    exp = load_experiment(root / "configs/experiments/e2e-study.yaml")
    exp.runs_dir = str(tmp_path)
    checks = json.loads((root / "reports/e2e-study-baseline.json").read_text())["checks"]
    for run, _ in exp.all_runs():
        exp.run_dir(run.name).mkdir()
        result = {"evaluation": {"median_successes": 50.0}, "validation": {"orientation_deg/median": 5.0}}
        (exp.run_dir(run.name) / "metrics.json").write_text(json.dumps(result))
    lines = report.check(exp, root / "reports/e2e-study-baseline.json")
    assert len(lines) == len(checks) and all(line.startswith("ok ") for line in lines), lines
    assert any(line.startswith("ok run set baseline: evaluation.median_successes (mean of 3 runs)") for line in lines)
