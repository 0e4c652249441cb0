"""The training-side reader: a WebDataset pipeline from shards to batches of tensors.

    loader = make_loader("data/hand-10M", batch_size=64, num_workers=4)
    for batch in loader:
        batch["images"]      # uint8 (B, K, 3, H, W): K cameras
        batch["position"]    # float32 (B, 3), metres, world frame
        batch["quaternion"]  # float32 (B, 4), [w, x, y, z]
        batch["index"]       # int64 (B,), global sample index
        batch["cam_K"], batch["cam_R"], batch["cam_t"]  # float64 (B, K, 3, 3), (B, K, 3, 3), (B, K, 3): each
                             # camera's calibration (OpenCV, world -> camera), as in pose.json
        batch["cam_size"]    # float64 (B, K, 2): (width, height) the images were rendered at

Shards are split by node (torch.distributed rank, or RANK/WORLD_SIZE from torchrun)
and then by DataLoader worker, so every process of a `torchrun` job reads its own
shards with no code change; samples are shuffled in a buffer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from dexvision.datasets.format import decode_image
from dexvision.datasets.shards import load_manifest
from dexvision.errors import UserError


def shard_urls(source: str | Path | list[str], shards: range | None = None) -> list[str]:
    """Shard paths of a dataset directory (written shards, in order), or the given list/pattern."""
    if isinstance(source, list):
        return source
    path = Path(source)
    if path.is_dir():
        manifest, _ = load_manifest(path)
        records = sorted(manifest["shards"], key=lambda r: r["id"])
        if shards is not None:
            records = [r for r in records if r["id"] in shards]
        if not records:
            raise UserError(f"{path} has no finished shards" + (f" in {shards.start}:{shards.stop}" if shards else ""))
        return [str(path / r["shard"]) for r in records]
    if "{" in str(source) or path.suffix == ".tar":
        return list(wds.shardlists.expand_urls(str(source)))
    raise UserError(f"no dataset at {source}: give a directory made by render-shards or shard paths")


def decode(sample: dict) -> dict:
    """Raw WebDataset sample (bytes per member) -> tensors."""
    cams = sorted((k for k in sample if k.startswith("cam")), key=lambda k: int(k[3:].split(".")[0]))
    if not cams or "pose.json" not in sample:
        raise ValueError(f"sample {sample.get('__key__')} lacks images or pose.json")
    images = np.stack([decode_image(sample[k]) for k in cams]).transpose(0, 3, 1, 2)
    pose = json.loads(sample["pose.json"])
    cameras = pose["cameras"]
    return {
        "images": torch.from_numpy(np.ascontiguousarray(images)),
        "position": torch.tensor(pose["position"], dtype=torch.float32),
        "quaternion": torch.tensor(pose["quaternion"], dtype=torch.float32),
        "index": torch.tensor(pose["index"], dtype=torch.int64),
        **{f"cam_{k}": torch.tensor([cam[k] for cam in cameras], dtype=torch.float64) for k in ("K", "R", "t")},
        "cam_size": torch.tensor([[cam["width"], cam["height"]] for cam in cameras], dtype=torch.float64),
    }


def collate(samples: list[dict]) -> dict:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0] if not k.startswith("__")}


def _all_shards(src, group=None):
    yield from src


def make_dataset(source, shuffle_buffer: int = 1000, seed: int = 0, resampled: bool = False,
                 shards: range | None = None, split_by_node: bool = True,
                 transform: Callable[[dict], dict] | None = None) -> wds.WebDataset:
    """Decoded samples, split by node then by worker, shuffled (shards, then a sample buffer).

    `resampled=True` gives an endless stream that draws shards at random (with
    replacement) in every worker: what multi-process training wants, since ranks
    then never run out of data at different times. `split_by_node=False` makes every
    process read every shard (e.g. rank-0 validation). `transform` maps each decoded sample in the
    loader's worker (e.g. `vision.augment.Augment`).
    """
    urls = shard_urls(source, shards)
    dataset = wds.WebDataset(
        urls,
        resampled=resampled,
        shardshuffle=(len(urls) if shuffle_buffer > 0 else False) if not resampled else False,
        nodesplitter=wds.split_by_node if split_by_node else _all_shards,
        workersplitter=wds.split_by_worker,
        empty_check=False,
        seed=seed,
    )
    if shuffle_buffer > 0:
        dataset = dataset.shuffle(shuffle_buffer, initial=min(shuffle_buffer, 100))
    dataset = dataset.map(decode)
    return dataset.map(transform) if transform is not None else dataset


def make_loader(source, batch_size: int, num_workers: int = 2, shuffle_buffer: int = 1000, seed: int = 0,
                resampled: bool = False, shards: range | None = None, partial: bool = True,
                split_by_node: bool = True, transform: Callable[[dict], dict] | None = None) -> wds.WebLoader:
    """Batches of tensors (see the module docstring) from a dataset directory or shard list."""
    dataset = make_dataset(source, shuffle_buffer, seed, resampled, shards, split_by_node, transform)
    return web_loader(dataset.batched(batch_size, collation_fn=collate, partial=partial), num_workers)


def web_loader(batches, num_workers: int) -> wds.WebLoader:
    """A loader of an already batched pipeline, read by `num_workers` persistent processes."""
    return wds.WebLoader(batches, batch_size=None, num_workers=num_workers,
                         persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)
