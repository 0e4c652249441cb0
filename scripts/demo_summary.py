"""The demo's closing table: each stage, what it wrote and where, its figure and its time.

Usage: python scripts/demo_summary.py OUT (the directory scripts/demo.sh wrote). Prints the table, writes it to
OUT/summary.md and the figures to OUT/summary.json, and says whether the demo's two targets were met: the pose
model at most 20 deg median orientation error on its test set, the pixel student at least half the teacher's
greedy successes per episode.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dexvision.track.stats import mean_ci

POSE_TARGET_DEG = 20.0
STUDENT_TARGET_FRACTION = 0.5


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"error: {path} is missing: run scripts/demo.sh {path.parent} first") from None
    except json.JSONDecodeError as e:
        raise SystemExit(f"error: {path} is not valid JSON ({e.msg}, line {e.lineno}): rerun the demo") from None


def _dataset(path: Path) -> str:
    d = _json(path / "dataset.json")
    return f"{d['samples_written']:,} samples, {d['bytes_written'] / 1e6:.1f} MB"


def _evaluation(summary: dict) -> str:
    """An evaluate-policy summary in words: its mean and median successes and how many episodes it played."""
    return (f"{summary['mean_successes']:.1f} successes per episode (median {summary['median_successes']:g}), "
            f"{summary['episodes']} greedy episodes")


def summarize(out: Path) -> dict:
    """The demo's figures from the files its stages wrote in `out`."""
    times = {}
    if (out / "stages.tsv").exists():
        for line in (out / "stages.tsv").read_text().splitlines():
            name, _, seconds = line.partition("\t")
            times[name] = int(seconds)
    pose = _json(out / "vision-gimbal" / "eval-test.json")["metrics"]
    vision_run = _json(out / "vision-gimbal" / "metrics.json")
    teacher, student = _json(out / "policy-teacher" / "eval.json"), _json(out / "policy-student" / "eval.json")
    teacher_run, student_run = (_json(out / d / "metrics.json") for d in ("policy-teacher", "policy-student"))
    fraction = student["mean_successes"] / teacher["mean_successes"] if teacher["mean_successes"] else 0.0
    # the student's mean over its episodes with a bootstrap 95% interval (its episodes spread from 0 to 50)
    episodes = student.get("successes") or [student["mean_successes"]]
    _, low, high = mean_ci(episodes)
    scale = 1.0 / teacher["mean_successes"] if teacher["mean_successes"] else 0.0
    rows = [
        ("contact sheets", "hand-block.png, gimbal-block.png", "4 randomized samples of each scene, labelled"),
        ("render: gimbal train", "gimbal-train/ (+ gimbal-train.png)", _dataset(out / "gimbal-train") + ", 3 cameras, 32 px"),
        ("render: gimbal test", "gimbal-test/", _dataset(out / "gimbal-test") + ", another seed"),
        ("render: hand", "hand-60/", _dataset(out / "hand-60") + ", 3 cameras, 64 px"),
        ("verify shards", "(reads only)", "every sample decodes, labels complete"),
        ("pose model", "vision-gimbal/ (checkpoint.pt, curves.png)",
         f"IMPALA, {vision_run['steps']:,} steps, {vision_run['images_per_s']:.0f} images/s"),
        ("pose model: test set", "vision-gimbal/eval-test.json",
         f"orientation {pose['orientation_deg/median']:.1f} deg median, position {pose['position_mm/median']:.1f} mm"),
        ("teacher", "policy-teacher/", f"PPO from state, {teacher_run['frames']:,} frames"),
        ("teacher: evaluation", "policy-teacher/eval.json",
         _evaluation(teacher)),
        ("student", "policy-student/ (+ policy-curves.png)",
         f"BC from 3 x 32 px cameras, {student_run['frames']:,} frames, the pose model's encoder (frozen)"),
        ("student: evaluation", "policy-student/eval.json",
         f"{_evaluation(student)}; 95% interval of the mean {low:.1f}-{high:.1f}; {fraction:.0%} of the "
         f"teacher's ({low * scale:.0%}-{high * scale:.0%})"),
    ]
    return {
        "rows": [{"stage": s, "wrote": w, "figure": f, "seconds": times.get(s)} for s, w, f in rows],
        "pose_median_deg": pose["orientation_deg/median"],
        "teacher_mean_successes": teacher["mean_successes"],
        "student_mean_successes": student["mean_successes"],
        "student_fraction": fraction,
        "student_mean_ci95": [low, high],
        "student_fraction_ci95": [low * scale, high * scale],
        "pose_target_met": pose["orientation_deg/median"] <= POSE_TARGET_DEG,
        "student_target_met": fraction >= STUDENT_TARGET_FRACTION,
        "total_seconds": sum(times.values()),
    }


def table(summary: dict, out: Path) -> str:
    lines = [f"| stage | wrote (in {out}/) | figure | s |", "|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['stage']} | {r['wrote']} | {r['figure']} | {r['seconds'] if r['seconds'] is not None else ''} |")
    verdict = lambda met: "met" if met else "NOT met"  # noqa: E731
    lines += ["", f"Stages took {summary['total_seconds'] / 60:.1f} min.",
              f"Pose model at most {POSE_TARGET_DEG:g} deg on its test set: {verdict(summary['pose_target_met'])} "
              f"({summary['pose_median_deg']:.1f} deg).",
              f"Student at least {STUDENT_TARGET_FRACTION:.0%} of the teacher's successes: "
              f"{verdict(summary['student_target_met'])} ({summary['student_fraction']:.0%})."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/demo_summary.py OUT", file=sys.stderr)
        return 2
    out = Path(argv[0])
    summary = summarize(out)
    text = table(summary, out)
    (out / "summary.md").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
