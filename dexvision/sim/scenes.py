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


def _build_hand_block() -> Scene:
    spec = mujoco.MjSpec.from_file(str(assets_dir() / "hand" / "manipulate_block.xml"))
    spec.delete(spec.body("target"))
    spec.delete(spec.geom("object_hidden"))
    model = spec.compile()
    hand_joints = tuple(
        model.joint(i).name
        for i in range(model.njnt)
        if model.joint(i).name.startswith("robot0:")
    )
    return Scene(task="hand-block", model=model, hand_joints=hand_joints)


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


def _build_gimbal_block() -> Scene:
    model = mujoco.MjModel.from_xml_string(_gimbal_xml())
    return Scene(task="gimbal-block", model=model)


_BUILDERS = {"hand-block": _build_hand_block, "gimbal-block": _build_gimbal_block}


def check_task(task: str) -> str:
    if task not in _BUILDERS:
        raise UserError(f"unknown task '{task}' (valid: {', '.join(TASKS)})")
    return task


def load_scene(task: str) -> Scene:
    """A fresh Scene for `task` (each call compiles its own model: safe to mutate)."""
    return _BUILDERS[check_task(task)]()
