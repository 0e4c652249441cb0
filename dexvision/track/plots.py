"""Training curves of tracked runs as PNG: `plot-runs RUN_DIR ... --out curves.png`.

    plot-runs runs/gimbal-impala runs/hand-impala --out curves.png
    plot-runs runs/a runs/b --metrics val/orientation_deg/median losses/total --x minutes --out cmp.png

One panel per metric, one line per run (labelled by run name), against optimizer
steps or wall-clock minutes since the run's first logged point.
"""

from __future__ import annotations

from pathlib import Path

from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.files import check_writable, write_output
from dexvision.track.run import read_json, read_metrics

DEFAULT_METRICS = ("val/position_mm/median", "val/orientation_deg/median", "losses/total")


def _series(rows: list[dict], metric: str, x: str) -> tuple[list[float], list[float]]:
    t0 = rows[0]["time"] if rows else 0.0
    xs, ys = [], []
    for row in rows:
        if metric in row:
            xs.append(row["step"] if x == "steps" else (row["time"] - t0) / 60.0)
            ys.append(row[metric])
    return xs, ys


def plot_runs(run_dirs: list[Path], metrics: list[str], out: Path, x: str = "steps", log_y: bool = True) -> None:
    import matplotlib  # noqa: PLC0415 - plotting is optional work; keep imports light elsewhere

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    runs = []
    for d in run_dirs:
        rows = read_metrics(d)
        if not rows:
            path = Path(d) / "metrics.jsonl"
            if path.is_file():
                raise UserError(f"{path} holds no metrics yet (the run logged nothing before it stopped, or has "
                                "just started): plot it once it has logged")
            raise UserError(f"{d} has no metrics.jsonl (not a tracked run?)")
        meta = read_json(Path(d) / "run.json", "run record") or {}
        name = meta.get("name", Path(d).name)
        runs.append((name, rows))
    logged = {key for _, rows in runs for row in rows for key in row} - {"step", "time"}
    for metric in metrics:
        if metric not in logged:
            known = ", ".join(sorted(logged)[:12]) + (", ..." if len(logged) > 12 else "")
            raise UserError(f"--metrics {metric}: no run logged it (they logged: {known or 'nothing'})")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, rows in runs:
            xs, ys = _series(rows, metric, x)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("step (vision: optimizer steps; policy: frames)" if x == "steps" else "minutes")
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    try:
        write_output(out, lambda path: fig.savefig(path, dpi=110), "plot")
    finally:
        plt.close(fig)


@cli
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="plot-runs", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (hold metrics.jsonl)")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    p.add_argument("--x", choices=("steps", "minutes"), default="steps")
    p.add_argument("--linear", action="store_true", help="linear y axis (default log)")
    p.add_argument("--out", default="curves.png")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got {out}")
    check_writable(out, "--out")
    plot_runs([Path(r) for r in args.runs], args.metrics, out, args.x, not args.linear)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
