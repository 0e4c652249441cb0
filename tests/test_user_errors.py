"""Every mistake a user can make with the ten commands: one `error:` line, exit 2, no traceback, nothing lost.

The table gives each mistake as a command line; each row runs the command in this process (as the
commands' own tests do) and checks the exit code, that stderr holds exactly one line besides progress
bars, that it says what the row expects, that no file of the shared inputs (dataset, checkpoints,
studies) changed or went missing, and that the row's own directory got nothing written into it.
The readers of killed runs' files and the outputs that fail at the end of the work have their own
tests below.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, one_error_line, vision_checkpoint
from dexvision.datasets import render_shards
from test_experiment import experiment
from test_report_seeds import seeded_study, write_run

MODULES = {"render-sheet": "dexvision.render.sheet", "render-shards": "dexvision.datasets.render_shards",
           "verify-shards": "dexvision.datasets.verify", "train-vision": "dexvision.vision.train",
           "evaluate-vision": "dexvision.vision.evaluate", "train-policy": "dexvision.policy.train",
           "evaluate-policy": "dexvision.policy.evaluate", "plot-runs": "dexvision.track.plots",
           "run-experiment": "dexvision.track.launch", "report": "dexvision.track.report"}
DS = ["--n", "10", "--shard-size", "5", "--task", "gimbal-block", "--image-size", "16", "--workers", "1"]
TP = ["--out", "{tmp}/run", *TINY]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    """The inputs the rows share: two tiny datasets (3 and 2 cameras), a vision checkpoint, a file, a binary
    file, a directory named like a file, a tracked run, a study and a study whose files a killed run cut."""
    root = tmp_path_factory.mktemp("world")
    data, two = root / "data", root / "two-cams"
    assert render_shards.main(["--n", "16", "--shard-size", "8", "--task", "gimbal-block", "--image-size", "16",
                               "--workers", "1", "--out", str(data)]) == 0
    assert render_shards.main(["--n", "8", "--shard-size", "8", "--task", "gimbal-block", "--image-size", "16",
                               "--cameras", "2", "--workers", "1", "--out", str(two)]) == 0
    vision_checkpoint(root / "vision.pt", size=16)
    (root / "afile").write_text("not a directory\n")
    (root / "binary.yaml").write_bytes(bytes(range(256)))
    (root / "empty.yaml").write_text("# nothing but a comment\n")
    (root / "list.yaml").write_text("[]\n")
    (root / "taken.json").mkdir()
    (root / "taken.png").mkdir()
    write_run(root / "run", hit=300)
    for name in ("study", "cut", "done"):
        (root / name).mkdir()
    study = seeded_study(root / "study")
    cut = seeded_study(root / "cut")
    metrics = root / "cut" / "runs" / "sep-seed0" / "metrics.json"
    metrics.write_text(metrics.read_text()[:25])  # killed while writing it
    done = seeded_study(root / "done")
    (root / "done" / "runs" / "logs").mkdir()
    (root / "done" / "runs" / "logs" / "sep-seed0.done.json").write_text('{"argv": ["train-pol')
    baselines = {"bl_empty": {"checks": []}, "bl_nometric": {"checks": [{"run": "sep", "value": 3}]},
                 "bl_checks": {"checks": "all"}, "bl_value": {"checks": [{"run": "sep", "metric": "m", "value": "x"}]},
                 "bl_entry": {"checks": [7]}}
    for name, content in baselines.items():
        (root / f"{name}.json").write_text(json.dumps(content))
    (root / "empty").mkdir()
    (root / "fresh-run").mkdir()
    (root / "fresh-run" / "metrics.jsonl").write_text("")
    unrun = experiment(root / "empty", setup=[], run_sets=[{"name": "a", "color": "#1f77b4", "runs": [{"name": "a1"}]}], sections=[],
                       defaults={"command": "train-policy", "args": {"steps": 80}})
    return {**{name: str(root / f"{name}.json") for name in baselines}, "unrun": str(unrun),
            "data": str(data), "two": str(two), "vckpt": str(root / "vision.pt"), "file": str(root / "afile"),
            "binary": str(root / "binary.yaml"), "empty_yaml": str(root / "empty.yaml"),
            "list_yaml": str(root / "list.yaml"), "taken": str(root / "taken.json"), "run": str(root / "run"),
            "study": str(study), "cut": str(cut), "done": str(done), "root": str(root)}


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


ROWS = [
    # -- render-sheet
    ("render-sheet", ["--config", "{empty_yaml}", "--out", "{tmp}/s.png"], ["empty.yaml is empty"]),
    ("render-sheet", ["--seed", "-2", "--out", "{tmp}/s.png"], ["--seed must be within [0, 4294967295], got -2"]),
    ("render-sheet", ["--samples", "abc"], ["--samples: expected an integer, got 'abc'"]),
    ("render-sheet", ["--image-size", "4"], ["image_size must be within [8, 4096]"]),
    ("render-sheet", ["--out", "{file}/sheet.png"], ["--out", "afile is a file"]),
    ("render-sheet", ["--out", "{tmp}/sheet.jpg"], ["--out must name a .png file"]),
    ("render-sheet", ["--cameras", "2", "--set", "render.randomization.cameras.count=3"],
     ["--set render.randomization.cameras.count=3 disagrees with --cameras 2"]),
    ("render-sheet", ["--no-randomization", "--set", "render.randomization.enabled=true"],
     ["disagrees with --no-randomization"]),
    ("render-sheet", ["--config", "{binary}"], ["is not text"]),
    ("render-sheet", ["--config", "{tmp}"], ["is a directory, not a YAML file"]),
    ("render-sheet", ["--first-index", "-1"], ["--first-index must be >= 0"]),
    ("render-sheet", ["--task", "nope"], ["unknown task 'nope'"]),
    ("render-sheet", ["--bogus"], ["unknown argument(s) --bogus", "render-sheet --help"]),
    # -- render-shards
    ("render-shards", [*DS, "--seed", "-1", "--out", "{tmp}/ds"], ["--seed must be within [0, 4294967295], got -1"]),
    ("render-shards", [*DS, "--seed", "18446744073709551616", "--out", "{tmp}/ds"], ["--seed must be within [0, 4294967295], got 18446744073709551616"]),
    ("render-shards", [], ["missing --n, --out"]),
    ("render-shards", ["--n", "abc", "--out", "{tmp}/ds"], ["--n must be a positive count"]),
    ("render-shards", [*DS, "--out", "{file}"], ["--out", "is a file; name a directory"]),
    ("render-shards", [*DS, "--out", "{file}/ds"], ["cannot write to", "afile is a file, not a directory"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--preview", "{file}/p.png"], ["--preview", "is a file"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--preview", "{root}/taken.png"], ["--preview", "is a directory"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--workers", "-2"], ["--workers must be >= 1"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--shard-size", "0"], ["--shard-size must be >= 1"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--format", "bmp"], ["--format: expected one of jpg, png"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--jpeg-quality", "100"], ["--jpeg-quality must be within"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--shards", "5:9"], ["outside the dataset's shards"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--ray", "127.0.0.1:1"], ["cannot reach Ray", "ray start"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--ray", "127.0.0.1:x"], ["--ray", "HOST:PORT"]),
    ("render-shards", [*DS, "--out", "{tmp}/ds", "--set", "render.image_size=2"], ["disagrees with --image-size"]),
    ("render-shards", ["--n", "16", "--shard-size", "8", "--task", "gimbal-block", "--image-size", "32",
                       "--workers", "1", "--out", "{data}"], ["{data}"]),
    # -- verify-shards
    ("verify-shards", ["{tmp}/nothing"], ["not a dexvision dataset"]),
    ("verify-shards", ["{data}", "--workers", "0"], ["--workers must be >= 1"]),
    ("verify-shards", [], ["missing dir"]),
    ("verify-shards", ["{data}", "extra"], ["unknown argument(s) extra"]),
    # -- train-vision
    ("train-vision", ["--data", "{data}", "--batch-size", "64", "--out", "{tmp}/r"],
     ["--batch-size 64 is larger than the 8 training samples of"]),
    ("train-vision", ["--data", "{data}", "--config", "{list_yaml}", "--out", "{tmp}/r"], ["not a list"]),
    ("train-vision", ["--data", "{data}", "--set", "seed=-1", "--out", "{tmp}/r"], ["seed -1 goes past its valid bounds [0, 4294967295]"]),
    ("train-vision", ["--lr", "abc"], ["--lr: expected a number, got 'abc'"]),
    ("train-vision", ["--data", "{data}", "--image-size", "4", "--out", "{tmp}/r"], ["image_size 4", "[8, 1024]"]),
    ("train-vision", ["--data", "{data}", "--image-size", "100000", "--out", "{tmp}/r"], ["image_size 100000"]),
    ("train-vision", ["--data", "{data}", "--num-workers", "-1", "--out", "{tmp}/r"], ["num_workers -1"]),
    ("train-vision", ["--data", "{data}", "--time-limit-min", "-1", "--out", "{tmp}/r"], ["time_limit_min -1"]),
    ("train-vision", ["--data", "{data}", "--batch-size", "0", "--out", "{tmp}/r"], ["batch_size must be >= 1"]),
    ("train-vision", ["--data", "{data}", "--batch-size", "8", "--set", "batch_size=16"],
     ["--set batch_size=16 disagrees with --batch-size 8"]),
    ("train-vision", ["--data", "{data}", "--out", "{file}"], ["--out", "is a file; name a directory"]),
    ("train-vision", ["--data", "{data}", "--out", "{file}/run"], ["cannot write to", "afile is a file, not a directory"]),
    ("train-vision", [], ["--data is required"]),
    ("train-vision", ["--data", "{data}", "--set", "head=heatmaps", "--out", "{tmp}/r"],
     ["head must be one of direct, keypoints, got 'heatmaps'"]),
    ("train-vision", ["--data", "{data}", "--val-data", "{two}", "--out", "{tmp}/r"],
     ["--val-data", "2 camera(s) per sample", "has 3"]),
    ("train-vision", ["--data", "{data}", "--val-data", "{two}", "--follow", "--out", "{tmp}/r"],
     ["--val-data", "2 camera(s) per sample", "has 3"]),
    ("train-vision", ["--data", "{data}", "--resume", "--out", "{tmp}/r"], ["--resume: no checkpoint"]),
    ("train-vision", ["--data", "{tmp}/none", "--out", "{tmp}/r"], ["not a dexvision dataset"]),
    ("train-vision", ["--data", "{data}", "--config", "{binary}"], ["is not text"]),
    # -- evaluate-vision
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--batch-size", "0"],
     ["--batch-size must be >= 1, got 0"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--num-workers", "-1"],
     ["--num-workers must be >= 0"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--max-samples", "-1"],
     ["--max-samples must be >= 0"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--out", "{file}/e.json"],
     ["--out", "afile is a file"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--out", "{taken}"], ["is a directory"]),
    ("evaluate-vision", ["--checkpoint", "{tmp}/none.pt", "--data", "{data}"], ["checkpoint not found"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{two}"], ["2 camera(s) per sample"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}"], ["missing --data"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--camera-error", "5"],
     ["--camera-error: expected MM,DEG like 5,1"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--camera-error", "5,-1"],
     ["two non-negative numbers"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--camera-error", "5,1"],
     ["holds a direct head, which does not use the calibration"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--checkpoint", "{vckpt}", "--data", "{data}", "--data", "{data}"],
     ["several --checkpoint are compared on one --data set"]),
    ("evaluate-vision", ["--checkpoint", "{binary}", "--data", "{data}"], ["is not a readable torch checkpoint"]),
    ("evaluate-vision", ["--checkpoint", "{vckpt}", "--data", "{data}", "--data", "{tmp}/typo"], ["no dataset at"]),
    # -- train-policy
    ("train-policy", ["--image-size", "32", *TP], ["--image-size sets the images of --obs pixels; this run observes state"]),
    ("train-policy", ["--config", "{empty_yaml}", *TP], ["empty.yaml is empty: a config holds a mapping"]),
    ("train-policy", ["--config", "{list_yaml}", *TP], ["list.yaml must hold a mapping at the top level, not a list"]),
    ("evaluate-policy", ["--planner", "{list_yaml}"], ["list.yaml must hold a mapping at the top level, not a list"]),
    ("evaluate-policy", ["--planner", "{empty_yaml}"], ["empty.yaml is empty"]),
    ("train-policy", ["--seed", "-1", *TP], ["--seed must be within [0, 4294967295], got -1"]),
    ("train-policy", ["--seed", "99999999999999999999", *TP], ["--seed must be within [0, 4294967295], got 99999999999999999999"]),
    ("train-policy", ["--set", "seed=-5", *TP], ["seed -5 goes past its valid bounds [0, 4294967295]"]),
    ("train-policy", ["--num-envs", "x"], ["--num-envs: expected an integer, got 'x'"]),
    ("train-policy", ["--lr", "1e-3"], ["unknown argument(s) --lr 1e-3"]),
    ("train-policy", [*TP, "--image-size", "100000"], ["image_size 100000 goes past its valid bounds [8, 1024]"]),
    ("train-policy", [*TP, "--obs", "pixels", "--image-size", "4"], ["image_size 4"]),
    ("train-policy", [*TP, "--task", "nope"], ["unknown task 'nope'"]),
    ("train-policy", [*TP, "--set", "time_limit_min=-1"], ["time_limit_min -1"]),
    ("train-policy", [*TP, "--set", "eval_every_min=-2"], ["eval_every_min -2"]),
    ("train-policy", [*TP, "--image-size", "64", "--set", "image_size=32"],
     ["--set image_size=32 disagrees with --image-size 64"]),
    ("train-policy", [*TP, "--physics", "fast", "--set", "env.physics=reference"], ["disagrees with --physics"]),
    ("train-policy", [*TP, "--steps", "2M", "--set", "steps=40"], ["--set steps=40 disagrees with --steps"]),
    ("train-policy", [*TP, "--config", "{binary}"], ["is not text"]),
    ("train-policy", ["--out", "{file}/run", *TINY], ["--out: cannot write to", "afile is a file"]),
    ("train-policy", ["--out", "{file}", *TINY], ["is a file; name a directory"]),
    ("train-policy", [*TP, "--env-workers", "-3"], ["env_workers -3"]),
    ("train-policy", [*TP, "--set", "render_workers=-2"], ["render_workers -2"]),
    ("train-policy", [*TP, "--steps", "0"], ["--steps must be at least 1"]),
    ("train-policy", [*TP, "--algo", "bc"], ["needs --teacher"]),
    ("train-policy", [*TP, "--algo", "bc", "--teacher", "{tmp}/none.pt"], ["checkpoint not found"]),
    ("train-policy", [*TP, "--algo", "bc", "--teacher", "{vckpt}"], ["not a dexvision-policy checkpoint"]),
    ("train-policy", [*TP, "--teacher", "{tmp}/t.pt"], ["--teacher is used by --algo bc and bc+ppo only, not ppo"]),
    ("train-policy", [*TP, "--init-vision", "{vckpt}"], ["--init-vision starts a pixel policy's", "needs --obs pixels"]),
    ("train-policy", [*TP, "--set", "bc_steps=100"], ["bc_steps is used by --algo bc+ppo only, not ppo"]),
    ("train-policy", [*TP, "--set", "sac.batch_size=64"], ["sac.batch_size is used by --algo sac only, not ppo"]),
    ("train-policy", ["--out", "{tmp}/run", "--task", "gimbal-block", "--obs", "pixels", "--num-envs", "4096",
                      "--image-size", "1024", "--set", "rollout=400", "--set", "render_workers=0"],
     ["a rollout of 400 steps x 4096 environments x 3 cameras at 1024 px holds", "lower --num-envs"]),
    # -- evaluate-policy
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--seed", "-1"], ["--seed must be within [0, 4294967295], got -1"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/none.pt"], ["checkpoint not found"]),
    ("evaluate-policy", ["--checkpoint", "{root}"], ["is a directory with no checkpoint.pt in it"]),
    ("evaluate-policy", ["--checkpoint", "{root}/run"], ["is a directory with no checkpoint.pt in it"]),
    ("evaluate-policy", ["--checkpoint", "{vckpt}"], ["is a dexvision-vision checkpoint, not a dexvision-policy"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--episodes", "0"], ["--episodes must be >= 1, got 0"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--episodes", "two"], ["--episodes: expected an integer"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--render-workers", "-2"], ["--render-workers must be >= -1"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--env-workers", "-2"], ["--env-workers must be >= -1"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--out", "{file}/e.json"], ["afile is a file"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--out", "{taken}"], ["is a directory; name a file"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--goal-max-angle", "4"], ["--goal-max-angle must be in"]),
    ("evaluate-policy", ["--checkpoint", "{tmp}/x.pt", "--physics", "slow"], ["unknown physics profile 'slow'"]),
    # -- plot-runs
    ("plot-runs", ["{run}", "--out", "{tmp}/c.jpg"], ["--out must name a .png file"]),
    ("plot-runs", ["{root}/fresh-run", "--out", "{tmp}/c.png"], ["metrics.jsonl holds no metrics yet"]),
    ("plot-runs", ["{run}", "--out", "{file}/c.png"], ["afile is a file"]),
    ("plot-runs", ["{run}", "--metrics", "nope", "--out", "{tmp}/c.png"],
     ["--metrics nope: no run logged it", "charts/median_successes"]),
    ("plot-runs", ["{tmp}", "--out", "{tmp}/c.png"], ["has no metrics.jsonl"]),
    ("plot-runs", ["{run}", "--x", "hours"], ["--x: expected one of steps, minutes, got 'hours'"]),
    ("plot-runs", [], ["missing runs"]),
    # -- run-experiment
    ("run-experiment", ["{tmp}/none.yaml"], ["not found"]),
    ("run-experiment", ["{study}", "--cpus-per-run", "0"], ["--cpus-per-run must be >= 0.01, got 0"]),
    ("run-experiment", ["{study}", "--gpus-per-run", "-1"], ["--gpus-per-run must be >= 0"]),
    ("run-experiment", ["{study}", "--cpus-per-run", "1"], ["--cpus-per-run sets what each Ray task reserves", "--ray"]),
    ("run-experiment", ["{study}", "--gpus-per-run", "1", "--dry-run"], ["--gpus-per-run", "needs --ray"]),
    ("run-experiment", ["{study}", "--only", "nobody"], ["--only: no run named 'nobody'"]),
    ("run-experiment", ["{study}", "--use", "bad"], ["--use takes NAME=DIR"]),
    ("run-experiment", ["{done}", "--dry-run"], ["done-record", "sep-seed0.done.json", "is cut short"]),
    ("run-experiment", ["{study}", "--ray", "127.0.0.1:1"], ["cannot reach Ray at '127.0.0.1:1'"]),
    ("run-experiment", ["{binary}"], ["is not text"]),
    # -- report
    ("report", ["{study}"], ["nothing to do"]),
    ("report", ["{study}", "--out", "{tmp}/r.pdf"], ["--out must name an .html file"]),
    ("report", ["{study}", "--out", "{file}/r.html"], ["--out", "afile is a file"]),
    ("report", ["{study}", "--save-baseline", "{file}/b.json"], ["--save-baseline", "afile is a file"]),
    ("report", ["{study}", "--save-baseline", "{tmp}/b.json", "--tolerance", "-0.1"], ["--tolerance must be >= 0"]),
    ("report", ["{study}", "--tolerance", "abc"], ["--tolerance: expected a number, got 'abc'"]),
    ("report", ["{study}", "--check", "{tmp}/none.json"], ["baseline file not found"]),
    ("report", ["{study}", "--check", "{binary}"], ["is not a baseline file"]),
    ("report", ["{study}", "--check", "{bl_empty}"], ["holds 0 checks: it checks nothing"]),
    ("report", ["{study}", "--check", "{bl_nometric}"], ["check 1 of 1 has no 'metric'"]),
    ("report", ["{study}", "--check", "{bl_checks}"], ["a JSON object with a 'checks' list"]),
    ("report", ["{study}", "--check", "{bl_value}"], ["check 1 of 1 (m): 'value' must be a number, got \"x\""]),
    ("report", ["{study}", "--check", "{bl_entry}"], ["check 1 of 1 is not an object"]),
    ("report", ["{unrun}", "--save-baseline", "{tmp}/b.json"], ["a baseline of 0 checks would check nothing"]),
    ("report", ["{study}", "--check", "{bl_empty}", "--tolerance", "0.3"], ["--tolerance", "needs --save-baseline"]),
    ("report", ["{cut}", "--out", "{tmp}/r.html"], ["run summary", "sep-seed0/metrics.json", "is cut short"]),
]


def _fill(text: str, world: dict, tmp: Path) -> str:
    return text.format(tmp=tmp, **world)


@pytest.mark.parametrize("command, argv, fragments", ROWS, ids=[f"{i}-{r[0]}" for i, r in enumerate(ROWS)])
def test_a_mistake_ends_in_one_line_and_loses_nothing(command, argv, fragments, world, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default output (runs/...) would land here, and be seen
    before = _snapshot(Path(world["root"]))
    main = importlib.import_module(MODULES[command]).main
    code = main([_fill(a, world, tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    one_error_line(err, *[_fill(f, world, tmp_path) for f in fragments])
    after = _snapshot(Path(world["root"]))
    assert {p: after.get(p) for p in before} == before  # every input is still there, unchanged
    assert not list(tmp_path.iterdir())  # and the mistake wrote nothing


def test_the_table_covers_every_command_with_60_rows():
    assert len(ROWS) >= 60
    assert {command for command, _, _ in ROWS} == set(MODULES)


# -- GL platforms: checked as the command starts, before MuJoCo loads one --------------------------
@pytest.mark.parametrize("env, fragments", [
    ({"PYOPENGL_PLATFORM": "osmesa", "MUJOCO_GL": "osmesa"}, ["osmesa: not supported", "to egl"]),
    ({"PYOPENGL_PLATFORM": "glx", "MUJOCO_GL": None}, ["PYOPENGL_PLATFORM=glx: not supported",
                                                       "set PYOPENGL_PLATFORM to egl"]),
    ({"PYOPENGL_PLATFORM": "egl", "MUJOCO_GL": "osmesa"}, ["disagree", "set both to egl"]),
])
def test_a_gl_platform_other_than_egl_is_refused_in_one_line(env, fragments, tmp_path):
    res = subprocess.run([sys.executable, "-m", "dexvision.render.sheet", "--out", str(tmp_path / "s.png")],
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in {**os.environ, **env}.items() if v is not None})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    one_error_line(res.stderr, *fragments)
    assert not list(tmp_path.iterdir())


# -- readers that survive a killed run ------------------------------------------------------------
def _cut_jsonl(run_dir: Path) -> None:
    """What a run killed in the middle of a log line leaves: the line half written."""
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 1100, "time": 2100.0, "charts/fra')


def test_metrics_with_a_cut_last_line_are_read_up_to_it_with_one_notice(tmp_path, caplog):
    from dexvision.track.run import read_metrics

    write_run(tmp_path / "run", hit=300)
    _cut_jsonl(tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(100, 1001, 100))
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and "line 11 is cut" in notices[0] and "read the 10 line(s) before it" in notices[0]


def test_plot_runs_and_report_read_a_killed_runs_metrics(tmp_path, caplog, capsys):
    from dexvision.track import plots, report

    write_run(tmp_path / "run", hit=300)
    _cut_jsonl(tmp_path / "run")
    assert plots.main([str(tmp_path / "run"), "--metrics", "charts/median_successes", "--out",
                       str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0
    (tmp_path / "study").mkdir()
    study = seeded_study(tmp_path / "study")
    _cut_jsonl(tmp_path / "study" / "runs" / "shr-seed1")
    assert report.main([str(study), "--out", str(tmp_path / "r.html")]) == 0
    assert "4 of 4 runs finished" in capsys.readouterr().out
    assert any("shr-seed1/metrics.jsonl: line 11 is cut" in r.getMessage() for r in caplog.records)


def test_a_resumed_run_keeps_its_lines_before_a_cut_one(tmp_path):
    from dexvision.track.run import Run, read_metrics

    write_run(tmp_path / "run", hit=300)
    _cut_jsonl(tmp_path / "run")
    run = Run(tmp_path / "run", "run", {}, resume=True, resume_step=500)
    run.log(600, {"charts/frames": 600.0}, with_system=False)
    run.close()
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [100, 200, 300, 400, 500, 600]


@pytest.mark.parametrize("text, how", [("", "is empty"), ('{"name": "abc-run", "git_', "is cut short")])
def test_a_cut_run_record_is_named_in_one_line(text, how, tmp_path, capsys):
    from dexvision.track import plots

    write_run(tmp_path / "run", hit=300)
    (tmp_path / "run" / "run.json").write_text(text)
    assert plots.main([str(tmp_path / "run"), "--out", str(tmp_path / "c.png")]) == 2
    one_error_line(capsys.readouterr().err, f"the run record {tmp_path / 'run' / 'run.json'} {how}")
    assert not (tmp_path / "c.png").exists()


# -- outputs that fail at the end of the work keep the result --------------------------------------
def _break(directory: Path) -> None:
    """The output's directory is gone while the work ran, and a file stands in its place."""
    directory.rmdir()
    directory.write_text("in the way\n")


