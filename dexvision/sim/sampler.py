"""State samplers: physically plausible block-in-hand states and gimbal orientations.

`StateSampler(scene, cfg).sample(rng)` returns a `SimState` holding everything
needed to re-create it (full qpos and qvel, the physics draw) and how many
attempts it took. For the hand, joints are drawn around a palm-up, cupped pose,
the block is dropped onto the palm with a uniformly random orientation, physics
runs until the block settles, and states where it fell off are rejected.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from dexvision.config import Range
from dexvision.errors import UserError
from dexvision.sim.physics import PhysicsRandomization, PhysicsRandomizer, sample_physics
from dexvision.sim.rotations import random_quat
from dexvision.sim.scenes import Scene

# Palm-up, cupped nominal pose (radians), by joint name without the "robot0:" prefix.
# Joints not listed are nominally 0. The distal joints (J0) are coupled to J1 by a
# tendon in the model, so they follow J1 (see _coupled_distal).
CUPPED_POSE = {
    "FFJ2": 0.3, "FFJ1": 0.35,
    "MFJ2": 0.3, "MFJ1": 0.35,
    "RFJ2": 0.3, "RFJ1": 0.35,
    "LFJ4": 0.25, "LFJ2": 0.3, "LFJ1": 0.35,
    "THJ4": 0.5, "THJ3": 0.6, "THJ0": -0.3,
}
# Ratio of the coupling tendon's coefficients: J0 * 0.00705 = J1 * 0.00805.
_DISTAL_RATIO = 0.00805 / 0.00705


def cupped_qpos(scene: Scene) -> np.ndarray:
    """The hand's nominal palm-up, cupped pose (CUPPED_POSE, distal joints following their J1) as a full qpos
    (the model's qpos0 elsewhere): what the samplers draw around, and the planner's posture cost holds to."""
    m = scene.model
    qpos = m.qpos0.copy()
    for name in scene.hand_joints:
        short = name.split(":")[-1]
        low, high = m.jnt_range[m.joint(name).id]
        if short.endswith("J0") and not short.startswith(("TH", "WR")):
            value = CUPPED_POSE.get(f"{short[:2]}J1", 0.0) * _DISTAL_RATIO
        else:
            value = CUPPED_POSE.get(short, 0.0)
        qpos[m.joint(name).qposadr[0]] = np.clip(value, low, high)
    return qpos


@dataclasses.dataclass
class SamplerConfig:
    """How states are drawn. Distances in metres, times in seconds, angles in radians."""

    finger_spread: float = 0.2  # std of each finger joint around CUPPED_POSE, fraction of its range
    wrist_spread: float = 0.08  # same for the two wrist joints (small: keeps the palm up)
    drop_height: Range = (0.01, 0.04)  # block centre above its rest point when released
    drop_xy_jitter: float = 0.015  # std of the release point around the rest point
    settle_time: float = 0.4  # physics time simulated before the first settledness check
    max_settle_time: float = 1.5  # give up (reject) when not settled by then
    settle_speed: float = 0.02  # block speed (m/s) below which it counts as settled
    fall_depth: float = 0.05  # a block this far below the rest point has fallen off: rejected at once
    max_attempts: int = 100  # rejected draws allowed for one sample before giving up
    gimbal_max_angvel: float = 3.0  # rad/s, per-axis uniform range of the gimbal's angular velocity
    physics: PhysicsRandomization = dataclasses.field(default_factory=PhysicsRandomization)

    def __post_init__(self):
        if self.settle_time <= 0 or self.max_settle_time < self.settle_time:
            raise ValueError("need 0 < settle_time <= max_settle_time")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.fall_depth <= 0:
            raise ValueError("fall_depth must be > 0")
        if self.finger_spread < 0 or self.wrist_spread < 0 or self.drop_xy_jitter < 0:
            raise ValueError("spreads and jitter must be >= 0")


@dataclasses.dataclass
class SimState:
    """A sampled state: enough to re-create the scene exactly."""

    task: str
    qpos: np.ndarray
    qvel: np.ndarray
    physics: dict
    attempts: int = 1
    ctrl: np.ndarray | None = None  # the actuators' commands that hold the state (hand: servo targets)

    def to_dict(self) -> dict:
        return {"task": self.task, "qpos": self.qpos.tolist(), "qvel": self.qvel.tolist(),
                "physics": self.physics, "attempts": self.attempts}


class SamplingError(UserError):
    """No acceptable state within max_attempts (a config that makes the block always fall)."""


class StateSampler:
    """Draws SimStates for one scene; counts accepted and rejected draws."""

    def __init__(self, scene: Scene, cfg: SamplerConfig | None = None):
        self.scene = scene
        self.cfg = cfg or SamplerConfig()
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        self.physics = PhysicsRandomizer(self.model, scene.block_body)
        self.accepted = 0
        self.rejected = 0
        m = self.model
        self._block_qadr = m.jnt_qposadr[m.body(scene.block_body).jntadr[0]]
        self._block_vadr = m.jnt_dofadr[m.body(scene.block_body).jntadr[0]]
        self._block_geom = m.geom(scene.block_geom).id
        self._robot_geoms = np.array(sorted(scene.robot_geoms - {m.geom(scene.floor_geom).id}))
        # (qpos address, range, spread, nominal) of each independently drawn hand joint, and
        # (qpos address, range, address of its J1) of each tendon-coupled distal finger joint.
        self._free, self._coupled = [], []
        for name in scene.hand_joints:
            short = name.split(":")[-1]
            adr, rng_ = m.joint(name).qposadr[0], m.jnt_range[m.joint(name).id]
            if short.endswith("J0") and not short.startswith(("TH", "WR")):
                self._coupled.append((adr, rng_, m.joint(f"robot0:{short[:2]}J1").qposadr[0]))
            else:
                spread = self.cfg.wrist_spread if short.startswith("WR") else self.cfg.finger_spread
                self._free.append((adr, rng_, spread, CUPPED_POSE.get(short, 0.0)))

    def sample(self, rng: np.random.Generator) -> SimState:
        if self.scene.task == "gimbal-block":
            return self._sample_gimbal(rng)
        for attempt in range(1, self.cfg.max_attempts + 1):
            state = self._try_hand(rng)
            if state is not None:
                self.accepted += 1
                state.attempts = attempt
                return state
            self.rejected += 1
        raise SamplingError(
            f"no state kept the block on the hand in {self.cfg.max_attempts} attempts; "
            "check the sampler config (drop_height, finger_spread, physics ranges)"
        )

    def _sample_gimbal(self, rng: np.random.Generator) -> SimState:
        physics = sample_physics(self.cfg.physics, rng)
        qpos = random_quat(rng)
        w = self.cfg.gimbal_max_angvel
        qvel = rng.uniform(-w, w, 3)
        self.accepted += 1
        return SimState(self.scene.task, qpos, qvel, physics, ctrl=np.zeros(self.model.nu))

    def _hand_joint_draw(self, rng: np.random.Generator) -> np.ndarray:
        qpos = self.model.qpos0.copy()
        for adr, (low, high), spread, nominal in self._free:
            qpos[adr] = np.clip(nominal + rng.normal(0.0, spread * (high - low)), low, high)
        for adr, (low, high), j1 in self._coupled:
            qpos[adr] = np.clip(qpos[j1] * _DISTAL_RATIO, low, high)
        return qpos

    def _try_hand(self, rng: np.random.Generator) -> SimState | None:
        m, d, cfg = self.model, self.data, self.cfg
        physics = sample_physics(cfg.physics, rng)
        self.physics.apply(physics)
        mujoco.mj_resetData(m, d)
        d.qpos[:] = self._hand_joint_draw(rng)
        a = self._block_qadr
        drop = self.scene.look_at + np.array(
            [*rng.normal(0.0, cfg.drop_xy_jitter, 2), rng.uniform(*cfg.drop_height)]
        )
        d.qpos[a:a + 3] = drop
        d.qpos[a + 3:a + 7] = random_quat(rng)
        mujoco.mj_forward(m, d)
        # Position servos hold the drawn pose: command each actuator's current length.
        d.ctrl[:] = np.clip(d.actuator_length, m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1])
        n_first = int(round(cfg.settle_time / m.opt.timestep))
        n_max = int(round(cfg.max_settle_time / m.opt.timestep))
        mujoco.mj_step(m, d, nstep=n_first)
        steps = n_first
        chunk = max(1, int(round(0.05 / m.opt.timestep)))
        floor = self.scene.look_at[2] - cfg.fall_depth
        while np.linalg.norm(d.qvel[self._block_vadr:self._block_vadr + 3]) > cfg.settle_speed:
            if steps >= n_max or d.qpos[a + 2] < floor:
                return None
            mujoco.mj_step(m, d, nstep=chunk)
            steps += chunk
        if not self._block_on_hand():
            return None
        return SimState(self.scene.task, d.qpos.copy(), d.qvel.copy(), physics, ctrl=d.ctrl.copy())

    def _block_on_hand(self) -> bool:
        """True when the block touches the hand and nothing else (not the floor)."""
        d = self.data
        geom1 = d.contact.geom1[: d.ncon]
        geom2 = d.contact.geom2[: d.ncon]
        b = self._block_geom
        others = np.concatenate([geom2[geom1 == b], geom1[geom2 == b]])
        if len(others) == 0:
            return False
        return bool(np.all(np.isin(others, self._robot_geoms)))

    def rejection_rate(self) -> float:
        total = self.accepted + self.rejected
        return self.rejected / total if total else 0.0
