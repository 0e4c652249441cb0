"""`evaluate-vision`: the errors of a vision checkpoint on one shard set, a shift table over several, or
several checkpoints side by side on one set.

    evaluate-vision --checkpoint runs/gimbal-impala/checkpoint.pt --data data/gimbal-test
    evaluate-vision --checkpoint runs/gimbal-impala/checkpoint.pt --data data/shift/reference \\
        --data data/shift/dim --data data/shift/tinted --out runs/gimbal-impala/shift.json
    evaluate-vision --checkpoint runs/direct/checkpoint.pt --checkpoint runs/keypoints/checkpoint.pt \\
        --data data/gimbal-test --out runs/heads.json
    evaluate-vision --checkpoint runs/keypoints/checkpoint.pt --data data/gimbal-test --camera-error 5,1

With several --data sets, each set's errors are divided by those of the in-distribution
reference (the first --data, or --reference): printed as a table and written as JSON,
Markdown, CSV and a PNG plot beside --out (dexvision/vision/shift.py). With several
--checkpoint (a direct and a keypoint head, say), one row each. `--camera-error MM,DEG`
tells a keypoint head's solve each camera's pose wrong by MM millimetres and DEG degrees
(random directions, seeded): what a real rig's calibration error would cost.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from tqdm import tqdm

from dexvision.config import check_flags, to_dict
from dexvision.datasets.loader import shard_urls
from dexvision.datasets.shards import load_manifest, shard_paths
from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.files import check_writable, write_output, write_text_output
from dexvision.vision.checkpoint import build_model, load_checkpoint
from dexvision.vision.evaluation import evaluate
from dexvision.vision.shift import markdown_table, shift_table, write_table


def _spec(ckpt: dict, data: str) -> dict | None:
    """The data config of dataset `data` (None for shard paths), after checking that the model can read it."""
    if not Path(data).is_dir():
        return None
    manifest, spec = load_manifest(Path(data))
    shard_paths(data, manifest)  # every shard there, at its recorded size
    cameras, model_cameras = spec.data.render.randomization.cameras.count, ckpt["model_config"]["num_cameras"]
    if cameras != model_cameras:
        raise UserError(f"{data} has {cameras} camera(s) per sample, the model was trained on {model_cameras}")
    if ckpt.get("task") and spec.data.task != ckpt["task"]:
        raise UserError(f"{data} is a {spec.data.task} dataset, the model was trained on {ckpt['task']}")
    return to_dict(spec.data)


def _sets(data: list[str], reference: str | None) -> tuple[list[str], str]:
    """The sets to evaluate (the reference first if it is not among --data) and the reference's name."""
    ref = reference or data[0]
    resolved = [Path(d).resolve() for d in data]
    if Path(ref).resolve() not in resolved:
        data, resolved = [ref, *data], [Path(ref).resolve(), *resolved]
    names = [p.name for p in resolved]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"two --data sets are named '{name}': the table names a set by its directory, "
                            "so give them directories of different names")
    return data, Path(ref).resolve().name


def _error_suffix(args) -> str:
    return "-camera-error-{mm:g}mm-{deg:g}deg".format(**args.camera_error_record) if args.camera_error else ""


def _out(args, data: list[str]) -> Path:
    """Where the results go: --out, or beside the checkpoint (named for the camera error, if any)."""
    error = _error_suffix(args)
    if len(data) == 1:
        default = f"eval-{Path(data[0]).resolve().name}{error}.json"
        return Path(args.out) if args.out else Path(args.checkpoint[0]).parent / default
    out = Path(args.out) if args.out else Path(args.checkpoint[0]).parent / f"shift{error}.json"
    if out.suffix != ".json":
        raise UserError(f"--out must name a .json file (the .md, .csv and .png go beside it), got {out}")
    return out


def _single(args, ckpt: dict, result: dict, out: Path) -> None:
    metrics = result["metrics"]
    record = {"checkpoint": str(args.checkpoint[0]), "data": result["data"], "step": ckpt["step"],
              "arch": ckpt["model_config"]["arch"], "head": head_of(ckpt), "metrics": metrics,
              **({"camera_error": args.camera_error_record} if args.camera_error else {})}
    print(f"{'metric':<24}{'mean':>10}{'median':>10}{'p90':>10}")  # first: a file that cannot be written loses none
    for name in error_names(metrics):
        print(f"{name:<24}" + "".join(f"{metrics[f'{name}/{s}']:>10.2f}" for s in ("mean", "median", "p90")))
    write_text_output(out, json.dumps(record, indent=1) + "\n", "evaluation")
    print(f"{metrics['samples']:.0f} samples; written to {out}")