def _kept(err: str, out: Path) -> Path:
    line = one_error_line(err, f"cannot write {out}", "is kept in ")
    return Path(line.rsplit("is kept in ", 1)[1])


def test_evaluate_policy_prints_and_keeps_a_summary_it_cannot_write(tmp_path, monkeypatch, capsys):
    from dexvision.policy import evaluate as evaluate_cli

    out_dir = tmp_path / "evals"
    out_dir.mkdir()
    summary = {"task": "gimbal-block", "obs": "state", "physics": "fast", "episodes": 2, "mean_successes": 1.5,
               "median_successes": 1.5, "min_successes": 1, "max_successes": 2, "drop_rate": 0.0}

    def evaluated(*args, **kwargs):
        _break(out_dir)
        return dict(summary)

    monkeypatch.setattr(evaluate_cli, "evaluate_checkpoint", evaluated)
    out = out_dir / "eval.json"
    assert evaluate_cli.main(["--checkpoint", "any.pt", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "episodes: successes per episode mean 1.5" in captured.out
    assert json.loads(_kept(captured.err, out).read_text()) == summary


def test_evaluate_vision_prints_and_keeps_an_evaluation_it_cannot_write(world, tmp_path, monkeypatch, capsys):
    from dexvision.vision import evaluate as evaluate_cli

    out_dir = tmp_path / "evals"
    out_dir.mkdir()
    metrics = {f"{name}/{stat}": 1.0 for name in ("position_mm", "orientation_deg") for stat in ("mean", "median",
                                                                                                 "p90")}

    def evaluated(*args, **kwargs):
        _break(out_dir)
        return {**metrics, "samples": 16}

    monkeypatch.setattr(evaluate_cli, "evaluate", evaluated)
    out = out_dir / "eval.json"
    assert evaluate_cli.main(["--checkpoint", world["vckpt"], "--data", world["data"], "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "position_mm" in captured.out and "orientation_deg" in captured.out
    assert json.loads(_kept(captured.err, out).read_text())["metrics"]["samples"] == 16


def test_write_output_keeps_a_result_beside_the_temporary_directory(tmp_path):
    from dexvision.errors import UserError
    from dexvision.files import write_text_output

    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError) as e:
        write_text_output(tmp_path / "afile" / "b.json", '{"checks": []}\n', "baseline")
    assert "the baseline is kept in" in str(e.value)
    assert Path(str(e.value).rsplit("kept in ", 1)[1]).read_text() == '{"checks": []}\n'


@pytest.mark.parametrize("failure", [
    OSError(28, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file data/12: "
                 "file write failed"),
], ids=["oserror", "torch-writer"])
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_previous(failure, world, tmp_path,
                                                                                  monkeypatch, capsys):
    import torch

    from dexvision.vision import train as train_cli
    from dexvision.vision.checkpoint import load_checkpoint

    saves = []
    real_save = torch.save

    def save(obj, path):
        saves.append(path)
        if len(saves) == 2:  # the disk is full by the second checkpoint: half a file, then the error
            Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise failure
        real_save(obj, path)

    monkeypatch.setattr(torch, "save", save)  # (files imports torch where it saves)
    run = tmp_path / "run"
    code = train_cli.main(["--data", world["data"], "--out", str(run), "--steps", "4", "--batch-size", "4",
                           "--num-workers", "0", "--set", "checkpoint_every=2", "--set", "val_every=100",
                           "--set", "shuffle_buffer=0", "--set", "warmup_steps=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    one_error_line(err, f"cannot save the checkpoint {run / 'checkpoint.pt'}",
                   f"the previous checkpoint {run / 'checkpoint.pt'} is kept")
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
    assert not list(run.glob(".checkpoint.pt.tmp-*"))


def test_a_full_disk_while_recording_a_finished_run_leaves_no_cut_record(tmp_path, monkeypatch):
    import errno
    import types

    from dexvision.errors import UserError
    from dexvision.track import launch

    exp = types.SimpleNamespace(runs_dir=str(tmp_path / "runs"), run_dir=lambda name: tmp_path / "runs" / name)
    (tmp_path / "runs" / "logs").mkdir(parents=True)
    real_write = Path.write_text

    def full(self, text, *args, **kwargs):  # half the record fits, then the disk is full
        real_write(self, text[: len(text) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(UserError, match=r"cannot record run 'sep-seed0' as done .*No space left on device.*"
                                        r"the run's outputs are in"):
        launch._record(exp, "sep-seed0", ["train-policy", "--out", "x"], 0, 1.0, "local")
    monkeypatch.undo()
    assert list((tmp_path / "runs" / "logs").iterdir()) == []  # no record, cut or whole: the run resumes next time
    launch._record(exp, "sep-seed0", ["train-policy", "--out", "x", "--resume"], 0, 1.0, "local")
    assert json.loads(launch.done_record(exp, "sep-seed0").read_text())["argv"] == ["train-policy", "--out", "x"]


def test_a_ray_head_that_never_answers_is_given_up_on_in_seconds(monkeypatch):
    import socket

    from dexvision import distributed
    from dexvision.errors import UserError

    calls = []

    def silent(address, timeout=None):  # a head whose packets are dropped: the connect times out
        calls.append((address, timeout))
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    with pytest.raises(UserError, match=r"cannot reach Ray at '10.0.0.7:6379': no answer from 10.0.0.7:6379 in 5 s"):
        distributed.check_ray_reachable("10.0.0.7:6379")
    assert calls == [(("10.0.0.7", 6379), distributed.RAY_CONNECT_TIMEOUT_S)] and distributed.RAY_CONNECT_TIMEOUT_S <= 10


def test_a_pixel_rollout_is_held_to_the_memory_available():
    import dataclasses

    from dexvision.errors import UserError
    from dexvision.policy.config import TrainPolicyConfig
    from dexvision.policy.train import check_rollout_memory

    cfg = TrainPolicyConfig(task="gimbal-block", obs="pixels", num_envs=16, rollout=40, image_size=64)
    images = 40 * 16 * 3 * 3 * 64 * 64  # 22.5 MiB of uint8 images
    check_rollout_memory(cfg, cameras=3, available=2 * images)  # fits exactly
    with pytest.raises(UserError, match=r"holds 22 MiB of images \(45 MiB while stacked\), more than the 22 MiB available"):
        check_rollout_memory(cfg, cameras=3, available=images)
    with pytest.raises(UserError):
        check_rollout_memory(cfg, cameras=3, available=2 * images - 1)
    check_rollout_memory(dataclasses.replace(cfg, obs="state"), cameras=3, available=0)  # no images kept


# -- Ctrl-C: exit 130 everywhere, with the line that says what was kept ----------------------------
def test_ctrl_c_in_render_shards_exits_130_and_keeps_finished_shards(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(render_shards, "run_local", interrupted)
    assert render_shards.main([*DS, "--out", str(tmp_path / "ds")]) == 130
    one_error_line(capsys.readouterr().err, "interrupted; finished shards are kept")
    assert (tmp_path / "ds" / "dataset.json").is_file()  # the manifest the same command resumes from


def test_ctrl_c_in_a_trainer_exits_130(tmp_path, monkeypatch, capsys):
    from dexvision.policy import train  # noqa: PLC0415

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train", interrupted)
    assert train.main(["--out", str(tmp_path / "run"), *TP[2:]]) == 130
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err


def test_a_run_directory_where_a_checkpoint_is_expected_is_its_checkpoint(world, tmp_path):
    from dexvision.files import load_checkpoint  # noqa: PLC0415

    run = tmp_path / "run"
    run.mkdir()
    vckpt = Path(world["vckpt"])
    (run / "checkpoint.pt").write_bytes(vckpt.read_bytes())
    assert load_checkpoint(run, "dexvision-vision").keys() == load_checkpoint(vckpt, "dexvision-vision").keys()


def test_a_reading_error_is_told_in_words_not_a_python_repr(tmp_path):
    from dexvision.vision.evaluation import read_error_cause  # noqa: PLC0415

    with open(tmp_path / "shard-000000.tar", "wb") as stream:
        e = ValueError("unexpected end of data", stream, str(tmp_path / "shard-000000.tar"))
        cause = read_error_cause(e)
        nested = read_error_cause(ValueError(("bad header", stream, "data/shard-000001.tar")))
    assert cause == f"unexpected end of data; {tmp_path / 'shard-000000.tar'}"
    assert nested == "bad header; data/shard-000001.tar"
    worker = RuntimeError("Caught ValueError in DataLoader worker process 0.\nTraceback...\nValueError: "
                          "truncated <_io.BufferedReader name='data/s.tar'>")
    assert read_error_cause(worker) == "ValueError: truncated data/s.tar"
    for text in (cause, nested):
        assert "<" not in text and "(" not in text


@pytest.mark.parametrize("command", ["evaluate-vision", "train-vision"])
def test_a_truncated_shard_is_named_before_reading(command, world, tmp_path, capsys):
    import shutil  # noqa: PLC0415

    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    shard = sorted(data.glob("*.tar"))[0]
    shard.write_bytes(shard.read_bytes()[:-700])
    argv = (["--checkpoint", world["vckpt"], "--data", str(data)] if command == "evaluate-vision"
            else ["--data", str(data), "--out", str(tmp_path / "run")])
    module = importlib.import_module(MODULES[command])
    assert module.main(argv) == 2
    one_error_line(capsys.readouterr().err, f"shard {shard} is missing or has the wrong size")


# -- one writer per run directory -----------------------------------------------------------------
def _lock(run: Path, pid: int) -> None:
    from dexvision.files import LOCK_NAME, _host  # noqa: PLC0415

    run.mkdir(parents=True, exist_ok=True)
    (run / LOCK_NAME).write_text(json.dumps({"host": _host(), "pid": pid, "started": "2026-12-07 10:00:00"}))


@pytest.mark.parametrize("command", ["train-policy", "train-vision"])
def test_a_second_trainer_into_a_held_run_directory_is_refused(command, world, tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom dexvision.files import RunLock\n"
                               f"RunLock({str(run)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = [*TP[2:], "--out", str(run)] if command == "train-policy" else ["--data", world["data"], "--out", str(run)]
        assert importlib.import_module(MODULES[command]).main(argv) == 2
        one_error_line(capsys.readouterr().err, f"{run} is in use by another run (process {holder.pid} on")
        assert sorted(p.name for p in run.iterdir()) == [".dexvision-lock.json"]  # the holder's, untouched
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_run_does_not_block_resume(tmp_path):
    from dexvision.policy import train  # noqa: PLC0415

    run = tmp_path / "run"
    assert train.main([*TP[2:], "--steps", "40", "--out", str(run)]) == 0
    assert not (run / ".dexvision-lock.json").exists()  # released at the end
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock(run, dead.pid)  # as a killed run leaves it
    assert train.main(["--out", str(run), "--resume", "--steps", "80"]) == 0
    assert not (run / ".dexvision-lock.json").exists()


def test_a_refused_run_leaves_no_directory_behind(tmp_path, capsys):
    from dexvision.policy import train  # noqa: PLC0415

    run = tmp_path / "run"
    assert train.main([*TP[2:], "--algo", "bc", "--teacher", str(tmp_path / "none.pt"), "--out", str(run)]) == 2
    assert not run.exists()


def test_resuming_a_checkpoint_from_a_version_with_other_config_keys_says_so(tmp_path, capsys):
    import torch  # noqa: PLC0415

    from dexvision.policy import train  # noqa: PLC0415

    run = tmp_path / "run"
    assert train.main([*TP[2:], "--steps", "40", "--out", str(run)]) == 0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    ckpt["config"]["warp_drive"] = True
    ckpt["git_sha"] = "abcdef1234567890"
    torch.save(ckpt, run / "checkpoint.pt")
    assert train.main(["--out", str(run), "--resume", "--steps", "80"]) == 2
    one_error_line(capsys.readouterr().err, "written by another version of dexvision (git abcdef123456)",
                   "'warp_drive'")


@pytest.mark.parametrize("key", ["seed", "base"])
def test_an_experiment_run_that_sets_an_internal_key_is_refused(key, tmp_path, capsys):
    from dexvision.track import launch  # noqa: PLC0415

    path = experiment(tmp_path, setup=[], sections=[],
                      run_sets=[{"name": "a", "color": "#1f77b4", "runs": [{"name": "a1", key: 3}]}])
    assert launch.main([str(path), "--dry-run"]) == 2
    one_error_line(capsys.readouterr().err, f"run 'a1' sets '{key}', which run-experiment sets itself")


def test_a_render_worker_count_for_a_state_policy_is_warned_about_once(tmp_path, capsys, caplog):
    from dexvision.policy import train  # noqa: PLC0415

    args = train.build_parser().parse_args([*TP[2:], "--set", "render_workers=2", "--out", str(tmp_path / "r")])
    with caplog.at_level("WARNING"):
        cfg, _ = train.config_from_args(args)
    assert cfg.obs == "state"
    warned = [r.getMessage() for r in caplog.records if "render_workers" in r.getMessage()]
    assert warned == ["render_workers=2 is read by --obs pixels only; this run observes state: it is ignored"]
    assert not (tmp_path / "r").exists()
