"""Policy checkpoints: the model, how to rebuild it and its environment, and the training state.

A policy checkpoint is a dict with `kind: "dexvision-policy"`, `task`, `obs`
(state or pixels), the `policy_config` and `env_config` needed to rebuild both,
the weights, the optimizer state, counters (frames, iterations, optimizer steps),
the resolved training config, the git SHA and the physics profile it was trained
under. Written atomically (dexvision.files).
"""

from __future__ import annotations

from pathlib import Path

from dexvision import files
from dexvision.config import from_dict
from dexvision.errors import UserError
from dexvision.envs.task import EnvConfig
from dexvision.policy.model import ActorCritic, PolicyConfig

KIND = "dexvision-policy"


def save_policy(path: Path, state: dict) -> None:
    """Atomic save (temporary file, then rename) of a policy checkpoint."""
    files.save_checkpoint(path, KIND, state)


def load_policy_checkpoint(path: str | Path) -> dict:
    return files.load_checkpoint(path, KIND)


def build_policy(ckpt: dict) -> ActorCritic:
    """The trained ActorCritic of a policy checkpoint (in eval mode)."""
    model = ActorCritic(PolicyConfig(**ckpt["policy_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def upgrade_env_dict(env: dict) -> dict:
    """An environment config as this version reads it. Checkpoints from before physics profiles counted
    `substeps` of 2 ms and ran the reference physics: they keep both."""
    env = dict(env)
    if "substeps" in env:
        env["control_period"] = 0.002 * env.pop("substeps")
        env.setdefault("physics", "reference")
    return env


def load_for_resume(path: str | Path) -> dict:
    """A policy checkpoint whose training config is upgraded like its environment config."""
    ckpt = load_policy_checkpoint(path)
    ckpt["config"] = {**ckpt["config"], "env": upgrade_env_dict(ckpt["config"].get("env", {}))}
    return ckpt


def env_config_of(ckpt: dict, physics: str | None = None) -> EnvConfig:
    """The environment a checkpoint was trained on, optionally under another physics profile."""
    data = upgrade_env_dict(ckpt["env_config"])
    if physics is not None:
        data["physics"] = physics
    return from_dict(EnvConfig, data)


# What an action means: a teacher's labels only make sense to a student whose actions mean the same.
ACTION_FIELDS = ("action_type", "action_mode", "relative_step", "action_bins", "control_period", "action_average")
# What the teacher's state inputs hold: the student's environment computes them for it.
STATE_FIELDS = ("fingertips", "goal_frame", "goal_repr", "goal_clock")


def load_teacher(path: str | Path, task: str, env: EnvConfig | None = None) -> tuple[ActorCritic, dict]:
    """A state policy to clone, checked to be one for `task` whose actions mean what they mean in `env` and
    whose state inputs `env` computes as it was trained on them; one clear error otherwise."""
    ckpt = load_policy_checkpoint(path)
    if ckpt["task"] != task:
        raise UserError(f"teacher {path} is a {ckpt['task']} policy, not a {task} one")
    if ckpt["obs"] != "state":
        raise UserError(f"teacher {path} is a {ckpt['obs']} policy; a teacher must see state (--obs state)")
    if env is not None:
        theirs = env_config_of(ckpt)
        for field in ACTION_FIELDS + STATE_FIELDS:
            if getattr(theirs, field) != getattr(env, field):
                raise UserError(f"teacher {path} was trained with env.{field}={getattr(theirs, field)}; this run has "
                                f"{getattr(env, field)} (set --set env.{field}=... to match)")
    return build_policy(ckpt), ckpt
