"""The planner's configuration (`configs/planner/hand.yaml`): optimizer, horizon, costs, the model it plans
on, and the environment it plays (the task's rules; commands absolute and continuous)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dexvision.config import ConfigError, check_choice, load_config
from dexvision.envs.task import EnvConfig
from dexvision.planning.costs import CostConfig
from dexvision.planning.splines import INTERPOLATIONS

MODELS = ("episode", "nominal")
PROPOSALS = ("start", "first", "candidates")


def _planner_env() -> EnvConfig:
    return EnvConfig(task="hand-block", physics="fast", goal_timeout=100, action_type="continuous",
                     action_mode="absolute")


@dataclasses.dataclass
class PlannerConfig:
    """Sampling-based MPC. Times in seconds; noise in units of the command range [-1, 1]."""

    obs: str = "state"  # the planner reads the simulator's state; there is no pixel planner
    # the model rolled out: "episode", the environment's own (its physics randomization: a privileged
    # teacher, as a state teacher is), or "nominal", the undisturbed model (what a real robot would have)
    model: str = "episode"
    samples: int = 64  # control sequences rolled out per planning step (the mean among them)
    elites: int = 1  # the cheapest samples the next mean and noise are fitted to (1: predictive sampling)
    iterations: int = 1  # optimizer updates per control step
    # the plan acted on: "mean", the optimizer's mean (CEM's refit), or "best", the cheapest sample of the
    # last update (with one elite the two are the same)
    act: str = "mean"
    horizon: float = 0.48  # seconds planned ahead (a whole number of control periods)
    knots: int = 12  # one per control step of the horizon
    interpolation: str = "zero"  # zero: each knot held over its segment; linear: straight lines between knots
    noise: float = 0.5  # the widest (and first) standard deviation of the knots
    noise_min: float = 0.5  # the narrowest: the optimizer keeps exploring
    replan_every: int = 1  # control steps between planning steps (the plan in between is played open loop)
    # true: each planning step starts from the last plan shifted by a step; false: from the command in force
    # held over the horizon (no memory: the plan depends on the state and the command in force alone)
    warm_start: bool = True
    # true: the same noise draws at every planning step (with warm_start false the same candidates around the
    # command in force: the planner's action is then a function of the state, which a network can learn)
    fixed_noise: bool = False
    # where a policy's proposed command (DAgger's network, `dagger.guide`) goes: "start", each step's plan starts
    # from it held over the horizon (no memory of its own); "first", it becomes the plan's first knot and the
    # rest of the plan is kept (the memory); "candidates", the plan is kept and half the samples take their
    # first knot around the proposal instead of around the plan's. The costs' `proposal` term can also pull
    # the first command towards it.
    proposal: str = "start"
    threads: int = 2  # rollout threads
    costs: CostConfig = dataclasses.field(default_factory=CostConfig)
    env: EnvConfig = dataclasses.field(default_factory=_planner_env)

    def __post_init__(self):
        check_choice("obs", self.obs, ("state",))
        check_choice("model", self.model, MODELS)
        check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        check_choice("act", self.act, ("mean", "best"))
        check_choice("proposal", self.proposal, PROPOSALS)
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if not 1 <= self.elites <= self.samples:
            raise ValueError(f"elites must be within [1, samples={self.samples}], got {self.elites}")
        if self.iterations < 1 or self.knots < 1 or self.replan_every < 1 or self.threads < 1:
            raise ValueError("iterations, knots, replan_every and threads must be >= 1")
        if self.horizon <= 0:
            raise ValueError(f"horizon must be > 0 seconds, got {self.horizon}")
        if not 0 <= self.noise_min <= self.noise:
            raise ValueError(f"need 0 <= noise_min <= noise, got {self.noise_min} and {self.noise}")
        if self.env.action_type != "continuous" or self.env.action_mode != "absolute":
            raise ValueError("the planner commands absolute continuous targets: env.action_type must be continuous "
                             "and env.action_mode absolute")
        if self.env.action_average != 1:
            raise ValueError("the planner plans the commands in force: env.action_average must be 1")

    def steps(self, control_period: float | None = None) -> int:
        """Control steps in the horizon (of the env section's control period, or `control_period`)."""
        return horizon_steps(self.horizon, control_period or self.env.control_period)


def horizon_steps(horizon: float, control_period: float) -> int:
    """A planning horizon in control steps; it must be a whole number of them."""
    n = horizon / control_period
    if abs(n - round(n)) > 1e-6 or round(n) < 1:
        raise ConfigError(f"planner horizon {horizon} s is not a whole number of the {control_period} s control periods")
    return int(round(n))


def load_planner_config(path: str | Path | None, overrides: list[str] = ()) -> PlannerConfig:
    cfg = load_config(PlannerConfig, path, overrides)
    cfg.steps()
    if cfg.replan_every > cfg.steps():
        raise ConfigError(f"replan_every {cfg.replan_every} is past the horizon's {cfg.steps()} control steps")
    if cfg.knots > cfg.steps():
        raise ConfigError(f"knots {cfg.knots} exceed the horizon's {cfg.steps()} control steps (at most one knot "
                          "per control step: lengthen the horizon or use fewer knots)")
    return cfg
