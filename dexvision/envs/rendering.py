"""Camera images for the pixel environments: rendered in this process or in worker processes.

`RenderPool(task, render_cfg, workers)` turns a batch of simulator states (qpos, one
row per environment) and each environment's randomization draw into a
(num_envs, cameras, 3, H, W) uint8 array. With `workers > 0` the environments are
split into contiguous slices, one per worker process (each with its own GL context
and dexvision.render.Renderer), so rendering uses every core while the simulation
and the model stay in the main process. A worker receives an environment's
randomization draw only when a new episode starts.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal

import numpy as np

from dexvision.distributed import stop_workers
from dexvision.errors import UserError
from dexvision.render.renderer import RenderConfig


def _make_renderer(task: str, cfg: RenderConfig):
    from dexvision.render.renderer import Renderer  # noqa: PLC0415 - GL is created here
    from dexvision.sim.scenes import load_scene  # noqa: PLC0415

    return Renderer(load_scene(task), cfg)


def _render_batch(renderer, qpos: np.ndarray, params: list[dict]) -> np.ndarray:
    images = [np.stack(renderer.render(q, p)) for q, p in zip(qpos, params)]  # (K, H, W, 3) each
    return np.ascontiguousarray(np.stack(images).transpose(0, 1, 4, 2, 3))


def _worker(conn, task: str, cfg: RenderConfig) -> None:
    """Render what the parent sends until it sends None or goes away. Errors go to the parent as text;
    Ctrl-C is the parent's to handle (it closes the workers): a worker never prints a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("LP_NUM_THREADS", "0")  # Mesa: rasterize on this thread (see datasets.render_shards)
    try:
        try:
            renderer = _make_renderer(task, cfg)
            conn.send(("ready", None))
        except Exception as e:  # noqa: BLE001 - reported to the parent as one line
            conn.send(("error", f"{type(e).__name__}: {e}"))
            return
        params: dict[int, dict] = {}
        while True:
            msg = conn.recv()
            if msg is None:
                break
            qpos, indices, new_params = msg
            params.update(new_params)
            try:
                conn.send(("ok", _render_batch(renderer, qpos, [params[i] for i in indices])))
            except Exception as e:  # noqa: BLE001
                conn.send(("error", f"{type(e).__name__}: {e}"))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent closed the pipe or exited: nothing left to render for


class RenderPool:
    """Renders every environment's cameras; see the module docstring."""

    def __init__(self, task: str, cfg: RenderConfig, workers: int = 0):
        self.task, self.cfg, self.workers = task, cfg, workers
        self._local = None
        self._conns, self._procs = [], []
        if workers <= 0:
            self._local = _make_renderer(task, cfg)
            return
        ctx = mp.get_context("spawn")
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, task, cfg), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)
        for conn in self._conns:
            status, detail = conn.recv()
            if status != "ready":
                self.close()
                raise UserError(f"a render worker could not start: {detail}")

    def render(self, qpos: np.ndarray, params: list[dict], new_episode: np.ndarray) -> np.ndarray:
        if self._local is not None:
            return _render_batch(self._local, qpos, params)
        slices = [s for s in np.array_split(np.arange(len(qpos)), len(self._conns)) if len(s)]
        busy = self._conns[:len(slices)]
        for conn, idx in zip(busy, slices):
            fresh = {int(i): params[i] for i in idx if new_episode[i]}
            conn.send((qpos[idx], idx.tolist(), fresh))
        parts = []
        for conn in busy:
            try:
                status, payload = conn.recv()
            except EOFError:
                raise UserError("a render worker died (out of memory, or GL crashed)") from None
            if status != "ok":
                raise UserError(f"rendering failed in a worker: {payload}")
            parts.append(payload)
        return np.concatenate(parts)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
            self._local = None
        stop_workers(self._conns, self._procs, None)
        self._conns, self._procs = [], []
