"""Pose-model evaluation shared by train-vision (validation) and evaluate-vision: errors over a shard set."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import torch

from dexvision.datasets.loader import make_loader
from dexvision.errors import UserError
from dexvision.vision.model import PoseNet, cameras_of, summarize
from dexvision.vision.rotations import exp_so3


_OBJECT_REPR = re.compile(r"<_io\.\w+ name='([^']*)'[^>]*>|<[\w.]+ object at 0x[0-9a-f]+>")


def read_error_cause(e: BaseException) -> str:
    """What a reading error says, in words: the last line of a DataLoader worker's traceback, the text parts of
    an exception whose args webdataset extended with its stream and URL (never a Python tuple or object repr)."""
    args = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], tuple) else e.args
    if isinstance(e, OSError) and e.strerror:  # errno and strerror are its first args; str() adds the file name
        text = "; ".join([str(e)] + [str(a) for a in args[2:] if isinstance(a, (str, Path)) and str(a).strip()])
    elif len(args) > 1:
        text = "; ".join(str(a) for a in args if isinstance(a, (str, int, float, Path)) and str(a).strip())
    else:
        text = str(e)
    lines = [line for line in text.strip().splitlines() if line.strip()] or [type(e).__name__]
    cause = _OBJECT_REPR.sub(lambda m: m.group(1) or "a file", lines[-1].strip())
    return cause[:200]


def next_batch(iterator, data: str) -> dict:
    try:
        return next(iterator)
    except (tarfile.TarError, OSError, ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"reading the data failed ({read_error_cause(e)}); check it with verify-shards {data}"
                        ) from None


def perturb_cameras(batch: dict, error: tuple[float, float], generator: torch.Generator) -> dict:
    """The batch with each camera's calibration wrong by `error` = (metres, radians): its centre moved by that
    distance and its orientation turned by that angle, each in a random direction (the images are unchanged:
    what a keypoint head's solve is told about the cameras is off, as a real rig's calibration would be)."""
    distance, angle = error
    R, t = batch["cam_R"], batch["cam_t"]
    shape = R.shape[:-2] + (3,)
    unit = lambda: torch.nn.functional.normalize(torch.randn(shape, generator=generator, dtype=R.dtype), dim=-1)  # noqa: E731
    centre = -torch.einsum("...ji,...j->...i", R, t) + distance * unit()
    R_wrong = R @ exp_so3(angle * unit())  # turned about an axis in the world frame
    return {**batch, "cam_R": R_wrong, "cam_t": -torch.einsum("...ij,...j->...i", R_wrong, centre)}


@torch.no_grad()
def evaluate(model: PoseNet, urls: list[str], batch_size: int, num_workers: int, device: torch.device,
             max_samples: int = 0, data_name: str = "", camera_error: tuple[float, float] | None = None,
             seed: int = 0) -> dict[str, float]:
    """Error statistics of `model` over the samples of `urls` (all of them, or the first max_samples); with
    `camera_error` (metres, radians), a keypoint head's solve is given cameras miscalibrated by that much."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    loader = make_loader(urls, batch_size, num_workers=num_workers, shuffle_buffer=0, split_by_node=False)
    errors: dict[str, list] = {}
    seen = 0
    iterator = iter(loader)
    while True:
        try:
            batch = next_batch(iterator, data_name or urls[0])
        except StopIteration:
            break
        told = perturb_cameras(batch, camera_error, generator) if camera_error else batch
        pred = model(batch["images"].to(device), cameras_of(told, device))
        for k, v in model.errors(pred, model.truth(batch)).items():  # against the true pose and the true projections
            errors.setdefault(k, []).append(v.float().cpu())
        seen += len(batch["index"])
        if max_samples and seen >= max_samples:
            break
    model.train()
    if not seen:
        raise UserError("no validation samples could be read")
    stats = summarize({k: torch.cat(v)[: max_samples or None] for k, v in errors.items()})
    stats["samples"] = float(min(seen, max_samples) if max_samples else seen)
    return stats
