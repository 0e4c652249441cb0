"""Shared fixtures. Rendering tests use small images so the suite stays quick on 2 cores."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("MUJOCO_GL", "egl")

from dexvision.config import load_config  # noqa: E402
from dexvision.render.sample import DataConfig, SampleGenerator  # noqa: E402
from dexvision.sim.scenes import load_scene  # noqa: E402

SMALL = 48  # pixels per side in rendering tests


# tiny train-policy flags: a gimbal-block run that takes seconds
TINY = ["--set", "num_envs=4", "--set", "minibatches=2", "--set", "rollout=10", "--set", "lstm_hidden=32",
        "--set", "embed_dim=32", "--set", "eval_episodes=2", "--set", "env.max_successes=2",
        "--set", "env.goal_timeout=5"]


def one_error_line(stderr: str, *fragments: str) -> str:
    """The single `error: ...` line a command printed (progress bars aside), containing every fragment."""
    lines = [line.split("\r")[-1] for line in stderr.splitlines()]
    lines = [line for line in lines if line.strip() and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for f in fragments:
        assert f in lines[0]
    return lines[0]


def vision_checkpoint(path, size: int = 32, cameras: int = 3, task: str | None = "gimbal-block", head: str = "direct"):
    """A train-vision checkpoint of a tiny, untrained IMPALA pose model (for --init-vision); returns the model."""
    import torch  # noqa: PLC0415

    from dexvision.vision.checkpoint import save_checkpoint  # noqa: PLC0415
    from dexvision.vision.model import PoseNet, PoseNetConfig  # noqa: PLC0415

    torch.manual_seed(1)
    cfg = PoseNetConfig(arch="impala", image_size=size, num_cameras=cameras, head_hidden=32, head=head)
    model = PoseNet(cfg)
    extra = {} if task is None else {"task": task}  # checkpoints from before the task was recorded lack it
    save_checkpoint(path, {"model_config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                           "model": model.state_dict(), "step": 1, **extra})
    return model


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
