"""Bytes per sample: what each shard encoding costs on disk, and what the leaner one costs in accuracy.

`size`: samples drawn once (hand-block, 128 px by default) and encoded every way, written
into in-memory tars as render-shards writes them: bytes per sample split into images,
pose.json and tar headers, and what 10M samples take. `accuracy`: the same samples (same
seed and indices: the images are identical before encoding) rendered into two datasets,
the default encoding and a leaner one, a pose model trained on each with the same steps,
and both evaluated on held-out renders of both encodings.

    python benchmarks/bytes.py size --samples 100
    python benchmarks/bytes.py accuracy --out /tmp/bytes --lean "--jpeg-quality 75 --jpeg-subsampling 420 --labels lean"
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

# (name, render-shards flags) of the encodings compared by `size`
VARIANTS = [
    ("jpg q95 4:4:4, full labels (default)", {}),
    ("jpg q95 4:4:4, lean labels", {"labels": "lean"}),
    ("jpg q90 4:2:0, lean labels", {"quality": 90, "subsampling": "420", "labels": "lean"}),
    ("jpg q75 4:2:0, lean labels", {"quality": 75, "subsampling": "420", "labels": "lean"}),
    ("jpg q50 4:2:0, lean labels", {"quality": 50, "subsampling": "420", "labels": "lean"}),
    ("png, full labels", {"fmt": "png"}),
]
TEN_MILLION = 10_000_000
BIN = Path(sys.executable).parent


def tar_bytes(samples: list[list[tuple[str, bytes]]]) -> int:
    """Size of the shard render-shards would write for these samples' files."""
    from dexvision.datasets.shards import _tar_info  # noqa: PLC0415

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for files in samples:
            for name, data in files:
                tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
    return len(buf.getvalue())


def size(args) -> None:
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("MUJOCO_GL", "egl")
    from dexvision.config import load_config  # noqa: PLC0415
    from dexvision.datasets.format import encode_sample  # noqa: PLC0415
    from dexvision.render.sample import DataConfig, SampleGenerator  # noqa: PLC0415

    cfg = load_config(DataConfig, None, [f"task={args.task}", f"render.image_size={args.image_size}"])
    gen = SampleGenerator(cfg)
    drawn = [gen.generate(i) for i in range(args.samples)]
    print(f"machine: {platform.node()} {platform.machine()}, python {sys.version.split()[0]}; {args.task}, "
          f"{args.image_size} px, {len(drawn[0].images)} cameras, {args.samples} samples")
    print("| encoding | images KB | pose.json KB | tar headers KB | KB/sample | 10M: GB | vs default |")
    print("|---|---|---|---|---|---|---|")
    base = None
    for name, v in VARIANTS:
        encoded = [encode_sample(s.label, s.images, v.get("fmt", "jpg"), v.get("quality", 95),
                                 v.get("subsampling", "444"), v.get("labels", "full")) for s in drawn]
        images = sum(len(d) for files in encoded for n, d in files if not n.endswith(".json")) / len(drawn)
        pose = sum(len(d) for files in encoded for n, d in files if n.endswith(".json")) / len(drawn)
        total = tar_bytes(encoded) / len(drawn)
        base = base or total
        print(f"| {name} | {images / 1e3:.1f} | {pose / 1e3:.2f} | {(total - images - pose) / 1e3:.1f} | "
              f"{total / 1e3:.1f} | {total * TEN_MILLION / 1e9:.0f} | {total / base:.2f}x |")


def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def accuracy(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    encodings = {"default": [], "lean": shlex.split(args.lean)}
    common = ["--task", args.task, "--image-size", str(args.image_size), "--shard-size", "500"]
    rows = {}
    for name, flags in encodings.items():
        for split, n, seed in (("train", args.train, 0), ("test", args.test, 1)):
            ds = out / f"{name}-{split}"
            run([str(BIN / "render-shards"), "--n", str(n), "--seed", str(seed), "--out", str(ds), *common, *flags],
                log)
        manifest = json.loads((out / f"{name}-train" / "dataset.json").read_text())
        rows[name] = {"bytes_per_sample": manifest["bytes_written"] / manifest["samples_written"]}
    for name in encodings:
        run_dir = out / f"vision-{name}-{args.steps}"
        if not (run_dir / "metrics.json").exists():
            wall = run([str(BIN / "train-vision"), "--data", str(out / f"{name}-train"), "--val-data",
                        str(out / f"{name}-test"), "--arch", args.arch, "--steps", str(args.steps), "--batch-size",
                        str(args.batch_size), "--out", str(run_dir), "--set", f"val_every={args.steps}"], log)
            rows[name]["train_s"] = wall
        for test in encodings:
            result = out / f"eval-{name}-{args.steps}-on-{test}.json"
            run([str(BIN / "evaluate-vision"), "--checkpoint", str(run_dir / "checkpoint.pt"), "--data",
                 str(out / f"{test}-test"), "--out", str(result)], log)
            rows[name][f"on_{test}"] = json.loads(result.read_text())["metrics"]
    (out / f"result-{args.steps}.json").write_text(json.dumps(rows, indent=1))
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {args.task} {args.image_size} px, "
          f"{args.train} training samples, {args.arch}, {args.steps} steps x {args.batch_size}; lean = {args.lean}")
    print("| trained on | KB/sample | tested on default: mm / deg (median) | tested on lean: mm / deg (median) |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        cells = [f"{r[f'on_{t}']['position_mm/median']:.2f} / {r[f'on_{t}']['orientation_deg/median']:.2f}"
                 for t in encodings]
        print(f"| {name} | {r['bytes_per_sample'] / 1e3:.1f} | " + " | ".join(cells) + " |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="part", required=True)
    s = sub.add_parser("size")
    s.add_argument("--task", default="hand-block")
    s.add_argument("--image-size", type=int, default=128)
    s.add_argument("--samples", type=int, default=100)
    a = sub.add_parser("accuracy")
    a.add_argument("--out", required=True)
    a.add_argument("--task", default="hand-block")
    a.add_argument("--image-size", type=int, default=64)
    a.add_argument("--train", type=int, default=8000)
    a.add_argument("--test", type=int, default=1000)
    a.add_argument("--arch", default="impala")
    a.add_argument("--steps", type=int, default=700)
    a.add_argument("--batch-size", type=int, default=64)
    a.add_argument("--lean", default="--jpeg-quality 75 --jpeg-subsampling 420 --labels lean")
    args = p.parse_args()
    size(args) if args.part == "size" else accuracy(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
