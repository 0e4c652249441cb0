"""render-shards soak: throughput and each worker's memory over a long run (default 32 minutes).

Runs the real command (`render-shards`, a dataset far larger than the run will finish) in a
subprocess, and every `--interval` seconds records how many samples the finished shards hold
(their records in DIR/.records) and the resident memory of the command and of each of its
render processes. At the end it stops the command, prints a table per window and the two
drift figures (throughput of the last 10 minutes / the first 10; each worker's median RSS over
the last 10 minutes / over the first 10), and writes the series as JSON and a plot.

    python benchmarks/soak.py --minutes 32 --out /tmp/soak --plot docs/soak.png --json /tmp/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil


def finished_samples(records: Path, seen: dict[str, int]) -> int:
    """Samples in the shards whose record exists (records are written once a shard is complete)."""
    if records.is_dir():
        for path in records.glob("shard-*.json"):
            if path.name not in seen:
                try:
                    seen[path.name] = json.loads(path.read_text())["count"]
                except (OSError, ValueError, KeyError):
                    pass  # being renamed into place: counted on the next poll
    return sum(seen.values())


def render_workers(proc: psutil.Process) -> list[psutil.Process]:
    """The command's render processes (spawned pool workers; not multiprocessing's resource tracker)."""
    out = []
    for child in proc.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" not in cmd:
            out.append(child)
    return out


def window_rate(series: list[dict], t0: float, t1: float) -> float:
    """Samples/s between the first poll at or after t0 and the last poll at or before t1."""
    inside = [s for s in series if t0 <= s["t"] <= t1]
    if len(inside) < 2:
        return float("nan")
    return (inside[-1]["samples"] - inside[0]["samples"]) / (inside[-1]["t"] - inside[0]["t"])


def median_rss(series: list[dict], t0: float, t1: float) -> dict[str, float]:
    """Per worker (by start order), the median RSS in MB over polls within [t0, t1]."""
    values: dict[str, list[float]] = {}
    for s in series:
        if t0 <= s["t"] <= t1:
            for name, mb in s["workers_mb"].items():
                values.setdefault(name, []).append(mb)
    return {k: statistics.median(v) for k, v in sorted(values.items())}


def plot(series: list[dict], windows: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    end = series[-1]["t"]
    minutes = [(a, min(a + 60.0, end)) for a in range(0, int(end), 60) if min(a + 60.0, end) - a >= 30]
    ax1.plot([(a + b) / 120 for a, b in minutes], [window_rate(series, a, b) for a, b in minutes], ".-",
             color="C0", label="per minute")
    ax1.hlines([w["samples_per_s"] for w in windows], [w["start_min"] for w in windows],
               [w["end_min"] for w in windows], color="C3", label="per window")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_ylabel("samples/s")
    ax1.set_ylim(bottom=0)
    ax1.grid(alpha=0.3)
    names = sorted({k for s in series for k in s["workers_mb"]})
    for i, name in enumerate(names):
        pts = [(s["t"] / 60, s["workers_mb"][name]) for s in series if name in s["workers_mb"]]
        ax2.plot(*zip(*pts), color=f"C{i + 1}", label=name)
    ax2.plot([s["t"] / 60 for s in series], [s["main_mb"] for s in series], color="C0", label="render-shards (main)")
    ax2.set_ylabel("RSS (MB)")
    ax2.set_xlabel("minutes")
    ax2.set_ylim(bottom=0)
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right", fontsize=8)
    fig.suptitle("render-shards soak: throughput and resident memory")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="hand-block")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=100)
    p.add_argument("--minutes", type=float, default=32.0)
    p.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    p.add_argument("--window", type=float, default=5.0, help="minutes per table row")
    p.add_argument("--out", help="dataset directory (must not exist)")
    p.add_argument("--keep", action="store_true", help="keep the rendered dataset (default: delete it)")
    p.add_argument("--json")
    p.add_argument("--plot")
    p.add_argument("--replot", metavar="JSON", help="only redraw --plot from an earlier run's --json")
    args = p.parse_args()
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        plot(saved["series"], saved["windows"], Path(args.plot))
        return 0
    if not args.out:
        p.error("--out is required")
    out = Path(args.out)
    if out.exists():
        p.error(f"{out} exists; the soak needs a new directory")
    cmd = [sys.executable, "-m", "dexvision.datasets.render_shards", "--n", "10M", "--task", args.task,
           "--image-size", str(args.image_size), "--shard-size", str(args.shard_size),
           "--workers", str(args.workers), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    main_proc = psutil.Process(proc.pid)
    seen: dict[str, int] = {}
    series: list[dict] = []
    start = time.monotonic()
    names: dict[int, str] = {}
    try:
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            if proc.poll() is not None:
                raise SystemExit(f"render-shards exited early with {proc.returncode}")
            workers = {}
            for w in render_workers(main_proc):
                name = names.setdefault(w.pid, f"worker {len(names)}")
                try:
                    workers[name] = w.memory_info().rss / 1e6
                except psutil.Error:
                    pass
            series.append({"t": elapsed, "samples": finished_samples(out / ".records", seen),
                           "main_mb": main_proc.memory_info().rss / 1e6, "workers_mb": workers})
            print(f"\r{elapsed / 60:5.1f} min  {series[-1]['samples']:,} samples  "
                  + "  ".join(f"{k} {v:.0f} MB" for k, v in workers.items()), end="", file=sys.stderr, flush=True)
            time.sleep(args.interval)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        print(file=sys.stderr)
    total_min = series[-1]["t"] / 60
    windows = []
    edges = [i * args.window for i in range(int(total_min // args.window) + 1)] + [total_min]
    for a, b in zip(edges, edges[1:]):
        if b - a < 0.5:
            continue
        windows.append({"start_min": a, "end_min": b, "samples_per_s": window_rate(series, a * 60, b * 60),
                        "workers_mb": median_rss(series, a * 60, b * 60)})
    landed = next(s["t"] for s in series if s["samples"] > 0)  # start-up excluded from the first window
    first, last = (landed, landed + 600.0), (series[-1]["t"] - 600.0, series[-1]["t"])
    rate_first, rate_last = window_rate(series, *first), window_rate(series, *last)
    rss_first, rss_last = median_rss(series, *first), median_rss(series, *last)
    growth = {k: rss_last[k] / rss_first[k] - 1 for k in rss_first if k in rss_last}
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"command: {' '.join(cmd[2:])}")
    print("| minutes | samples/s | " + " | ".join(f"{k} RSS MB" for k in sorted(growth)) + " |")
    print("|---|---|" + "---|" * len(growth))
    for w in windows:
        print(f"| {w['start_min']:.0f}-{w['end_min']:.0f} | {w['samples_per_s']:.1f} | "
              + " | ".join(f"{w['workers_mb'].get(k, float('nan')):.0f}" for k in sorted(growth)) + " |")
    print(f"samples: {series[-1]['samples']:,} in {total_min:.1f} min")
    print(f"throughput, last 10 min / first 10 min: {rate_last:.1f} / {rate_first:.1f} = {rate_last / rate_first:.3f}")
    for k in sorted(growth):
        print(f"{k}: median RSS last 10 min / first 10 min: {rss_last[k]:.0f} / {rss_first[k]:.0f} MB "
              f"({100 * growth[k]:+.1f}%)")
    result = {"command": cmd[2:], "series": series, "windows": windows, "rate_first": rate_first,
              "rate_last": rate_last, "rss_first": rss_first, "rss_last": rss_last, "rss_growth": growth}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(series, windows, Path(args.plot))
    if not args.keep:
        import shutil  # noqa: PLC0415

        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
