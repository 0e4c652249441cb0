"""Shift benchmarks: held-out conditions in configs/data/, their bounds, and evaluate-vision's shift table."""

import csv
import hashlib
import io
import json
import shutil

import numpy as np
import pytest
from conftest import one_error_line
from PIL import Image

from dexvision.config import CONFIG_DIR, load_config, to_dict
from dexvision.datasets import render_shards
from dexvision.render.randomization import FLOOR_PATTERNS, RandomizationConfig, sample_params
from dexvision.render.sample import DataConfig
from dexvision.vision import evaluate as evaluate_cli
from dexvision.vision import train as train_cli
from dexvision.vision.shift import csv_table, differences, markdown_table, shift_table

SHIFTS = sorted(p.stem.removeprefix("shift-") for p in (CONFIG_DIR / "data").glob("shift-*.yaml"))


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _beyond(default, shifted) -> bool:
    """Whether a shifted value reaches outside the training one (a range, a jitter, a list of patterns)."""
    if isinstance(default, list) and default and isinstance(default[0], str):
        return not set(shifted) & set(default)
    if isinstance(default, list):
        return shifted[0] < default[0] or shifted[1] > default[1]
    return isinstance(default, float) and shifted > default


def _corner(default, shifted) -> bool:
    """Whether a shifted range is a narrow corner of the training one (at most 40% of its width, at one end)."""
    if not (isinstance(default, list) and len(default) == 2 and all(isinstance(v, (int, float)) for v in default)):
        return False
    width = default[1] - default[0]
    at_an_end = shifted[0] == default[0] or shifted[1] == default[1]
    return width > 0 and at_an_end and (shifted[1] - shifted[0]) <= 0.4 * width


def test_default_draws_are_pinned():
    # The default randomization draws these parameters: a change to a default range or to the order of
    # the draws changes every dataset made with the defaults, so it must be deliberate (and this hash
    # updated with it). Last changed when issue 15 widened lighting, camera jitter, blur and noise.
    h = hashlib.sha256()
    for seed in range(20):
        params = sample_params(RandomizationConfig(), np.array([0.0, -0.01, 0.2]), np.random.default_rng(seed))
        h.update(json.dumps(params).encode())
    assert h.hexdigest() == "324996b13f0fe3741513b060cc7fcfc172bd7a8bbdb1f29feaacaaaa1d3ecd29"


def test_shipped_shift_configs_reach_outside_the_training_randomization_or_into_its_corners():
    # The training randomization widened to cover the dim and tinted conditions (issue 15): those sets now
    # draw from a narrow end of a training range (all lights dim, every light strongly tinted), which
    # training rarely combines; every other set reaches outside it.
    assert {"reference", "dim", "tinted", "floor", "camera", "blur", "noise"} <= set(SHIFTS)
    defaults = _leaves(to_dict(DataConfig()))
    reference = to_dict(load_config(DataConfig, CONFIG_DIR / "data" / "shift-reference.yaml"))
    assert differences(to_dict(DataConfig()), reference) == []  # the training randomization, other samples
    for name in SHIFTS:
        cfg = to_dict(load_config(DataConfig, CONFIG_DIR / "data" / f"shift-{name}.yaml"))
        assert cfg["seed"] == reference["seed"] != DataConfig().seed  # held-out samples, the same states
        changed = {k: v for k, v in _leaves(cfg).items() if v != defaults[k] and k != "seed"}
        assert bool(changed) == (name != "reference"), name
        if changed:
            assert any(_beyond(defaults[k], v) or _corner(defaults[k], v) for k, v in changed.items()), (name, changed)
    floor = load_config(DataConfig, CONFIG_DIR / "data" / "shift-floor.yaml").render.randomization.appearance
    assert not set(floor.floor_patterns) & set(FLOOR_PATTERNS)


@pytest.mark.parametrize("override, fragment", [
    ("render.randomization.lighting.color_saturation=[0.0, 1.5]", "color_saturation [0.0, 1.5] goes past its valid "
                                                                  "bounds [0.0, 1.0]"),
    ("render.randomization.lighting.intensity=[-0.5, 1.0]", "intensity [-0.5, 1.0] goes past its valid bounds >= 0.0"),
    ("render.randomization.post.noise_std=[0.0, 2.0]", "noise_std [0.0, 2.0] goes past"),
    ("render.randomization.appearance.background_saturation=[0.5, 1.2]", "background_saturation [0.5, 1.2]"),
    ("render.randomization.cameras.roll_jitter_deg=-3", "roll_jitter_deg -3.0 goes past"),
])
def test_a_range_widened_past_its_bounds_ends_in_one_line(override, fragment, tmp_path, capsys):
    config = tmp_path / "wide.yaml"
    config.write_text((CONFIG_DIR / "data" / "shift-dim.yaml").read_text())
    out = tmp_path / "never"
    code = render_shards.main(["--n", "4", "--out", str(out), "--config", str(config), "--set", override])
    assert code == 2
    one_error_line(capsys.readouterr().err, fragment)
    assert not out.exists()  # refused before anything was made


def _result(name, pos, ori, spec=None):
    metrics = {"samples": 10.0, "position_mm/median": pos, "position_mm/mean": pos + 1, "position_mm/p90": 2 * pos,
               "orientation_deg/median": ori, "orientation_deg/mean": ori + 2, "orientation_deg/p90": 2 * ori}
    return {"name": name, "data": f"/d/{name}", "metrics": metrics, **({"spec": spec} if spec else {})}


