"""Pose-model evaluation shared by train-vision (validation) and evaluate-vision: errors over a shard set."""

from __future__ import annotations

import tarfile

import torch

from dexvision.datasets.loader import make_loader
from dexvision.errors import UserError
from dexvision.vision.model import PoseNet, pose_errors, summarize


def next_batch(iterator, data: str) -> dict:
    try:
        return next(iterator)
    except (tarfile.TarError, OSError, ValueError, KeyError, RuntimeError) as e:
        # Errors from DataLoader workers carry the worker's traceback: its last line names the cause.
        lines = [line for line in str(e).strip().splitlines() if line.strip()] or [type(e).__name__]
        cause = lines[-1].strip()
        raise UserError(f"reading the data failed ({cause[:200]}); check it with verify-shards {data}") from None


@torch.no_grad()
def evaluate(model: PoseNet, urls: list[str], batch_size: int, num_workers: int, device: torch.device,
             max_samples: int = 0, data_name: str = "") -> dict[str, float]:
    """Error statistics of `model` over the samples of `urls` (all of them, or the first max_samples)."""
    model.eval()
    loader = make_loader(urls, batch_size, num_workers=num_workers, shuffle_buffer=0, split_by_node=False)
    errors: dict[str, list] = {"position_mm": [], "orientation_deg": []}
    seen = 0
    iterator = iter(loader)
    while True:
        try:
            batch = next_batch(iterator, data_name or urls[0])
        except StopIteration:
            break
        pred = model(batch["images"].to(device))
        for k, v in pose_errors(pred, batch["position"].to(device), batch["quaternion"].to(device)).items():
            errors[k].append(v.float().cpu())
        seen += len(batch["index"])
        if max_samples and seen >= max_samples:
            break
    model.train()
    if not seen:
        raise UserError("no validation samples could be read")
    stats = summarize({k: torch.cat(v)[: max_samples or None] for k, v in errors.items()})
    stats["samples"] = float(min(seen, max_samples) if max_samples else seen)
    return stats
