"""The two MuJoCo scenes: `hand-block` (Shadow Hand + lettered block) and `gimbal-block`.

Both come from gymnasium-robotics' Learning Dexterity assets: the hand scene is its
`manipulate_block.xml` minus the goal ("target") block and the hidden inner block;
the gimbal scene puts the same 5 cm lettered block, with the same texture, on an
actuated ball joint at the point where the block rests on the palm, so the same
cameras frame both. The gimbal's damping makes its motors, in effect, angular
velocity commands (top speed 5 rad/s, reached within ~15 ms): a policy needs the
block's orientation but hardly its velocity, so the task is learnable from pixels
on a laptop.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from pathlib import Path

import mujoco
import numpy as np

from dexvision.errors import UserError
from dexvision.sim.rotations import quat_normalize

TASKS = ("hand-block", "gimbal-block")
PHYSICS_PROFILES = ("reference", "fast")

# Where the block comes to rest on the palm of the nominal cupped hand pose (world
# frame, metres): measured by settling the nominal state (see tests/test_sim.py).
# The cameras aim here, and the gimbal scene's ball joint sits here.
BLOCK_REST_POINT = np.array([1.0, 0.87, 0.178])

BLOCK_HALF_SIZE = 0.025


@functools.lru_cache(maxsize=1)
def assets_dir() -> Path:
    """gymnasium-robotics' asset folder holding hand/, stls/hand/ and textures/."""
    # Located without importing it: importing gymnasium_robotics prints notices.
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "gymnasium-robotics is not installed; it ships the Shadow Hand and block "
            "assets (pip install gymnasium-robotics)"
        )
    path = Path(spec.submodule_search_locations[0]) / "envs" / "assets"
    if not (path / "hand" / "manipulate_block.xml").is_file():
        raise UserError(f"gymnasium-robotics at {path} has no hand/manipulate_block.xml")
    return path


@dataclasses.dataclass
class Scene:
    """A compiled MuJoCo model plus the names the rest of dexvision needs."""

    task: str
    model: mujoco.MjModel
    physics: str = "reference"  # the physics profile the model was built with (see PHYSICS_PROFILES)
    block_body: str = "object"
    block_geom: str = "object"
    floor_geom: str = "floor0"
    hand_joints: tuple[str, ...] = ()
    look_at: np.ndarray = dataclasses.field(default_factory=lambda: BLOCK_REST_POINT.copy())

    def block_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """Block centre (m, world) and orientation (unit wxyz, w >= 0, world) in `data` after kinematics."""
        body = data.body(self.block_body)
        return body.xpos.copy(), quat_normalize(body.xquat)

    @property
    def robot_geoms(self) -> set[int]:
        """Geoms that belong to the hand or mount: everything but the block and the floor."""
        skip = {self.model.geom(self.block_geom).id, self.model.geom(self.floor_geom).id}
        return {i for i in range(self.model.ngeom) if i not in skip}


# The fast hand for learning, chosen by measurement (benchmarks/hand_physics.py, BENCHMARKS.md): a 10 ms
# physics step (5x the reference's 2 ms) with the implicitfast integrator, which stays stable at that step
# where the reference's semi-implicit Euler needs 2 ms; Newton's solver capped at 10 iterations and 10
# line-search steps (it converges in about 5 on this model). Collision: the asset already collides through
# capsules and boxes (only the forearm, far from the block, is a mesh) and lists its finger-finger contacts
# as explicit pairs; what is left to cut is the floor, which the policy never needs (a block below
# EnvConfig.drop_height ends the episode long before it could land): it stays visible but collides with
# nothing. Joint friction, torsional friction (condim 4 fingertips) and the tendon couplings are kept:
# they shape the grasp. Visual geometry is untouched: renders and datasets look the same either way.
FAST_HAND = {"timestep": 0.01, "integrator": mujoco.mjtIntegrator.mjINT_IMPLICITFAST, "iterations": 10,
             "ls_iterations": 10}
FAST_HAND_NO_COLLISION = ("floor0",)


