"""`evaluate-vision`: the error metrics of a vision checkpoint on any shard set.

    evaluate-vision --checkpoint runs/gimbal-impala/checkpoint.pt --data data/gimbal-test
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dexvision.datasets.loader import shard_urls
from dexvision.errors import UserError, cli
from dexvision.vision.checkpoint import build_model, load_checkpoint
from dexvision.vision.evaluation import evaluate


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="evaluate-vision", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by train-vision")
    p.add_argument("--data", required=True, help="dataset directory made by render-shards")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--max-samples", type=int, default=0, help="stop after this many samples (0: all)")
    p.add_argument("--out", help="JSON file for the metrics (default: eval-<dataset>.json beside the checkpoint)")
    args = p.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    model = build_model(ckpt)
    urls = shard_urls(args.data)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    metrics = evaluate(model.to(device), urls, args.batch_size, args.num_workers, device, args.max_samples, args.data)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval-{Path(args.data).resolve().name}.json"
    result = {"checkpoint": str(args.checkpoint), "data": str(Path(args.data).resolve()), "step": ckpt["step"],
              "arch": ckpt["model_config"]["arch"], "metrics": metrics}
    try:
        out.write_text(json.dumps(result, indent=1) + "\n")
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    print(f"{'metric':<24}{'mean':>10}{'median':>10}{'p90':>10}")
    for name in ("position_mm", "orientation_deg"):
        print(f"{name:<24}" + "".join(f"{metrics[f'{name}/{s}']:>10.2f}" for s in ("mean", "median", "p90")))
    print(f"{metrics['samples']:.0f} samples; written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