def compare_table(rows: list[dict]) -> str:
    """Markdown: one row per checkpoint (head, arch, step, samples, median and p90 of each error)."""
    lines = ["| checkpoint | head | arch | step | samples | pos mm median | pos mm p90 | ori deg median | ori deg p90 "
             "| keypoint px median |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        kp = f"{m['keypoint_px/median']:.2f}" if "keypoint_px/median" in m else "-"
        lines.append(f"| {r['checkpoint']} | {r['head']} | {r['arch']} | {r['step']} | {m['samples']:.0f} "
                     f"| {m['position_mm/median']:.2f} | {m['position_mm/p90']:.2f} | {m['orientation_deg/median']:.2f} "
                     f"| {m['orientation_deg/p90']:.2f} | {kp} |")
    return "\n".join(lines) + "\n"


def _compare(args, rows: list[dict], out: Path) -> None:
    print(compare_table(rows), end="")  # first: a file that cannot be written loses nothing
    record = {"data": rows[0]["data"], "checkpoints": rows,
              **({"camera_error": args.camera_error_record} if args.camera_error else {})}
    write_text_output(out, json.dumps(record, indent=1) + "\n", "comparison")
    print(f"written to {out}")


def head_of(ckpt: dict) -> str:
    """The pose head a vision checkpoint holds (checkpoints from before the keypoint head hold a direct one)."""
    return ckpt["model_config"].get("head", "direct")


def error_names(metrics: dict) -> list[str]:
    """The errors an evaluation measured, in the table's order: position_mm, orientation_deg[, keypoint_px]."""
    return [n for n in ("position_mm", "orientation_deg", "keypoint_px") if f"{n}/median" in metrics]


def _several(args, ckpt: dict, results: list[dict], reference: str, out: Path) -> None:
    table = {"checkpoint": str(args.checkpoint[0]), "step": ckpt["step"], "arch": ckpt["model_config"]["arch"],
             "head": head_of(ckpt),
             "task": ckpt.get("task"), **shift_table(results, reference)}
    print(markdown_table(table), end="")  # first: files that cannot be written lose nothing
    paths: list[Path] = []
    write_output(out, lambda path: paths.extend(write_table(table, path)), "shift table")
    print(f"written to {', '.join(str(p) for p in paths)}")


def camera_error(text: str) -> tuple[float, float]:
    """'5,1' -> (0.005 m, 1 degree in radians)."""
    try:
        mm, deg = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MM,DEG like 5,1, got '{text}'") from None
    if not (mm >= 0 and deg >= 0 and math.isfinite(mm) and math.isfinite(deg)):
        raise argparse.ArgumentTypeError(f"expected two non-negative numbers MM,DEG, got '{text}'")
    return mm / 1000.0, math.radians(deg)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="evaluate-vision", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, action="append",
                   help="checkpoint.pt written by train-vision; give several to compare them on one --data set")
    p.add_argument("--data", required=True, action="append",
                   help="dataset directory made by render-shards; give several for a shift table")
    p.add_argument("--reference", help="the in-distribution set the others are compared with (default: the first "
                                       "--data; evaluated too if it is not among them)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--max-samples", type=int, default=0, help="per set, stop after this many samples (0: all)")
    p.add_argument("--camera-error", type=camera_error, metavar="MM,DEG",
                   help="keypoint heads: solve with each camera's calibration off by MM mm and DEG degrees")
    p.add_argument("--out", help="JSON file (default: eval-<dataset>.json beside the checkpoint; several sets: "
                                 "shift.json, with shift.md, shift.csv and shift.png beside it; several "
                                 "checkpoints: compare-<dataset>.json beside the first)")
    return p


def _check_camera_error(args, ckpts: list[dict]) -> None:
    if not args.camera_error:
        return
    for path, ckpt in zip(args.checkpoint, ckpts):
        if head_of(ckpt) != "keypoints":
            raise UserError(f"--camera-error miscalibrates a keypoint head's solve; {path} holds a "
                            f"{head_of(ckpt)} head, which does not use the calibration")


def _evaluate_all(args, jobs: list[tuple[dict, str]], device: torch.device, unit: str) -> list[dict]:
    """The metrics of each (checkpoint, data set) pair, in order; a model is built once per checkpoint."""
    urls = {data: shard_urls(data) for _, data in jobs}  # a missing set fails before any is evaluated
    results, models = [], {}
    for ckpt, data in tqdm(jobs, desc="evaluate-vision", unit=unit, disable=len(jobs) == 1):
        if id(ckpt) not in models:
            models = {id(ckpt): build_model(ckpt).to(device)}  # one model in memory at a time
        results.append(evaluate(models[id(ckpt)], urls[data], args.batch_size, args.num_workers, device,
                                args.max_samples, data, args.camera_error))
    return results


@cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_flags(args, "batch_size", "num_workers", "max_samples")
    if args.camera_error:
        args.camera_error_record = {"mm": args.camera_error[0] * 1000.0, "deg": math.degrees(args.camera_error[1])}
    ckpts = [load_checkpoint(c) for c in args.checkpoint]
    _check_camera_error(args, ckpts)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if len(ckpts) > 1:
        if len(args.data) > 1 or args.reference:
            raise UserError("several --checkpoint are compared on one --data set: give one --data (a shift table "
                            "takes one checkpoint)")
        name = Path(args.data[0]).resolve().name
        out = check_writable(Path(args.out) if args.out else Path(args.checkpoint[0]).parent /
                             f"compare-{name}{_error_suffix(args)}.json", "--out")
        for ckpt in ckpts:  # every checkpoint is checked before any is evaluated
            _spec(ckpt, args.data[0])
        metrics = _evaluate_all(args, [(ckpt, args.data[0]) for ckpt in ckpts], device, "checkpoint")
        rows = [{"checkpoint": str(path), "head": head_of(ckpt), "arch": ckpt["model_config"]["arch"],
                 "step": ckpt["step"], "data": str(Path(args.data[0]).resolve()), "metrics": m}
                for path, ckpt, m in zip(args.checkpoint, ckpts, metrics)]
        _compare(args, rows, out)
        return 0
    ckpt = ckpts[0]
    data, reference = _sets(args.data, args.reference)
    out = check_writable(_out(args, data), "--out")
    specs = [_spec(ckpt, d) for d in data]  # every set is checked before any is evaluated
    metrics = _evaluate_all(args, [(ckpt, d) for d in data], device, "set")
    results = [{"name": Path(d).resolve().name, "data": str(Path(d).resolve()), "metrics": m,
                **({"spec": spec} if spec is not None else {})} for d, spec, m in zip(data, specs, metrics)]
    if len(results) == 1:
        _single(args, ckpt, results[0], out)
    else:
        _several(args, ckpt, results, reference, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
