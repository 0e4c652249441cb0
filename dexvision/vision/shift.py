"""The shift table: a pose model's errors on several test sets, each set against an in-distribution reference.

    table = shift_table(results, reference="reference")   # results: name, data, metrics (and spec) per set
    write_table(table, Path("shift.json"))                 # shift.json, shift.md, shift.csv, shift.png

A set's ratio is its error divided by the reference set's (same statistic): 1.25 on
`orientation_deg/median` means the model's median orientation error is 25% worse
under that condition than on held-out renders from its training distribution.
`worst` names the set with the highest orientation ratio.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from dexvision.errors import UserError

RATIOS = ("position_mm/median", "position_mm/mean", "orientation_deg/median", "orientation_deg/mean")
WORST_BY = "orientation_deg/median"
_RANDOMIZATION = "render.randomization."


def differences(reference: dict, other: dict, prefix: str = "") -> list[str]:
    """`key: value` for each data-config field where `other` differs from `reference` (seed aside), with the
    randomization's fields named from their section (`lighting.intensity: [0.15, 0.4]`)."""
    out = []
    for key in sorted(set(reference) | set(other)):
        path = f"{prefix}{key}"
        a, b = reference.get(key), other.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{path}.")
        elif a != b and path != "seed":
            out.append(f"{path.removeprefix(_RANDOMIZATION)}: {json.dumps(b)}")
    return out


def shift_table(results: list[dict], reference: str) -> dict:
    """Rows of `results` (each `name`, `data`, `metrics`, optionally `spec`: the set's data config) with
    their ratios to the set named `reference`, and the worst set by orientation ratio."""
    by_name = {r["name"]: r for r in results}
    if reference not in by_name:
        raise UserError(f"the reference set '{reference}' is not among the evaluated sets ({', '.join(by_name)})")
    ref = by_name[reference]
    rows = []
    for r in results:
        ratio = {k: r["metrics"][k] / ref["metrics"][k] if ref["metrics"][k] > 0 else float("inf") for k in RATIOS}
        differs = differences(ref["spec"], r["spec"]) if "spec" in r and "spec" in ref else []
        rows.append({"name": r["name"], "data": r["data"], "samples": int(r["metrics"]["samples"]),
                     "differs": differs, "metrics": r["metrics"], "ratio": ratio})
    others = [row for row in rows if row["name"] != reference]
    worst = max(others, key=lambda row: row["ratio"][WORST_BY]) if others else None
    return {"reference": reference, "sets": rows,
            "worst": {"name": worst["name"], WORST_BY: worst["ratio"][WORST_BY]} if worst else None}


_COLUMNS = [("set", None), ("samples", None), ("pos mm median", "position_mm/median"),
            ("pos mm mean", "position_mm/mean"), ("ori deg median", "orientation_deg/median"),
            ("ori deg mean", "orientation_deg/mean"), ("pos ratio", "position_mm/median"),
            ("ori ratio", "orientation_deg/median")]


def _cells(row: dict) -> list[str]:
    values = [row["name"], str(row["samples"])]
    values += [f"{row['metrics'][key]:.2f}" for _, key in _COLUMNS[2:6]]
    values += [f"{row['ratio'][key]:.2f}x" for _, key in _COLUMNS[6:]]
    return values


def markdown_table(table: dict) -> str:
    """The table in Markdown: one row per set (the reference marked), ratios of the medians, what differs."""
    header = [name for name, _ in _COLUMNS] + ["differs from the reference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["sets"]:
        cells = _cells(row)
        if row["name"] == table["reference"]:
            cells[0] += " (reference)"
        lines.append("| " + " | ".join(cells + ["; ".join(row["differs"]) or "-"]) + " |")
    if table["worst"]:
        worst = table["worst"]
        lines.append(f"\nWorst condition: {worst['name']}, median orientation error {worst[WORST_BY]:.2f}x "
                     f"the reference's.")
    return "\n".join(lines) + "\n"


def csv_table(table: dict) -> str:
    """The table as CSV: every statistic of every set, and its ratios to the reference."""
    stats = sorted(table["sets"][0]["metrics"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["set", "data", "reference", *stats, *[f"ratio {k}" for k in RATIOS], "differs"])
    for row in table["sets"]:
        writer.writerow([row["name"], row["data"], row["name"] == table["reference"],
                         *[row["metrics"][k] for k in stats], *[row["ratio"][k] for k in RATIOS],
                         "; ".join(row["differs"])])
    return buf.getvalue()


def plot_table(table: dict, out: Path) -> None:
    """Bars of the median position and orientation error per set (mean as a dot), each labelled with its
    ratio to the reference (grey bar)."""
    import matplotlib  # noqa: PLC0415 - plotting only here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = table["sets"]
    names = [row["name"] for row in rows]
    colours = ["0.6" if n == table["reference"] else "tab:orange" for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.3 * len(rows) + 2.5), 3.6))
    for ax, (metric, title) in zip(axes, [("position_mm", "position error (mm)"),
                                          ("orientation_deg", "orientation error (deg)")]):
        medians = [row["metrics"][f"{metric}/median"] for row in rows]
        bars = ax.bar(names, medians, color=colours)
        ax.plot(names, [row["metrics"][f"{metric}/mean"] for row in rows], "k.", label="mean")
        for bar, row in zip(bars, rows):
            ax.annotate(f"{row['ratio'][f'{metric}/median']:.2f}x", (bar.get_x() + bar.get_width() / 2,
                        bar.get_height()), ha="center", va="bottom", fontsize=8)
        ax.set_title(f"median {title}", fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_table(table: dict, out: Path) -> list[Path]:
    """Write the table beside `out` (a .json path): out.json, and out.md, out.csv, out.png of the same stem."""
    paths = [out.with_suffix(s) for s in (".json", ".md", ".csv", ".png")]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        paths[0].write_text(json.dumps(table, indent=1) + "\n")
        paths[1].write_text(markdown_table(table))
        paths[2].write_text(csv_table(table))
        plot_table(table, paths[3])
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    return paths
