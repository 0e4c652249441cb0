"""benchmarks/greedy_student.py: the summary of failed goals tells a student circling its goal at top speed
from one that crept towards it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("greedy_student", ROOT / "benchmarks" / "greedy_student.py")
greedy_student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(greedy_student)


def test_a_goal_circled_at_top_speed_shows_extreme_actions_and_reversals():
    # 11 bins: 0 and 10 are the extremes; all three actuators flip sides every step, the block 0.41-0.51 rad away
    circling = [(0.41 if t % 2 else 0.51, np.full(3, 10 if t % 2 else 0)) for t in range(30)]
    creeping = [(0.9 - 0.01 * t, np.array([6, 5, 7])) for t in range(30)]
    stats = greedy_student.failed_goal_stats([circling], bins=11, window=20)
    assert stats["failed_goals"] == 1
    assert stats["closest_rad_median"] == 0.41 and stats["farthest_rad_median"] == 0.51
    assert stats["extreme_action_share"] == 1.0 and stats["reversal_share"] == 1.0
    stats = greedy_student.failed_goal_stats([creeping], bins=11, window=20)
    assert stats["extreme_action_share"] == 0.0 and stats["reversal_share"] == 0.0
    assert abs(stats["closest_rad_median"] - 0.61) < 1e-9  # the last of the 20 steps: 0.9 - 0.29


def test_the_middle_bin_is_no_reversal_and_no_failed_goal_is_reported_as_none():
    held = [(0.5, np.array([10, 5, 0])), (0.5, np.array([5, 5, 5])), (0.5, np.array([0, 5, 10]))]
    stats = greedy_student.failed_goal_stats([held], bins=11, window=20)
    assert stats["reversal_share"] == 0.0  # through the middle bin (hold) is not a flip from one side to the other
    assert abs(stats["extreme_action_share"] - 4 / 9) < 1e-9
    assert greedy_student.failed_goal_stats([], bins=11, window=20) == {"failed_goals": 0}
