"""A goal curriculum the teacher can climb: goals near the block first, widened as it succeeds.

The full task draws each goal uniformly over all rotations: on average 126 degrees from
the block's current orientation, far beyond what a policy that has not yet learned to
hold the block can reach. With the curriculum, a goal is drawn within `max_angle` of
the block's orientation at the moment the goal is set, and beyond the success threshold
(a uniform rotation conditioned on its angle lying between the two, see
`dexvision.envs.task.nearby_goal`), so every success is earned. The bound starts at
`start_angle` and grows by `step` each time the mean successes of the last
`min_episodes` training episodes played at the current bound reach `promote_at`: episodes
begun before the last promotion do not count (`EpisodeStats.take_finished`), or the
first episodes to end after a promotion, played mostly at the easier bound, would at
once earn the next one; at pi
the goals are the full task's and the curriculum is over. Evaluation always plays the full task.
"""

from __future__ import annotations

import collections
import dataclasses
import math


@dataclasses.dataclass
class CurriculumConfig:
    """Goal-distance curriculum (radians). Disabled: every goal is the full task's."""

    enabled: bool = False
    start_angle: float = 0.8  # first bound on a goal's distance from the block's orientation
    step: float = 0.2  # added to the bound at each promotion
    promote_at: float = 5.0  # mean successes per training episode that earn a promotion
    min_episodes: int = 64  # finished episodes at the current level before it can be left

    def __post_init__(self):
        if not 0 < self.start_angle <= math.pi:
            raise ValueError(f"start_angle must be in (0, pi], got {self.start_angle}")
        if self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        if self.promote_at <= 0:
            raise ValueError(f"promote_at must be > 0, got {self.promote_at}")
        if self.min_episodes < 1:
            raise ValueError(f"min_episodes must be >= 1, got {self.min_episodes}")


class Curriculum:
    """The current goal bound and the rule that widens it; its state goes into checkpoints."""

    def __init__(self, cfg: CurriculumConfig):
        self.cfg = cfg
        self.max_angle = cfg.start_angle if cfg.enabled else math.pi
        self.promotions = 0
        self._recent: collections.deque = collections.deque(maxlen=cfg.min_episodes)  # at this bound

    @property
    def complete(self) -> bool:
        return self.max_angle >= math.pi

    def update(self, episode_successes: list[int]) -> bool:
        """Record the successes of training episodes that just ended; widen the bound when the last
        `min_episodes` of this level averaged at least `promote_at`. Returns True on a promotion."""
        if self.complete:
            return False
        self._recent.extend(episode_successes)
        if len(self._recent) < self.cfg.min_episodes or sum(self._recent) / len(self._recent) < self.cfg.promote_at:
            return False
        self.max_angle = min(math.pi, self.max_angle + self.cfg.step)
        self.promotions += 1
        self._recent.clear()
        return True

    def state_dict(self) -> dict:
        return {"max_angle": self.max_angle, "promotions": self.promotions, "recent": list(self._recent)}

    def load_state_dict(self, state: dict) -> None:
        self.max_angle = state["max_angle"]
        self.promotions = state["promotions"]
        self._recent.clear()
        self._recent.extend(state["recent"])