def _build_hand_block(physics: str) -> Scene:
    spec = mujoco.MjSpec.from_file(str(assets_dir() / "hand" / "manipulate_block.xml"))
    spec.delete(spec.body("target"))
    spec.delete(spec.geom("object_hidden"))
    model = spec.compile()
    if physics == "fast":
        for name, value in FAST_HAND.items():
            setattr(model.opt, name, value)
        for name in FAST_HAND_NO_COLLISION:
            model.geom_contype[model.geom(name).id] = model.geom_conaffinity[model.geom(name).id] = 0
    hand_joints = tuple(
        model.joint(i).name
        for i in range(model.njnt)
        if model.joint(i).name.startswith("robot0:")
    )
    return Scene(task="hand-block", model=model, physics=physics, hand_joints=hand_joints)


def _gimbal_xml() -> str:
    x, y, z = BLOCK_REST_POINT
    h = BLOCK_HALF_SIZE
    texdir = assets_dir() / "textures"
    return f"""
<mujoco model="gimbal-block">
  <compiler angle="radian" texturedir="{texdir}"/>
  <option timestep="0.002"/>
  <asset>
    <texture name="texture:object" file="block.png" gridsize="3 4" gridlayout=".U..LFRB.D.."/>
    <material name="material:object" texture="texture:object" specular="1" shininess="0.3"/>
    <material name="stand" specular="0.75" shininess="0.1" rgba="0.93 0.93 0.93 1"/>
    <material name="floor_mat" rgba="0.2 0.2 0.2 1"/>
  </asset>
  <worldbody>
    <geom name="floor0" pos="1 1 0" size="1 1 1" type="plane" material="floor_mat"/>
    <geom name="stand" type="cylinder" fromto="{x} {y} 0 {x} {y} {z}" size="0.006"
          material="stand" contype="0" conaffinity="0"/>
    <geom name="stand:base" type="cylinder" pos="{x} {y} 0.004" size="0.04 0.004"
          material="stand" contype="0" conaffinity="0"/>
    <body name="object" pos="{x} {y} {z}">
      <joint name="object:joint" type="ball" damping="0.002"/>
      <geom name="object" type="box" size="{h} {h} {h}" material="material:object"
            density="567" contype="0" conaffinity="0"/>
    </body>
    <light directional="true" ambient="0.2 0.2 0.2" diffuse="0.8 0.8 0.8"
           specular="0.3 0.3 0.3" castshadow="false" pos="0 1 4" dir="0 0 -1"/>
  </worldbody>
  <actuator>
    <motor name="A_x" joint="object:joint" gear="1 0 0 0 0 0" ctrlrange="-0.01 0.01" ctrllimited="true"/>
    <motor name="A_y" joint="object:joint" gear="0 1 0 0 0 0" ctrlrange="-0.01 0.01" ctrllimited="true"/>
    <motor name="A_z" joint="object:joint" gear="0 0 1 0 0 0" ctrlrange="-0.01 0.01" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


def _build_gimbal_block(physics: str) -> Scene:
    """Both profiles are the same model: one ball joint is cheap at the reference's 2 ms."""
    model = mujoco.MjModel.from_xml_string(_gimbal_xml())
    return Scene(task="gimbal-block", model=model, physics=physics)


_BUILDERS = {"hand-block": _build_hand_block, "gimbal-block": _build_gimbal_block}


def check_task(task: str) -> str:
    if task not in _BUILDERS:
        raise UserError(f"unknown task '{task}' (valid: {', '.join(TASKS)})")
    return task


def check_physics(physics: str) -> str:
    if physics not in PHYSICS_PROFILES:
        raise UserError(f"unknown physics profile '{physics}' (valid: {', '.join(PHYSICS_PROFILES)})")
    return physics


def load_scene(task: str, physics: str = "reference") -> Scene:
    """A fresh Scene for `task` under a physics profile (each call compiles its own model: safe to mutate).

    `reference` is gymnasium-robotics' model as it is (2 ms steps); `fast` is the hand for learning
    (FAST_HAND). Rendering and datasets use `reference`."""
    return _BUILDERS[check_task(task)](check_physics(physics))
