"""Physics randomization: config ranges, a sampler, and the function that applies a sample.

As in Learning Dexterity, physical parameters are drawn per episode (policy) or per
sample (rendering) from ranges around the model's nominal values. A draw is a plain
dict so it can be stored beside the data it produced.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from dexvision.config import Range


@dataclasses.dataclass
class PhysicsRandomization:
    """Multiplicative scales drawn log-uniformly in these ranges, and an additive gravity noise."""

    enabled: bool = True
    friction_scale: Range = (0.7, 1.3)
    block_mass_scale: Range = (0.5, 1.5)
    damping_scale: Range = (0.7, 1.3)
    actuator_gain_scale: Range = (0.75, 1.5)
    gravity_noise: float = 0.4  # m/s^2, standard deviation per axis

    def __post_init__(self):
        for f in ("friction_scale", "block_mass_scale", "damping_scale", "actuator_gain_scale"):
            low, _ = getattr(self, f)
            if low <= 0:
                raise ValueError(f"{f} must be positive, got low={low}")
        if self.gravity_noise < 0:
            raise ValueError("gravity_noise must be >= 0")


def _log_uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    low, high = r
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_physics(cfg: PhysicsRandomization, rng: np.random.Generator) -> dict:
    """One draw of physical parameters (a plain dict; identity when disabled)."""
    if not cfg.enabled:
        return {"friction_scale": 1.0, "block_mass_scale": 1.0, "damping_scale": 1.0,
                "actuator_gain_scale": 1.0, "gravity": [0.0, 0.0, -9.81]}
    return {
        "friction_scale": _log_uniform(rng, cfg.friction_scale),
        "block_mass_scale": _log_uniform(rng, cfg.block_mass_scale),
        "damping_scale": _log_uniform(rng, cfg.damping_scale),
        "actuator_gain_scale": _log_uniform(rng, cfg.actuator_gain_scale),
        "gravity": (np.array([0.0, 0.0, -9.81]) + rng.normal(0, cfg.gravity_noise, 3)).tolist(),
    }


class PhysicsRandomizer:
    """Applies physics draws to a model, always relative to the nominal values it started with."""

    def __init__(self, model: mujoco.MjModel, block_body: str):
        self.model = model
        self._scratch = mujoco.MjData(model)  # for mj_setConst
        self.block_id = model.body(block_body).id
        self.nominal = {
            "geom_friction": model.geom_friction.copy(),
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "dof_damping": model.dof_damping.copy(),
            "actuator_gainprm": model.actuator_gainprm.copy(),
            "actuator_biasprm": model.actuator_biasprm.copy(),
            "gravity": model.opt.gravity.copy(),
        }

    def apply(self, params: dict) -> None:
        m, nom = self.model, self.nominal
        m.geom_friction[:] = nom["geom_friction"] * params["friction_scale"]
        m.body_mass[:] = nom["body_mass"]
        m.body_inertia[:] = nom["body_inertia"]
        m.body_mass[self.block_id] *= params["block_mass_scale"]
        m.body_inertia[self.block_id] *= params["block_mass_scale"]
        m.dof_damping[:] = nom["dof_damping"] * params["damping_scale"]
        m.actuator_gainprm[:] = nom["actuator_gainprm"]
        m.actuator_biasprm[:] = nom["actuator_biasprm"]
        # Position servos have force = kp * ctrl - kp * q: scale gain and bias together.
        m.actuator_gainprm[:, 0] *= params["actuator_gain_scale"]
        m.actuator_biasprm[:, 1] *= params["actuator_gain_scale"]
        m.opt.gravity[:] = params["gravity"]
        # Quantities MuJoCo derives from masses at compile time (body_invweight0, which scales contact
        # softness, among them) must follow the new masses: without this a light block at a 10 ms step
        # made the contact solver blow up (QACC warnings, blocks thrown off the hand).
        mujoco.mj_setConst(m, self._scratch)

    def reset(self) -> None:
        self.apply({"friction_scale": 1.0, "block_mass_scale": 1.0, "damping_scale": 1.0,
                    "actuator_gain_scale": 1.0, "gravity": self.nominal["gravity"].tolist()})
