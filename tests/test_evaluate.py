"""evaluate-policy's goals: the full task by default, or within --goal-max-angle of the block."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import TINY, one_error_line
from dexvision.policy import evaluate as evaluate_cli
from dexvision.policy import train as train_cli
from dexvision.envs.task import BlockReorientEnv
from dexvision.sim.rotations import quat_angle


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    assert train_cli.main(["--steps", "40", "--out", str(out), *TINY]) == 0
    return out / "checkpoint.pt"


def _goal_angles(monkeypatch) -> list[float]:
    """Angles between each goal drawn and the block's orientation when it was drawn."""
    angles: list[float] = []
    draw = BlockReorientEnv._new_goal

    def recording(self, i):
        goal = draw(self, i)
        angles.append(float(quat_angle(self.block_pose(i)[1], goal)))
        return goal

    monkeypatch.setattr(BlockReorientEnv, "_new_goal", recording)
    return angles


def test_goals_stay_within_the_max_angle_and_the_summary_says_so(checkpoint, tmp_path, monkeypatch, capsys):
    angles = _goal_angles(monkeypatch)
    out = tmp_path / "near.json"
    assert evaluate_cli.main(["--checkpoint", str(checkpoint), "--episodes", "4", "--goal-max-angle", "0.6",
                              "--out", str(out)]) == 0
    assert "goals within 0.6 rad" in capsys.readouterr().out
    assert json.loads(out.read_text())["goal_max_angle"] == pytest.approx(0.6)
    assert len(angles) >= 4 and max(angles) <= 0.6 + 1e-6


def test_the_full_task_draws_goals_beyond_any_curriculum_bound(checkpoint, tmp_path, monkeypatch):
    angles = _goal_angles(monkeypatch)
    out = tmp_path / "full.json"
    assert evaluate_cli.main(["--checkpoint", str(checkpoint), "--episodes", "8", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["goal_max_angle"] == pytest.approx(math.pi)
    # uniform random orientations: P(angle < 1 rad) is about 0.09, so some of 8+ goals lie beyond it
    assert np.max(angles) > 1.0


@pytest.mark.parametrize("angle", ["0", "-1", "4"])
def test_an_angle_outside_0_pi_ends_in_one_line(checkpoint, capsys, angle):
    assert evaluate_cli.main(["--checkpoint", str(checkpoint), "--goal-max-angle", angle]) == 2
    one_error_line(capsys.readouterr().err, "--goal-max-angle must be in (0, pi] radians")
