"""The block reorientation task's configuration (`EnvConfig`, one per environment batch), the episode rules an
evaluation plays (`evaluation_env`), and which observation keys each view holds (`state_keys`). Angles in
radians, lengths in metres. `BlockReorientEnv` (task.py) runs it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dexvision.config import check_choice
from dexvision.envs.rules import ROTATION_REWARDS
from dexvision.render.renderer import RenderConfig
from dexvision.sim.sampler import SamplerConfig
from dexvision.sim.scenes import PHYSICS_PROFILES, TASKS

OBS_MODES = ("state", "pixels")
ACTION_MODES = ("absolute", "relative")
GOAL_FRAMES = ("block", "hand")
ACTION_TYPES = ("discrete", "continuous")
GOAL_MODES = ("sequence", "single")
TIMEOUTS = ("end", "resample")
GOAL_REPRS = ("rotvec", "matrix")


@dataclasses.dataclass
class EnvConfig:
    """The block reorientation task. Angles in radians, lengths in metres."""

    task: str = "gimbal-block"
    physics: str = "fast"  # physics profile: fast (learning) or reference (gymnasium-robotics' 2 ms model)
    control_period: float = 0.04  # seconds per control step (25 Hz), whatever the profile's physics step
    action_type: str = "discrete"  # discrete: action_bins bins per actuator; continuous: [-1, 1] per actuator
    action_bins: int = 11
    action_mode: str = "absolute"  # absolute: bins span the command range; relative: bins move the command
    relative_step: float = 0.1  # relative: the largest move per control step, as a fraction of the range
    success_threshold: float = 0.4
    max_successes: int = 50
    goal_timeout: int = 50  # control steps allowed to reach each goal
    success_reward: float = 5.0
    drop_penalty: float = 20.0
    # weight of the per-step decrease of the rotation distance (Learning Dexterity: 1); above 1, progress
    # towards the goal outweighs the noise that drops and success bonuses put into the returns
    progress_reward: float = 1.0
    # the rotation term: "progress", progress_reward x the decrease of the distance (Learning Dexterity), or
    # "inverse", 1 / (distance + rotation_eps) every step (Isaac Gym's ShadowHand: denser near the goal), or
    # "distance", -progress_reward x the distance every step (dense, and what is left to turn, not how much the
    # last step turned; negative, so a drop that ends the episode early can pay), "closeness", progress_reward x
    # (1 - distance / pi) every step (the same slope, never negative: a drop only loses what was to come), or
    # "none": only the success bonus (every step within the threshold, with goals single) and the drop penalty.
    # All but progress are functions of (achieved orientation, goal, drop): goal relabelling can recompute them
    rotation_reward: str = "progress"
    rotation_eps: float = 0.1
    position_penalty: float = 0.0  # per metre of the block's distance from its rest point, every step (hand)
    # x the mean squared command in force (in [-1, 1] units of its range), every step: on the gimbal, whose
    # commands are its motors' torques (against the joints' damping: their speeds), a teacher that moves no
    # faster than it must (slower where a full-speed step would overshoot), so a student has less to circle
    action_penalty: float = 0.0
    fingertips: bool = False  # hand: the state (teacher, value function) includes the fingertip positions
    # the frame of relative_rotvec, the rotation from the block to its goal: "block", the block's own (the
    # gimbal's motors turn the block about its own axes), or "hand", the hand's (world) frame, in which the
    # fingers push and in which Isaac Gym's ShadowHand states it (an MLP cannot easily rotate one into the other)
    goal_frame: str = "block"
    # how the rotation still to go is stated: "rotvec", a rotation vector (relative_rotvec; its axis flips near
    # pi), or "matrix", its rotation matrix (relative_rot, continuous everywhere; computed from the observed,
    # noisy block_rot and the goal, so a relabelled goal's input is the same function of the same observation)
    goal_repr: str = "rotvec"
    # "sequence": Learning Dexterity's task (a reached goal is replaced by a new one, up to max_successes);
    # "single": one goal per episode (training only, as gymnasium-robotics' HandManipulate tasks): reaching it
    # draws no new one, the episode lasts goal_timeout steps unless the block drops, and its successes are 1
    # when the last step is within the threshold
    goals: str = "sequence"
    # what a goal not reached within goal_timeout steps does: "end" the episode (the task's rule, and what
    # evaluation plays), or "resample" a new goal and go on (training: a failed goal does not cut the episode's
    # data short), the episode then truncated after max_episode_steps
    timeout: str = "end"
    max_episode_steps: int = 0  # 0: no limit but the task's (needed > 0 with timeout resample)
    # the observation includes goal_clock, the goal's elapsed steps / goal_timeout: for a value function, which
    # otherwise cannot see when the goal clock will end an episode
    goal_clock: bool = False
    # absolute actions: the command in force moves this fraction of the way to the new one each step (a moving
    # average, as Isaac Gym's OpenAI ShadowHand variant smooths its targets); 1: the new command at once
    action_average: float = 1.0
    drop_height: float = 0.1  # a block centre below this height (world z) is a drop (hand-block)
    obs_noise: float = 0.01  # standard deviation of the noise added to state observations
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    render: RenderConfig = dataclasses.field(default_factory=lambda: RenderConfig(image_size=64))

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task '{self.task}' (valid: {', '.join(TASKS)})")
        if self.physics not in PHYSICS_PROFILES:
            raise ValueError(f"unknown physics profile '{self.physics}' (valid: {', '.join(PHYSICS_PROFILES)})")
        if self.control_period <= 0:
            raise ValueError("control_period must be > 0")
        check_choice("action_type", self.action_type, ACTION_TYPES)
        check_choice("action_mode", self.action_mode, ACTION_MODES)
        if not 0 < self.relative_step <= 1:
            raise ValueError(f"relative_step must be in (0, 1], got {self.relative_step}")
        if self.action_bins < 2 or self.max_successes < 1 or self.goal_timeout < 1:
            raise ValueError("max_successes and goal_timeout must be >= 1, action_bins >= 2")
        if not 0 < self.success_threshold < np.pi:
            raise ValueError("success_threshold must be in (0, pi)")
        if self.obs_noise < 0:
            raise ValueError("obs_noise must be >= 0")
        if self.progress_reward < 0 or self.position_penalty < 0 or self.action_penalty < 0:
            raise ValueError("progress_reward, position_penalty and action_penalty must be >= 0")
        check_choice("goal_frame", self.goal_frame, GOAL_FRAMES)
        check_choice("goal_repr", self.goal_repr, GOAL_REPRS)
        check_choice("goals", self.goals, GOAL_MODES)
        if not 0 < self.action_average <= 1:
            raise ValueError(f"action_average must be in (0, 1], got {self.action_average}")
        if self.action_average < 1 and self.action_mode != "absolute":
            raise ValueError("action_average smooths absolute commands: it needs action_mode absolute")
        check_choice("timeout", self.timeout, TIMEOUTS)
        if self.max_episode_steps < 0 or (self.timeout == "resample" and self.max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be >= 0, and >= 1 with timeout resample; got "
                             f"{self.max_episode_steps}")
        if self.timeout == "resample" and self.goals == "single":
            raise ValueError("timeout resample draws a new goal: it needs goals sequence")
        if self.rotation_reward not in ROTATION_REWARDS or self.rotation_eps <= 0:
            raise ValueError(f"rotation_reward must be one of {', '.join(ROTATION_REWARDS)} and rotation_eps > 0, "
                             f"got {self.rotation_reward!r} and {self.rotation_eps}")


def evaluation_env(env: EnvConfig, task_reward: bool = False) -> EnvConfig:
    """`env` with Learning Dexterity's episode rules where training may depart from them (a new goal after each
    success up to max_successes, within 0.4 rad, a goal timeout ends the episode, no other step limit): what train-policy's
    evaluations play and a checkpoint records. `task_reward` also restores the task's reward (progress,
    +5 a success, -20 a drop), for a learner trained on another, so returns compare across learners."""
    rules = dict(goals="sequence", timeout="end", max_episode_steps=0,
                 success_threshold=EnvConfig.success_threshold)  # the task's tolerance, whatever training used
    if task_reward:
        task = EnvConfig()
        rules.update({k: getattr(task, k) for k in ("rotation_reward", "success_reward", "drop_penalty",
                                                    "progress_reward", "position_penalty", "action_penalty")})
    return dataclasses.replace(env, **rules)


def state_keys(task: str, fingertips: bool = False, goal_repr: str = "rotvec") -> tuple[str, ...]:
    """Observation keys of the state (teacher, value function) view of `task` (`fingertips`, `goal_repr`: see
    EnvConfig)."""
    relative = "relative_rot" if goal_repr == "matrix" else "relative_rotvec"
    block = ("block_rot", "block_angvel", "goal_rot", relative, "prev_action")
    if task == "hand-block":
        return ("joint_pos", "joint_vel", "block_pos", "block_linvel") + block + (("fingertip_pos",) * fingertips)
    return block


STUDENT_KEYS = ("proprio", "goal")  # plus the images, through the vision sub-model
NOISELESS_KEYS = ("goal", "goal_rot", "goal_clock")  # what the policy is told, not what it measures
VALUE_ONLY_KEYS = ("goal_clock",)  # inputs of the value function alone
GOAL_KEYS = ("goal", "goal_rot", "relative_rot", "relative_rotvec")  # the observation keys that depend on the goal
