"""Shift tables of several models side by side (issue 15): one Markdown table and one PNG.

Each input is a `shift.json` written by `evaluate-vision` with several `--data` sets, labelled
on the command line; the sets are matched by name. For each condition the table gives every
model's median orientation and position errors and the orientation ratio to that model's own
in-distribution reference; the plot shows the orientation ratios against the 1.25x target.

    python benchmarks/shift_compare.py before=runs/shift/before/shift.json \\
        after=runs/shift/after/shift.json --out docs/shift-before-after.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TARGET = 1.25


def load(specs: list[str]) -> dict[str, dict]:
    tables = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"give LABEL=PATH, got {spec}")
        tables[label] = json.loads(Path(path).read_text())
    return tables


def rows(tables: dict[str, dict]) -> list[str]:
    names = [s["name"] for s in next(iter(tables.values()))["sets"]]
    head = "| condition | " + " | ".join(f"{k}: ori deg / pos mm (ori ratio)" for k in tables) + " |"
    lines = [head, "|---" * (len(tables) + 1) + "|"]
    for name in names:
        cells = []
        for table in tables.values():
            s = next(s for s in table["sets"] if s["name"] == name)
            m, r = s["metrics"], s["ratio"]["orientation_deg/median"]
            cells.append(f"{m['orientation_deg/median']:.2f} / {m['position_mm/median']:.2f} ({r:.2f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    worst = "; ".join(f"{k}: {t['worst']['name']} {t['worst']['orientation_deg/median']:.2f}x"
                      for k, t in tables.items())
    lines.append(f"\nWorst condition per model: {worst}")
    return lines


def plot(tables: dict[str, dict], out: Path) -> None:
    names = [s["name"] for s in next(iter(tables.values()))["sets"]]
    x = np.arange(len(names))
    width = 0.8 / len(tables)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, (label, table) in enumerate(tables.items()):
        ratios = [next(s for s in table["sets"] if s["name"] == n)["ratio"]["orientation_deg/median"] for n in names]
        bars = ax.bar(x + (i - (len(tables) - 1) / 2) * width, ratios, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(TARGET, color="k", ls="--", lw=1, label=f"target {TARGET}x")
    ax.set_xticks(x, names)
    ax.set_ylabel("median orientation error / reference's")
    ax.set_title("Pose error under conditions outside the training randomization (hand-block, 64 px)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="+", help="LABEL=path/to/shift.json")
    p.add_argument("--out", type=Path, help="PNG to write")
    args = p.parse_args()
    tables = load(args.tables)
    print("\n".join(rows(tables)))
    if args.out:
        plot(tables, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
