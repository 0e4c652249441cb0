"""Shared fixtures. Rendering tests use small images so the suite stays quick on 2 cores."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("MUJOCO_GL", "egl")

import dexvision.render  # noqa: E402,F401 - configures headless GL before pyrender loads
from dexvision.config import load_config  # noqa: E402
from dexvision.render.sample import DataConfig, SampleGenerator  # noqa: E402
from dexvision.sim.scenes import load_scene  # noqa: E402

SMALL = 48  # pixels per side in rendering tests


def small_config(task: str, **overrides) -> DataConfig:
    sets = [f"task={task}", f"render.image_size={SMALL}"] + [f"{k}={v}" for k, v in overrides.items()]
    return load_config(DataConfig, None, sets)


@pytest.fixture(scope="session")
def hand_scene():
    return load_scene("hand-block")


@pytest.fixture(scope="session")
def gimbal_scene():
    return load_scene("gimbal-block")


@pytest.fixture(scope="session", params=["hand-block", "gimbal-block"])
def generator(request):
    return SampleGenerator(small_config(request.param))
