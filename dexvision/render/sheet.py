"""`render-sheet`: a contact sheet PNG (samples x cameras) of what the data looks like.

    render-sheet --task hand-block --samples 4 --out sheet.png
    render-sheet --task gimbal-block --samples 3 --image-size 64 --annotate --out gimbal.png
    render-sheet --config configs/data.yaml --set render.randomization.enabled=false --out clean.png

With --annotate, each image shows the label: the projected block centre (a cross)
and the block's x, y, z axes (red, green, blue), so a person can check that the
labels sit on the block.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from dexvision.config import load_config
from dexvision.errors import UserError, cli
from dexvision.render.cameras import project
from dexvision.render.sample import DataConfig, Sample, SampleGenerator
from dexvision.sim.rotations import quat_to_matrix
from dexvision.sim.scenes import BLOCK_HALF_SIZE, TASKS

log = logging.getLogger(__name__)
_GAP = 2
_AXIS_COLOURS = [(255, 40, 40), (40, 220, 40), (60, 120, 255)]


def annotate(image: np.ndarray, label: dict, camera: int) -> np.ndarray:
    """Draw the projected block centre and axes of `label` onto one camera's image."""
    cam = label["cameras"][camera]
    K, R, t = (np.asarray(cam[k]) for k in ("K", "R", "t"))
    centre = np.asarray(label["position"])
    axes = quat_to_matrix(np.asarray(label["quaternion"])).T * (1.6 * BLOCK_HALF_SIZE)
    uv = project(K, R, t, np.vstack([centre, centre + axes]))
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    (u0, v0) = uv[0]
    for (u, v), colour in zip(uv[1:], _AXIS_COLOURS):
        draw.line([(u0, v0), (u, v)], fill=colour, width=1)
    r = max(2, image.shape[0] // 40)
    draw.line([(u0 - r, v0), (u0 + r, v0)], fill=(255, 255, 255))
    draw.line([(u0, v0 - r), (u0, v0 + r)], fill=(255, 255, 255))
    return np.asarray(pil)


def contact_sheet(samples: list[Sample], annotate_labels: bool = False) -> Image.Image:
    """A grid image: one row per sample, one column per camera, separated by thin gaps."""
    n_cams = len(samples[0].images)
    h, w = samples[0].images[0].shape[:2]
    sheet = Image.new("RGB", (n_cams * (w + _GAP) - _GAP, len(samples) * (h + _GAP) - _GAP), (255, 255, 255))
    for row, sample in enumerate(samples):
        for col, image in enumerate(sample.images):
            if annotate_labels:
                image = annotate(image, sample.label, col)
            sheet.paste(Image.fromarray(image), (col * (w + _GAP), row * (h + _GAP)))
    return sheet


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="render-sheet", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="YAML DataConfig (e.g. configs/data.yaml)")
    p.add_argument("--task", choices=TASKS, help="scene (default: from the config, hand-block)")
    p.add_argument("--samples", type=int, default=4, help="rows of the sheet (default 4)")
    p.add_argument("--first-index", type=int, default=0, help="global index of the first sample")
    p.add_argument("--image-size", type=int, help="pixels per side (default 128)")
    p.add_argument("--cameras", type=int, help="number of cameras (default 3)")
    p.add_argument("--seed", type=int, help="root seed (default 0)")
    p.add_argument("--no-randomization", action="store_true", help="nominal cameras, lights and materials")
    p.add_argument("--annotate", action="store_true", help="draw the labelled block centre and axes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. render.randomization.lighting.count=[2,2]")
    p.add_argument("--out", default="sheet.png", help="output PNG (default sheet.png)")
    return p


def config_from_args(args: argparse.Namespace) -> DataConfig:
    overrides = list(args.set)
    for flag, key in (("task", "task"), ("image_size", "render.image_size"),
                      ("cameras", "render.randomization.cameras.count"), ("seed", "seed")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.no_randomization:
        overrides.append("render.randomization.enabled=false")
    return load_config(DataConfig, args.config, overrides)


@cli
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    if args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    if args.first_index < 0:
        raise UserError(f"--first-index must be >= 0, got {args.first_index}")
    cfg = config_from_args(args)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got {out}")
    generator = SampleGenerator(cfg)
    start = time.perf_counter()
    indices = range(args.first_index, args.first_index + args.samples)
    samples = [generator.generate(i) for i in tqdm(indices, desc=f"render {cfg.task}", unit="sample")]
    elapsed = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        contact_sheet(samples, args.annotate).save(out)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    sampler = generator.sampler
    print(f"wrote {out}: {args.samples} samples x {cfg.render.randomization.cameras.count} cameras "
          f"at {cfg.render.image_size}px, {args.samples / elapsed:.1f} samples/s, "
          f"{sampler.rejected} rejected states")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
