"""The rollout backend: many open-loop control sequences rolled out from one simulator state, in C.

`CpuRollout(nthread)` wraps `mujoco.rollout.Rollout` with one MjData per thread; `run(model, data,
commands, substeps)` starts every sequence from `data`'s full physics state (`mj_getState` with
mjSTATE_FULLPHYSICS, plus its solver warm start, so the first steps match the simulation's own exactly),
holds each command for `substeps` physics steps (the environment's control period) and returns the
positions and velocities after each control step. Python only builds the arrays: nothing runs per step.
A GPU backend (MuJoCo Warp) would offer the same `run`.
"""

from __future__ import annotations

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


def get_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """`data`'s full physics state as one vector (time, qpos, qvel, act, ...)."""
    state = np.empty(mujoco.mj_stateSize(model, STATE_SPEC))
    mujoco.mj_getState(model, data, state, STATE_SPEC)
    return state


class CpuRollout:
    """Rollouts on `nthread` CPU threads through mujoco.rollout."""

    def __init__(self, nthread: int = 2):
        if nthread < 1:
            raise ValueError(f"rollout threads must be >= 1, got {nthread}")
        self.nthread = nthread
        self._rollout = mj_rollout.Rollout(nthread=nthread)
        self._datas: list[mujoco.MjData] = []
        self._signature = None

    def _datas_for(self, model: mujoco.MjModel) -> list[mujoco.MjData]:
        signature = (model.nq, model.nv, model.nu, model.na, model.nbody, model.ngeom)
        if signature != self._signature:
            self._datas = [mujoco.MjData(model) for _ in range(self.nthread)]
            self._signature = signature
        return self._datas

    def run(self, model: mujoco.MjModel, data: mujoco.MjData, commands: np.ndarray,
            substeps: int) -> tuple[np.ndarray, np.ndarray]:
        """Roll `commands` (N, H, nu), actuator commands per control step, out from `data`'s state; the
        positions (N, H, nq) and velocities (N, H, nv) after each control step."""
        n, steps, _ = commands.shape
        control = np.ascontiguousarray(np.repeat(commands, substeps, axis=1))
        initial = get_state(model, data)[None]
        state, _ = self._rollout.rollout(model, self._datas_for(model), initial, control,
                                         control_spec=mujoco.mjtState.mjSTATE_CTRL.value,
                                         initial_warmstart=data.qacc_warmstart[None].copy(),
                                         nstep=steps * substeps)
        ends = state[:, substeps - 1::substeps]
        qpos = ends[..., 1:1 + model.nq]
        qvel = ends[..., 1 + model.nq:1 + model.nq + model.nv]
        return qpos, qvel

    def close(self) -> None:
        self._rollout.close()
