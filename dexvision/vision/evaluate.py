"""`evaluate-vision`: the errors of a vision checkpoint on one shard set, or a shift table over several.

    evaluate-vision --checkpoint runs/gimbal-impala/checkpoint.pt --data data/gimbal-test
    evaluate-vision --checkpoint runs/gimbal-impala/checkpoint.pt --data data/shift/reference \\
        --data data/shift/dim --data data/shift/tinted --out runs/gimbal-impala/shift.json

With several --data sets, each set's errors are divided by those of the in-distribution
reference (the first --data, or --reference): printed as a table and written as JSON,
Markdown, CSV and a PNG plot beside --out (dexvision/vision/shift.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from dexvision.config import check_flags, to_dict
from dexvision.datasets.loader import shard_urls
from dexvision.datasets.shards import load_manifest
from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.files import check_writable, write_output, write_text_output
from dexvision.vision.checkpoint import build_model, load_checkpoint
from dexvision.vision.evaluation import evaluate
from dexvision.vision.shift import markdown_table, shift_table, write_table


def _spec(ckpt: dict, data: str) -> dict | None:
    """The data config of dataset `data` (None for shard paths), after checking that the model can read it."""
    if not Path(data).is_dir():
        return None
    _, spec = load_manifest(Path(data))
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


def _out(args, data: list[str]) -> Path:
    """Where the results go: --out, or beside the checkpoint."""
    if len(data) == 1:
        default = f"eval-{Path(data[0]).resolve().name}.json"
        return Path(args.out) if args.out else Path(args.checkpoint).parent / default
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "shift.json"
    if out.suffix != ".json":
        raise UserError(f"--out must name a .json file (the .md, .csv and .png go beside it), got {out}")
    return out


def _single(args, ckpt: dict, result: dict, out: Path) -> None:
    metrics = result["metrics"]
    record = {"checkpoint": str(args.checkpoint), "data": result["data"], "step": ckpt["step"],
              "arch": ckpt["model_config"]["arch"], "metrics": metrics}
    print(f"{'metric':<24}{'mean':>10}{'median':>10}{'p90':>10}")  # first: a file that cannot be written loses none
    for name in ("position_mm", "orientation_deg"):
        print(f"{name:<24}" + "".join(f"{metrics[f'{name}/{s}']:>10.2f}" for s in ("mean", "median", "p90")))
    write_text_output(out, json.dumps(record, indent=1) + "\n", "evaluation")
    print(f"{metrics['samples']:.0f} samples; written to {out}")


def _several(args, ckpt: dict, results: list[dict], reference: str, out: Path) -> None:
    table = {"checkpoint": str(args.checkpoint), "step": ckpt["step"], "arch": ckpt["model_config"]["arch"],
             "task": ckpt.get("task"), **shift_table(results, reference)}
    print(markdown_table(table), end="")  # first: files that cannot be written lose nothing
    paths: list[Path] = []
    write_output(out, lambda path: paths.extend(write_table(table, path)), "shift table")
    print(f"written to {', '.join(str(p) for p in paths)}")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="evaluate-vision", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by train-vision")
    p.add_argument("--data", required=True, action="append",
                   help="dataset directory made by render-shards; give several for a shift table")
    p.add_argument("--reference", help="the in-distribution set the others are compared with (default: the first "
                                       "--data; evaluated too if it is not among them)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--max-samples", type=int, default=0, help="per set, stop after this many samples (0: all)")
    p.add_argument("--out", help="JSON file (default: eval-<dataset>.json beside the checkpoint; several sets: "
                                 "shift.json, with shift.md, shift.csv and shift.png beside it)")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_flags(args, "batch_size", "num_workers", "max_samples")
    ckpt = load_checkpoint(args.checkpoint)
    data, reference = _sets(args.data, args.reference)
    out = check_writable(_out(args, data), "--out")
    specs = [_spec(ckpt, d) for d in data]  # every set is checked before any is evaluated
    urls = [shard_urls(d) for d in data]
    model = build_model(ckpt)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    results = []
    for d, spec, set_urls in tqdm(list(zip(data, specs, urls)), desc="evaluate-vision", unit="set",
                                  disable=len(data) == 1):
        metrics = evaluate(model, set_urls, args.batch_size, args.num_workers, device, args.max_samples, d)
        results.append({"name": Path(d).resolve().name, "data": str(Path(d).resolve()), "metrics": metrics,
                        **({"spec": spec} if spec is not None else {})})
    if len(results) == 1:
        _single(args, ckpt, results[0], out)
    else:
        _several(args, ckpt, results, reference, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
