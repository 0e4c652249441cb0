"""Experiments as code: validation, run-experiment (skips what is done), report (HTML, Markdown, --check)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import one_error_line
from dexvision.track import launch, report
from dexvision.track.experiment import command_line, load_experiment

TINY = {"num_envs": 4, "minibatches": 2, "rollout": 10, "lstm_hidden": 16, "embed_dim": 16, "eval_episodes": 2,
        "env.max_successes": 2, "env.goal_timeout": 5, "log_every_s": 0}


def experiment(tmp_path: Path, **changes) -> Path:
    doc = {
        "title": "Tiny study",
        "context": "Why we ran it.",
        "hypotheses": "1. Shared embeddings are slower.",
        "plan": "Two tiny runs.",
        "conclusion": "What we found.",
        "runs_dir": str(tmp_path / "runs"),
        "setup": [{"name": "teacher", "command": "train-policy", "args": {"steps": 80, "set": dict(TINY)}}],
        "defaults": {"command": "train-policy", "args": {"steps": 80, "set": dict(TINY)}},
        "run_sets": [
            {"name": "separate", "color": "#1f77b4", "runs": [{"name": "sep"}]},
            {"name": "shared", "color": "#d62728", "note": "shared mappings",
             "runs": [{"name": "shr", "args": {"shared-embeddings": True, "seed": 1}}]},
        ],
        "sections": [{"title": "Embeddings", "text": "Separate vs shared.", "run_sets": ["separate", "shared"],
                      "baseline": "separate",
                      "threshold": {"metric": "charts/frames", "value": 40, "x": "frames"}}],
    }
    doc.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_command_lines_merge_defaults_overrides_and_placeholders(tmp_path):
    path = experiment(tmp_path, defaults={"command": "train-policy",
                                          "args": {"teacher": "{teacher}/checkpoint.pt", "steps": "40k",
                                                   "init-vision": "v.pt", "set": {"lr": 0.001}}})
    exp = load_experiment(path)
    run = exp.run_sets[1].runs[0]
    run.args = {"init-vision": None, "shared-embeddings": True, "set": {"epochs": 3}}
    argv = command_line(exp, run, in_set=True)
    teacher = str(tmp_path / "runs" / "teacher" / "checkpoint.pt")
    assert argv == ["train-policy", "--teacher", teacher, "--steps", "40k", "--shared-embeddings",
                    "--set", "lr=0.001", "--set", "epochs=3", "--out", str(tmp_path / "runs" / "shr")]


@pytest.mark.parametrize("change, fragment", [
    ({"run_sets": [{"name": "a", "color": "blue", "runs": [{"name": "x"}]}], "sections": []},
     "color must look like #1f77b4"),
    ({"sections": [{"title": "S", "run_sets": ["separate", "nope"]}]}, "names run set 'nope', which does not exist"),
    ({"run_sets": [{"name": "a", "color": "#000000", "runs": [{"name": "teacher"}]}], "sections": []},
     "run name 'teacher' is used twice"),
    ({"defaults": {"command": "train-policy", "args": {"teacher": "{techer}/checkpoint.pt"}}},
     "refers to '{techer}', which is not a setup run"),
    ({"defaults": {"command": "make-coffee"}}, "unknown command 'make-coffee'"),
    ({"sections": [{"title": "S", "run_sets": ["separate"], "threshold": {"x": "hours"}}]},
     "x must be one of frames, optimizer_steps, minutes"),
    ({"colour_scheme": "dark"}, "unknown config key 'colour_scheme'"),
])
def test_experiment_file_errors_are_one_clear_line(tmp_path, capsys, change, fragment):
    path = experiment(tmp_path, **change)
    assert launch.main([str(path), "--dry-run"]) == 2
    one_error_line(capsys.readouterr().err, fragment)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny experiment, run once."""
    tmp = tmp_path_factory.mktemp("study")
    path = experiment(tmp)
    assert launch.main([str(path)]) == 0
    return path