def test_shift_table_ratios_on_a_known_case():
    light = {"seed": 1000, "render": {"randomization": {"lighting": {"ambient": [0.05, 0.35]}}}}
    dim = {"seed": 1000, "render": {"randomization": {"lighting": {"ambient": [0.0, 0.04]}}}}
    results = [_result("dim", 10.0, 6.0, dim), _result("ref", 5.0, 4.0, light), _result("blur", 4.0, 9.0, light)]
    table = shift_table(results, "ref")
    rows = {row["name"]: row for row in table["sets"]}
    assert [row["name"] for row in table["sets"]] == ["dim", "ref", "blur"]  # the order given
    assert rows["ref"]["ratio"] == {k: 1.0 for k in rows["ref"]["ratio"]}
    assert rows["dim"]["ratio"]["position_mm/median"] == pytest.approx(2.0)
    assert rows["dim"]["ratio"]["orientation_deg/median"] == pytest.approx(1.5)
    assert rows["dim"]["ratio"]["position_mm/mean"] == pytest.approx(11 / 6)
    assert rows["blur"]["ratio"]["orientation_deg/mean"] == pytest.approx(11 / 6)
    assert rows["blur"]["ratio"]["position_mm/median"] == pytest.approx(0.8)
    assert table["worst"] == {"name": "blur", "orientation_deg/median": pytest.approx(2.25)}
    assert rows["dim"]["differs"] == ["lighting.ambient: [0.0, 0.04]"] and rows["blur"]["differs"] == []
    md = markdown_table(table)
    assert "| ref (reference) | 10 | 5.00 | 6.00 | 4.00 | 6.00 | 1.00x | 1.00x | - |" in md
    assert "| dim | 10 | 10.00 | 11.00 | 6.00 | 8.00 | 2.00x | 1.50x | lighting.ambient: [0.0, 0.04] |" in md
    assert "Worst condition: blur, median orientation error 2.25x" in md
    parsed = list(csv.DictReader(io.StringIO(csv_table(table))))
    assert [r["set"] for r in parsed] == ["dim", "ref", "blur"] and parsed[1]["reference"] == "True"
    assert float(parsed[0]["ratio orientation_deg/median"]) == pytest.approx(1.5)
    assert float(parsed[2]["orientation_deg/p90"]) == 18.0


# -- a tiny shift benchmark, end to end ---------------------------------------------------------
def _render(out, config, seed_flags=()):
    return render_shards.main(["--n", "8", "--shard-size", "4", "--task", "gimbal-block", "--image-size", "32",
                               "--workers", "1", "--out", str(out), "--config", str(config), *seed_flags])


@pytest.fixture(scope="module")
def shift_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("shift")
    assert _render(root / "train", CONFIG_DIR / "data.yaml") == 0
    for name in ("reference", "dim", "floor"):
        assert _render(root / name, CONFIG_DIR / "data" / f"shift-{name}.yaml") == 0
    run = root / "run"
    assert train_cli.main(["--data", str(root / "train"), "--out", str(run), "--steps", "3", "--batch-size", "4",
                           "--num-workers", "0", "--set", "warmup_steps=1", "--set", "val_every=1000"]) == 0
    return root


def test_a_tiny_shift_benchmark_renders_and_evaluates(shift_sets, capsys):
    root, ckpt = shift_sets, shift_sets / "run" / "checkpoint.pt"
    floor = json.loads((root / "floor" / "dataset.json").read_text())["spec"]["data"]
    assert floor["seed"] == 1000 and "photo" in floor["render"]["randomization"]["appearance"]["floor_patterns"]
    out = root / "tables" / "shift.json"
    capsys.readouterr()
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--data", str(root / "dim"), "--data", str(root / "floor"),
                              "--reference", str(root / "reference"), "--num-workers", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = json.loads(out.read_text())
    assert [row["name"] for row in table["sets"]] == ["reference", "dim", "floor"] and table["reference"] == "reference"
    ref, dim = table["sets"][0], table["sets"][1]
    assert ref["samples"] == dim["samples"] == 8 and table["step"] == 3
    ratio = dim["metrics"]["orientation_deg/median"] / ref["metrics"]["orientation_deg/median"]
    assert dim["ratio"]["orientation_deg/median"] == pytest.approx(ratio)
    assert "lighting.intensity: [0.15, 0.4]" in dim["differs"]
    assert table["worst"]["name"] in ("dim", "floor")
    assert "| reference (reference) | 8 |" in printed and (root / "tables" / "shift.md").read_text() in printed
    assert len(list(csv.DictReader(io.StringIO((root / "tables" / "shift.csv").read_text())))) == 3
    assert Image.open(root / "tables" / "shift.png").size[0] > 400


def test_bad_shift_evaluations_end_in_one_line(shift_sets, tmp_path, capsys):
    root, ckpt = shift_sets, str(shift_sets / "run" / "checkpoint.pt")
    twin = tmp_path / "x" / "dim"
    shutil.copytree(root / "dim", twin)
    assert evaluate_cli.main(["--checkpoint", ckpt, "--data", str(root / "dim"), "--data", str(twin)]) == 2
    one_error_line(capsys.readouterr().err, "two --data sets are named 'dim'")
    assert evaluate_cli.main(["--checkpoint", ckpt, "--data", str(root / "dim"), "--data", str(root / "floor"),
                              "--out", str(tmp_path / "table.md")]) == 2
    one_error_line(capsys.readouterr().err, "--out must name a .json file")
    two_cams = tmp_path / "two"
    assert render_shards.main(["--n", "2", "--task", "gimbal-block", "--image-size", "32", "--cameras", "2",
                               "--workers", "1", "--out", str(two_cams)]) == 0
    capsys.readouterr()
    assert evaluate_cli.main(["--checkpoint", ckpt, "--data", str(root / "dim"), "--data", str(two_cams)]) == 2
    one_error_line(capsys.readouterr().err, "has 2 camera(s) per sample, the model was trained on 3")
