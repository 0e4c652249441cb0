"""Input pipeline vs model: can the loader feed train-vision without making it wait?

Measures, on the same machine and dataset:
  1. loader alone: images/s the WebDataset loader delivers (decode + collate), per worker count;
  2. model alone: images/s one training step consumes (forward + backward + AdamW) on
     tensors already in memory;
  3. both together: a real train-vision run, and the fraction of step time spent
     waiting for data (perf/data_wait_fraction). Target: at most 5%.

    python benchmarks/vision_input.py --data data/gimbal-64 --arch impala
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from dexvision.datasets.loader import make_loader
from dexvision.datasets.shards import load_manifest
from dexvision.vision.model import PoseNet, PoseNetConfig, pose_loss
from dexvision.vision.train import TrainVisionConfig, train


def loader_rate(data: str, batch_size: int, workers: int, batches: int) -> float:
    loader = make_loader(data, batch_size, num_workers=workers, shuffle_buffer=500, resampled=True)
    it = iter(loader)
    for _ in range(3):
        next(it)
    start = time.perf_counter()
    images = 0
    for _ in range(batches):
        b = next(it)
        images += b["images"].shape[0] * b["images"].shape[1]
    return images / (time.perf_counter() - start)


def model_rate(arch: str, size: int, cams: int, batch_size: int, steps: int) -> float:
    model = PoseNet(PoseNetConfig(arch=arch, image_size=size, num_cameras=cams))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randint(0, 256, (batch_size, cams, 3, size, size), dtype=torch.uint8)
    pos, quat = torch.zeros(batch_size, 3), torch.tensor([[1.0, 0, 0, 0]]).repeat(batch_size, 1)
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        loss = pose_loss(model(images), pos, quat)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch_size * cams / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--arch", default="impala")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=150)
    args = p.parse_args()
    _, spec = load_manifest(Path(args.data))
    size, cams = spec.data.render.image_size, spec.data.render.randomization.cameras.count
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; data {args.data} ({size} px, {cams} cameras)")
    for w in args.workers:
        print(f"loader alone, {w} worker(s): {loader_rate(args.data, args.batch_size, w, 40):.0f} images/s")
    print(f"model alone ({args.arch}, batch {args.batch_size}): "
          f"{model_rate(args.arch, size, cams, args.batch_size, 30):.0f} images/s")
    for w in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainVisionConfig(data=args.data, arch=args.arch, batch_size=args.batch_size, steps=args.steps,
                                    num_workers=w, val_every=10**9, checkpoint_every=10**9, val_samples=256,
                                    out=str(Path(tmp) / "run"), log_every_s=1e9)
            result = train(cfg)
            print(f"train-vision, {w} loader worker(s): {result['images_per_s']:.0f} images/s, "
                  f"data wait {100 * result['data_wait_fraction']:.1f}% of step time "
                  f"({result['steps']} steps, {result['wall_time_s']:.0f} s)")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
