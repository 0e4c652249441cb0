"""One labelled sample as a pure function of (config, root seed, global index).

`SampleGenerator(cfg).generate(index)` draws a state (dexvision.sim), draws the
randomization, renders every camera and returns the images with their labels.
The randomness of sample `index` comes from `SeedSequence(seed, spawn_key=(index,))`,
so a sample's bytes do not depend on which worker, machine or restart made it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dexvision.config import bounds, check_bounds
from dexvision.render.renderer import RenderConfig, Renderer
from dexvision.render.randomization import sample_params
from dexvision.sim.sampler import SamplerConfig, SimState, StateSampler
from dexvision.sim.scenes import TASKS, load_scene


@dataclasses.dataclass
class DataConfig:
    """What a labelled sample is: the task, the root seed, the state sampler and the renderer."""

    task: str = "hand-block"
    seed: int = 0
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    render: RenderConfig = dataclasses.field(default_factory=RenderConfig)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task '{self.task}' (valid: {', '.join(TASKS)})")
        check_bounds(self, bounds("seed"))


@dataclasses.dataclass
class Sample:
    index: int
    images: list[np.ndarray]  # one (H, W, 3) uint8 image per camera
    label: dict  # JSON-ready: pose, cameras, randomization, state
    state: SimState


def sample_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the state and the rendering of sample `index`."""
    state_seq, render_seq = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(2)
    return np.random.default_rng(state_seq), np.random.default_rng(render_seq)


def _camera_json(cam: dict) -> dict:
    return {"K": cam["K"].tolist(), "R": cam["R"].tolist(), "t": cam["t"].tolist(),
            "width": cam["width"], "height": cam["height"]}


class SampleGenerator:
    """Owns a scene, a state sampler and a renderer for one DataConfig."""

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self.scene = load_scene(cfg.task)
        self.sampler = StateSampler(self.scene, cfg.sampler)
        # The renderer gets its own scene: physics randomization of the sampler's
        # model must not leak into the kinematics used for rendering.
        self.renderer = Renderer(load_scene(cfg.task), cfg.render)

    def generate(self, index: int, show_block: bool = True) -> Sample:
        state_rng, render_rng = sample_rngs(self.cfg.seed, index)
        state = self.sampler.sample(state_rng)
        params = sample_params(self.cfg.render.randomization, self.scene.look_at, render_rng)
        images = self.renderer.render(state.qpos, params, show_block=show_block)
        position, quaternion = self.renderer.block_pose()
        label = {
            "index": index,
            "task": self.cfg.task,
            "position": position.tolist(),
            "quaternion": quaternion.tolist(),
            "qpos": state.qpos.tolist(),
            "qvel": state.qvel.tolist(),
            "cameras": [_camera_json(c) for c in self.renderer.camera_labels(params)],
            "randomization": params,
            "physics": state.physics,
            "attempts": state.attempts,
        }
        return Sample(index, images, label, state)
