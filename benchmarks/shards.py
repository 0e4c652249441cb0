"""render-shards end to end: samples/s with 1 and 2 worker processes, bytes per sample, 10M projection.

Each configuration runs the real command (`render-shards` in a subprocess, state
sampling, rendering, JPEG encoding, tar writing and fsync included) into a fresh
directory; the wall time includes process start-up, so the rates are conservative.

    python benchmarks/shards.py                              # hand-block, 64 and 128 px, 1 and 2 workers
    python benchmarks/shards.py --task gimbal-block --samples-per-worker 600
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEN_MILLION = 10_000_000


def run(task: str, size: int, workers: int, n: int, shard_size: int, fmt: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        cmd = [sys.executable, "-m", "dexvision.datasets.render_shards", "--n", str(n), "--task", task,
               "--image-size", str(size), "--shard-size", str(shard_size), "--workers", str(workers),
               "--format", fmt, "--out", str(out / "ds")]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        manifest = json.loads((out / "ds" / "dataset.json").read_text())
        return {"task": task, "size": size, "workers": workers, "n": n, "wall_s": wall,
                "samples_per_s": n / wall, "bytes_per_sample": manifest["bytes_written"] / n}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="hand-block")
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    p.add_argument("--samples-per-worker", type=int, default=400)
    p.add_argument("--shard-size", type=int, default=100)
    p.add_argument("--format", default="jpg")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()
    rows = []
    for size in args.sizes:
        for w in args.workers:
            rows.append(run(args.task, size, w, args.samples_per_worker * w, args.shard_size, args.format))
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print("| task | size | workers | samples | wall s | samples/s | scaling | KB/sample | 10M: days | 10M: GB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(b for b in rows if b["size"] == r["size"] and b["workers"] == min(args.workers))
        scaling = r["samples_per_s"] / base["samples_per_s"]
        days = TEN_MILLION / r["samples_per_s"] / 86400
        gb = TEN_MILLION * r["bytes_per_sample"] / 1e9
        print(f"| {r['task']} | {r['size']} | {r['workers']} | {r['n']} | {r['wall_s']:.1f} | "
              f"{r['samples_per_s']:.1f} | {scaling:.2f}x | {r['bytes_per_sample'] / 1000:.1f} | {days:.1f} | {gb:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