def test_run_experiment_runs_everything_then_skips_what_is_done(study, capsys):
    exp = load_experiment(study)
    for name in ("teacher", "sep", "shr"):
        record = json.loads(launch.done_record(exp, name).read_text())
        assert record["exit_code"] == 0 and (exp.run_dir(name) / "metrics.json").exists()
    before = {p: p.stat().st_mtime_ns for p in Path(exp.runs_dir).rglob("checkpoint.pt")}
    outcome = launch.launch(exp)
    assert outcome == {"teacher": "done", "sep": "done", "shr": "done"}
    assert {p: p.stat().st_mtime_ns for p in Path(exp.runs_dir).rglob("checkpoint.pt")} == before
    assert launch.main([str(study), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("[  done]") == 3


def test_changed_arguments_of_a_finished_run_are_an_error(study, tmp_path, capsys):
    doc = yaml.safe_load(study.read_text())
    doc["run_sets"][0]["runs"][0]["args"] = {"seed": 7}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert launch.main([str(changed), "--dry-run"]) == 2
    one_error_line(capsys.readouterr().err, "run 'sep' finished with other arguments")


def test_an_existing_run_stands_in_for_a_setup_run(study, tmp_path, capsys):
    teacher = load_experiment(study).run_dir("teacher")
    (tmp_path / "other").mkdir()
    (tmp_path / "ran").mkdir()
    path = experiment(tmp_path / "other", defaults={"command": "train-policy", "args": {
        "teacher": "{teacher}/checkpoint.pt", "algo": "bc", "steps": 80, "set": dict(TINY)}})
    assert launch.main([str(path), "--use", f"teacher={teacher}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("[  done]") == 1 and out.count("[   new]") == 2
    exp = load_experiment(path)
    assert exp.run_dir("teacher").resolve() == teacher.resolve()
    assert json.loads(launch.done_record(exp, "teacher").read_text())["reused"] == str(teacher.resolve())
    assert f"--teacher {exp.run_dir('teacher')}/checkpoint.pt" in out
    assert launch.main([str(path), "--dry-run"]) == 0  # the link and record stay: no --use needed again
    assert capsys.readouterr().out.count("[  done]") == 1
    launch.done_record(exp, "teacher").unlink()  # a lost record is written again, never a resume in DIR
    assert launch.main([str(path), "--use", f"teacher={teacher}", "--dry-run"]) == 0
    assert capsys.readouterr().out.count("[  done]") == 1
    row = report.run_table(report.load_runs(exp))[1]
    assert row[3] == f"reused {teacher.resolve()}" and len(row[4]) == 7 and "frames" in row[5]
    for args, fragment in [(["--use", f"student={teacher}"], "'student' is not a setup run"),
                           (["--use", f"teacher={tmp_path}"], "no checkpoint.pt there"),
                           (["--use", f"teacher={exp.run_dir('sep')}"], "no checkpoint.pt there"),
                           (["--use", "teacher"], "--use takes NAME=DIR")]:
        assert launch.main([str(path), *args, "--dry-run"]) == 2
        one_error_line(capsys.readouterr().err, fragment)
    fresh = experiment(tmp_path / "ran")
    load_experiment(fresh).run_dir("teacher").mkdir(parents=True)
    assert launch.main([str(fresh), "--use", f"teacher={teacher}", "--dry-run"]) == 2
    one_error_line(capsys.readouterr().err, "is a run of this experiment already")


def test_an_interrupted_run_resumes(tmp_path):
    exp = load_experiment(experiment(tmp_path))
    run = exp.run_sets[0].runs[0]
    exp.run_dir("sep").mkdir(parents=True)
    (exp.run_dir("sep") / "checkpoint.pt").write_bytes(b"partial")
    state, argv = launch.status(exp, run, in_set=True)
    assert state == "resume" and argv[-1] == "--resume"


def test_report_has_the_text_every_panel_the_table_and_the_speedups(study, tmp_path):
    out = tmp_path / "report.html"
    assert report.main([str(study), "--out", str(out)]) == 0
    page = out.read_text()
    for text in ("Tiny study", "Why we ran it.", "Shared embeddings are slower.", "What we found.",
                 "shared mappings", "Mean reward vs frames collected", "speed-up vs separate"):
        assert text in page or text in out.with_suffix(".md").read_text(), text
    assert len(re.findall(r'<img alt="section1" src="data:image/png;base64,', page)) == 1  # self-contained
    md = out.with_suffix(".md").read_text()
    assert "![section1](report_files/section1.png)" in md and (tmp_path / "report_files" / "section1.png").exists()
    exp = load_experiment(study)
    runs = report.load_runs(exp)
    table = report.run_table(runs)
    assert [row[0].split("-", 1)[-1] for row in table[1:]] == ["teacher", "sep", "shr"]
    assert [row[2] for row in table[1:]] == ["0", "0", "1"]  # seeds from each run's config (shr sets 1)
    assert all(len(row[4]) == 7 for row in table[1:])  # git SHA of each run
    assert all("checkpoint.pt" in row[6] for row in table[1:])
    speed = report.speedups(exp.sections[0], runs)
    assert [r["run_set"] for r in speed] == ["separate", "shared"]
    assert speed[0]["x"] == 40 and speed[0]["speedup"] == pytest.approx(1.0)  # first log: 40 frames
    figure = report.section_figure(exp.sections[0].panels or list(report.DEFAULT_PANELS), runs)
    assert figure[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_passes_on_its_own_baseline_and_fails_on_a_planted_regression(study, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert report.main([str(study), "--save-baseline", str(baseline), "--tolerance", "0.5"]) == 0
    checks = json.loads(baseline.read_text())["checks"]
    assert {c["run"] for c in checks} == {"teacher", "sep", "shr"}
    assert report.main([str(study), "--check", str(baseline)]) == 0
    capsys.readouterr()
    checks[1]["value"] += checks[1]["tolerance"] + 10  # the run now looks much worse than its baseline
    baseline.write_text(json.dumps({"checks": checks}))
    assert report.main([str(study), "--check", str(baseline)]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert sum(line.startswith("ok ") for line in lines) == 2
    assert sum(line.startswith("REGRESSED ") for line in lines) == 1
    one_error_line(out.err, "1 of 3 checks failed")


def test_an_interrupted_launch_keeps_the_records_of_finished_runs(tmp_path, capsys):
    path = experiment(tmp_path, setup=[], defaults={"command": "train-policy", "args": {"steps": 40, "set": dict(TINY)}},
                      run_sets=[{"name": "ok", "color": "#000000", "runs": [{"name": "good"}]},
                                {"name": "bad", "color": "#ffffff", "runs": [{"name": "broken", "args": {
                                    "algo": "bc", "teacher": str(tmp_path / "missing.pt")}}]}],
                      sections=[])
    assert launch.main([str(path)]) == 2
    one_error_line(capsys.readouterr().err, "1 run(s) failed: broken (exit 2")
    exp = load_experiment(path)
    assert launch.done_record(exp, "good").exists() and not launch.done_record(exp, "broken").exists()


def test_a_bad_run_is_refused_before_any_run_starts(tmp_path, capsys):
    path = experiment(tmp_path, run_sets=[{"name": "bad", "color": "#ffffff", "runs": [
        {"name": "broken", "args": {"set": {"lr": -1}}}]}], sections=[])
    assert launch.main([str(path)]) == 2
    one_error_line(capsys.readouterr().err, "run 'broken': TrainPolicyConfig: need lr > 0")
    assert not (tmp_path / "runs").exists()  # not even the setup run started


def _seeded(tmp_path: Path, **changes) -> Path:
    sets = [{"name": "separate", "color": "#1f77b4", "runs": [{"name": "sep"}]},
            {"name": "shared", "color": "#d62728", "runs": [{"name": "shr", "args": {"shared-embeddings": True}}]}]
    defaults = {"command": "train-policy", "args": {"steps": 80, "set": dict(TINY)}, "seeds": [0, 1, 2]}
    return experiment(tmp_path, run_sets=changes.pop("run_sets", sets), defaults=changes.pop("defaults", defaults),
                      **changes)


def test_seeds_make_one_named_run_per_seed_launched_seed_by_seed(tmp_path, capsys):
    exp = load_experiment(_seeded(tmp_path))
    assert [r.name for r in exp.run_sets[0].runs] == ["sep-seed0", "sep-seed1", "sep-seed2"]
    assert [r.name for r, s in exp.launch_order() if s] == [
        "sep-seed0", "shr-seed0", "sep-seed1", "shr-seed1", "sep-seed2", "shr-seed2"]
    argv = command_line(exp, exp.run_sets[1].runs[2], in_set=True)
    assert argv[argv.index("--seed") + 1] == "2" and "--shared-embeddings" in argv
    assert argv[-1] == str(tmp_path / "runs" / "shr-seed2")
    assert launch.main([str(_seeded(tmp_path)), "--dry-run", "--only", "shr"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit("/", 1)[-1] for line in lines] == ["shr-seed0", "shr-seed1", "shr-seed2"]


def test_a_run_sets_seeds_override_the_defaults_and_train_vision_gets_a_config_seed(tmp_path):
    path = _seeded(tmp_path, run_sets=[
        {"name": "a", "color": "#000000", "seeds": 2, "runs": [{"name": "x"}]},
        {"name": "v", "color": "#ffffff", "seeds": [5], "runs": [{"name": "vis", "command": "train-vision",
                                                                 "args": {"data": "d", "steps": 10}}]}],
                   sections=[])
    exp = load_experiment(path)
    assert [r.name for r in exp.run_sets[0].runs] == ["x-seed0", "x-seed1"]
    argv = command_line(exp, exp.run_sets[1].runs[0], in_set=True)
    assert "seed=5" in argv and "--seed" not in argv


@pytest.mark.parametrize("change, fragment", [
    ({"defaults": {"command": "train-policy", "seeds": 0}}, "seeds must be a positive count"),
    ({"defaults": {"command": "train-policy", "seeds": [1, 1]}}, "seeds must be distinct non-negative"),
    ({"run_sets": [{"name": "a", "color": "#000000", "runs": [{"name": "x", "args": {"seed": 3}}]}]},
     "run 'x' sets its own seed, but its run set 'a' has seeds [0, 1, 2]"),
])
def test_bad_seeds_are_one_clear_line(tmp_path, capsys, change, fragment):
    path = _seeded(tmp_path, sections=[], **change)
    assert launch.main([str(path), "--dry-run"]) == 2
    one_error_line(capsys.readouterr().err, fragment)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs/experiments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_committed_experiment_files_parse_as_their_commands_configs(path, monkeypatch):
    """Every training run of a committed experiment resolves into a command line that the command itself parses
    into its config (no files written): a typo in a key or a value fails here, not an hour into a study."""
    from dexvision.policy import train as policy_train  # noqa: PLC0415
    from dexvision.vision import train as vision_train  # noqa: PLC0415

    monkeypatch.chdir(path.parents[2])  # config paths in experiment files are relative to the repository
    exp = load_experiment(path)
    commands = {"train-policy": policy_train, "train-vision": vision_train}
    runs = [(run, True) for run_set in exp.run_sets for run in run_set.runs] + [(run, False) for run in exp.setup]
    parsed = 0
    for run, in_set in runs:
        argv = command_line(exp, run, in_set)
        if argv[0] in commands:
            module = commands[argv[0]]
            cfg, _ = module.config_from_args(module.build_parser().parse_args(argv[1:]))
            assert cfg.out == str(exp.run_dir(run.name))
            parsed += 1
    assert parsed >= len(exp.run_sets)
