"""train-policy's vision sub-model: its config, and the pretrained weights of `--init-vision`, checked
against what the environment renders (task, camera count, image size)."""

from __future__ import annotations

from dexvision.errors import UserError
from dexvision.policy.config import TrainPolicyConfig
from dexvision.vision.checkpoint import load_checkpoint as load_vision_checkpoint
from dexvision.vision.encoders import check_arch
from dexvision.vision.model import PoseNetConfig


def vision_config(cfg: TrainPolicyConfig, cameras: int) -> tuple[PoseNetConfig | None, dict | None]:
    """The vision sub-model's config, and the pretrained weights when --init-vision is given."""
    if cfg.obs != "pixels":
        if cfg.init_vision:
            raise UserError("--init-vision needs --obs pixels (a state policy has no vision sub-model)")
        return None, None
    if cfg.init_vision:
        ckpt = load_vision_checkpoint(cfg.init_vision)
        vision = PoseNetConfig(**ckpt["model_config"])
        check_vision_matches(cfg, ckpt, vision, cameras)
        return vision, ckpt["model"]
    check_arch(cfg.vision_arch)
    return PoseNetConfig(arch=cfg.vision_arch, image_size=cfg.image_size, num_cameras=cameras,
                         head_hidden=cfg.vision_head_hidden), None


def check_vision_matches(cfg: TrainPolicyConfig, ckpt: dict, vision: PoseNetConfig, cameras: int) -> None:
    """A pretrained encoder must have seen what the environment renders: the same task, camera count and
    image size (nothing is resized behind the user's back). Checkpoints from before the task was recorded
    are checked for cameras and size only."""
    task = ckpt.get("task")
    if task is not None and task != cfg.task:
        raise UserError(f"--init-vision {cfg.init_vision} was trained on {task} renders; this policy's task is "
                        f"{cfg.task}")
    if vision.num_cameras != cameras:
        raise UserError(f"--init-vision {cfg.init_vision} was trained on {vision.num_cameras} cameras; the "
                        f"environment renders {cameras}")
    if vision.image_size != cfg.image_size:
        raise UserError(f"--init-vision {cfg.init_vision} was trained on {vision.image_size} px images; the "
                        f"environment renders {cfg.image_size} px (set --image-size {vision.image_size})")
