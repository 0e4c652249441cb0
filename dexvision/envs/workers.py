"""Environment workers: the environments of one trainer stepped by several processes, one per core.

`EnvWorkers(cfg, num_envs, workers, obs)` is a drop-in for `BlockReorientEnv`: the
environments are cut into contiguous slices, and each worker process owns one slice
as a `BlockReorientEnv(first_env=..., total_envs=num_envs)`. Every environment keeps
the random stream of its global index, so the same seed gives the same trajectories
whatever the number of workers.

Nothing large is pickled per step: actions, observations (images included), rewards
and the episode arrays live in shared memory made with Gymnasium's vector utilities
(`create_shared_memory` / `read_from_shared_memory`); the pipes carry only one short
command and one short reply per worker and step. The workers only move arrays: the
task's semantics stay in `BlockReorientEnv`.

Workers ignore Ctrl-C (the parent handles it and closes them), exit quietly when the
parent goes away, and send their errors to the parent as text, which raises them:
no worker prints a traceback of its own.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory

from dexvision.distributed import cores_per_process, stop_workers
from dexvision.errors import UserError
from dexvision.envs.task import BlockReorientEnv, EnvConfig

# What `step` reports besides observations, with the dtype of each (one value per environment) and, for
# the orientations, the width of each environment's row.
STEP_ARRAYS = {"reward": np.float32, "terminated": np.bool_, "truncated": np.bool_, "done_mask": np.bool_,
               "episode_successes": np.int64, "episode_return": np.float64, "episode_length": np.int64,
               "dropped": np.bool_, "achieved_quat": np.float64, "step_goal": np.float64}
WIDTHS = {"achieved_quat": 4, "step_goal": 4}


# Tasks whose physics costs more per step than moving its arrays through the workers' pipes: measured,
# hand-block's env steps 4.6k/s per core (fast physics) and scales 1.84x on 2 workers; gimbal-block's
# 64 envs trained 7% slower with 2 workers than in the trainer's own process (benchmarks/policy.py).
PARALLEL_TASKS = ("hand-block",)


def resolve_env_workers(requested: int, obs: str, num_envs: int, task: str = "hand-block") -> int:
    """How many env worker processes to start (0: step in this process). -1, the default, means one per
    core for state observations of a task in PARALLEL_TASKS, and none otherwise: pixel observations already
    render in a process per core, and a cheap task's physics does not pay for the pipes."""
    if requested == 0 or requested < -1:
        raise UserError(f"--env-workers must be >= 1 (or -1 for the default), got {requested}")
    if requested == -1:
        return min(cores_per_process(), num_envs) if obs == "state" and task in PARALLEL_TASKS else 0
    if requested > num_envs:
        raise UserError(f"--env-workers {requested} is more than the {num_envs} environments to share out")
    return requested


def _shared_arrays(num_envs: int, ctx) -> dict:
    return {k: ctx.Array(np.ctypeslib.as_ctypes_type(np.dtype(t)), num_envs * WIDTHS.get(k, 1), lock=False)
            for k, t in STEP_ARRAYS.items()}


def _views(shared: dict, num_envs: int) -> dict[str, np.ndarray]:
    views = {k: np.frombuffer(shared[k], dtype=STEP_ARRAYS[k], count=num_envs * WIDTHS.get(k, 1)) for k in STEP_ARRAYS}
    return {k: v.reshape(num_envs, WIDTHS[k]) if k in WIDTHS else v for k, v in views.items()}


def _vector_space(space: gym.spaces.Dict) -> gym.spaces.Dict:
    """The observation space without images: what a final observation holds."""
    return gym.spaces.Dict({k: v for k, v in space.spaces.items() if k != "images"})


def _send_quietly(conn, message) -> None:
    try:
        conn.send(message)
    except (BrokenPipeError, OSError):
        pass  # the parent is gone: nobody to tell


