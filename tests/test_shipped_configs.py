"""Every shipped config loads, and every run of every shipped experiment passes its command's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dexvision.config import load_config
from dexvision.policy.train import TrainPolicyConfig
from dexvision.track.experiment import load_experiment
from dexvision.track.launch import launch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "configs/policy").glob("*.yaml")), ids=lambda p: p.name)
def test_policy_configs_load(path):
    data = yaml.safe_load(path.read_text())
    sets = ['teacher="teacher.pt"'] if "bc" in data.get("algo", "ppo") else []
    if data.get("epochs") == 0:  # a frozen vision sub-model is given by --init-vision
        sets.append('init_vision="vision.pt"')
    cfg = load_config(TrainPolicyConfig, str(path), sets)
    assert cfg.task in ("gimbal-block", "hand-block") and cfg.algo


@pytest.mark.parametrize("path", sorted((ROOT / "configs/experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_run_of_an_experiment_is_accepted_by_its_command(path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # experiment files name configs relative to the repository
    exp = load_experiment(path)
    exp.runs_dir = str(tmp_path / "runs")  # nothing done yet: every run is checked
    states = launch(exp, dry_run=True)
    assert states and set(states.values()) == {"new"}
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(states) and all(line.startswith("[   new] ") for line in printed)