def _worker(conn, cfg: EnvConfig, obs_mode: str, lo: int, hi: int, total: int, shm: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes the workers
    env = None
    try:
        env = BlockReorientEnv(cfg, hi - lo, obs=obs_mode, first_env=lo, total_envs=total)
        obs_view = read_from_shared_memory(env.single_observation_space, shm["obs"], total)
        final_view = read_from_shared_memory(_vector_space(env.single_observation_space), shm["final"], total)
        actions = np.frombuffer(shm["actions"], dtype=np.float64, count=total * env.nu).reshape(total, env.nu)
        arrays = _views(shm["step"], total)
        conn.send(("ready", None))
        while True:
            cmd, arg = conn.recv()
            if cmd == "step":
                obs, reward, terminated, truncated, info = env.step(actions[lo:hi])
                out = {"reward": reward, "terminated": terminated, "truncated": truncated,
                       **{k: info[k] for k in STEP_ARRAYS if k in info}}
                for k, v in out.items():
                    arrays[k][lo:hi] = v
                if "final_obs" in info:  # (rows of environments that did not finish are never read)
                    for k, v in info["final_obs"].items():
                        final_view[k][lo:hi] = v
            elif cmd == "reset":
                obs, _ = env.reset(seed=arg)
            elif cmd == "goal_max_angle":
                env.set_goal_max_angle(arg)
                obs = None
            elif cmd == "close":
                break
            else:
                raise ValueError(f"unknown command {cmd!r}")
            if obs is not None:
                for k, v in obs.items():
                    obs_view[k][lo:hi] = v
            conn.send(("ok", None))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the parent went away or is stopping: nothing to report
    except UserError as e:  # a user's mistake (a sampler config that always drops the block, no GL): one line
        _send_quietly(conn, ("user-error", (str(e), e.exit_code)))
    except Exception as e:  # noqa: BLE001 - sent to the parent, which raises it
        _send_quietly(conn, ("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        if env is not None:
            env.close()


class EnvWorkerError(RuntimeError):
    """An environment worker failed; the message holds its error and traceback."""


class EnvWorkers(gym.vector.VectorEnv):
    """`num_envs` environments stepped by `workers` processes; see the module docstring."""

    metadata = BlockReorientEnv.metadata

    def __init__(self, cfg: EnvConfig, num_envs: int, workers: int, obs: str = "state"):
        if not 1 <= workers <= num_envs:
            raise ValueError(f"need 1 <= workers <= num_envs, got {workers} workers for {num_envs} environments")
        probe = BlockReorientEnv(cfg, 1, obs="state")  # spaces and sizes only: no episode is started
        self.cfg, self.num_envs, self.obs_mode, self.nu = cfg, num_envs, obs, probe.nu
        self.scene, self.substeps = probe.scene, probe.substeps
        self._dims = probe.obs_dims()
        single = dict(probe.single_observation_space.spaces)
        if obs == "pixels":
            size, cams = cfg.render.image_size, cfg.render.randomization.cameras.count
            single["images"] = gym.spaces.Box(0, 255, (cams, 3, size, size), np.uint8)
        probe.close()
        self.single_observation_space = gym.spaces.Dict(single)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.single_action_space = probe.single_action_space
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        ctx = mp.get_context("spawn")
        shm = {"obs": create_shared_memory(self.single_observation_space, num_envs, ctx),
               "final": create_shared_memory(_vector_space(self.single_observation_space), num_envs, ctx),
               "actions": ctx.Array("d", num_envs * self.nu, lock=False), "step": _shared_arrays(num_envs, ctx)}
        self._obs = read_from_shared_memory(self.single_observation_space, shm["obs"], num_envs)
        self._final = read_from_shared_memory(_vector_space(self.single_observation_space), shm["final"], num_envs)
        self._actions = np.frombuffer(shm["actions"], dtype=np.float64).reshape(num_envs, self.nu)
        self._arrays = _views(shm["step"], num_envs)
        bounds = np.linspace(0, num_envs, workers + 1).round().astype(int)
        self._conns, self._procs, self._closed = [], [], False
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, cfg, obs, int(lo), int(hi), num_envs, shm), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        try:
            self._gather()
        except BaseException:
            self.close()
            raise

    def obs_dims(self) -> dict[str, int]:
        return dict(self._dims)

    def _gather(self) -> None:
        """Wait for every worker's reply; raise the first error one of them sent (a UserError as one)."""
        errors = []
        for conn, proc in zip(self._conns, self._procs):
            try:
                status, msg = conn.recv()
            except (EOFError, ConnectionResetError):
                status, msg = "error", f"environment worker {proc.pid} exited (code {proc.exitcode})"
            if status != "ok" and status != "ready":
                errors.append((status, msg))
        for status, msg in errors:
            if status == "user-error":
                error = UserError(msg[0])
                error.exit_code = msg[1]
                raise error
        if errors:
            raise EnvWorkerError(errors[0][1])

    def _command(self, cmd: str, arg=None) -> None:
        if self._closed:
            raise RuntimeError("the environment workers are closed")
        for conn, proc in zip(self._conns, self._procs):
            try:
                conn.send((cmd, arg))
            except (BrokenPipeError, OSError):
                raise EnvWorkerError(f"environment worker {proc.pid} is gone (exit code {proc.exitcode})") from None
        self._gather()

    def _observation(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._obs.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._command("reset", seed)
        return self._observation(), {}

    def set_goal_max_angle(self, angle: float) -> None:
        self._command("goal_max_angle", float(angle))

    def step(self, actions: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self.nu):
            raise ValueError(f"actions must have shape {(self.num_envs, self.nu)}, got {actions.shape}")
        self._actions[:] = actions
        self._command("step")
        a = {k: v.copy() for k, v in self._arrays.items()}
        info = {k: a[k] for k in ("done_mask", "episode_successes", "episode_return", "episode_length", "dropped",
                                  "achieved_quat", "step_goal")}
        if info["done_mask"].any():
            info["final_obs"] = {k: v.copy() for k, v in self._final.items()}
        return self._observation(), a["reward"], a["terminated"], a["truncated"], info

    def close(self, **kwargs) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        stop_workers(self._conns, self._procs, ("close", None))

    def __del__(self):
        self.close()


def make_env(cfg: EnvConfig, num_envs: int, obs: str = "state", env_workers: int = 0,
             render_workers: int = 0) -> BlockReorientEnv | EnvWorkers:
    """The environments of a trainer or an evaluation: in this process (`env_workers` 0) or in worker
    processes, each of which then renders its own slice when `obs` is pixels."""
    if env_workers <= 0:
        return BlockReorientEnv(cfg, num_envs, obs=obs, render_workers=render_workers)
    return EnvWorkers(cfg, num_envs, env_workers, obs=obs)
