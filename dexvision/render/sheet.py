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

from dexvision.config import check_flags
from dexvision.errors import ArgumentParser, UserError, cli
from dexvision.files import check_writable, write_output
from dexvision.render.cameras import project
from dexvision.render.cli import add_data_arguments, data_config
from dexvision.render.sample import SampleGenerator
from dexvision.sim.rotations import quat_to_matrix
from dexvision.sim.scenes import BLOCK_HALF_SIZE

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


def contact_sheet(rows: list[tuple[list[np.ndarray], dict]], annotate_labels: bool = False) -> Image.Image:
    """A grid image of (images, label) rows: one row per sample, one column per camera."""
    n_cams = len(rows[0][0])
    h, w = rows[0][0][0].shape[:2]
    sheet = Image.new("RGB", (n_cams * (w + _GAP) - _GAP, len(rows) * (h + _GAP) - _GAP), (255, 255, 255))
    for row, (images, label) in enumerate(rows):
        for col, image in enumerate(images):
            if annotate_labels:
                image = annotate(image, label, col)
            sheet.paste(Image.fromarray(image), (col * (w + _GAP), row * (h + _GAP)))
    return sheet


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="render-sheet", description=__doc__.split("\n\n")[0])
    add_data_arguments(p)
    p.add_argument("--samples", type=int, default=4, help="rows of the sheet (default 4)")
    p.add_argument("--first-index", type=int, default=0, help="global index of the first sample")
    p.add_argument("--annotate", action="store_true", help="draw the labelled block centre and axes")
    p.add_argument("--out", default="sheet.png", help="output PNG (default sheet.png)")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    check_flags(args, "seed")  # before any file or directory is made
    if args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    if args.first_index < 0:
        raise UserError(f"--first-index must be >= 0, got {args.first_index}")
    cfg = data_config(args)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got {out}")
    check_writable(out, "--out")
    generator = SampleGenerator(cfg)
    start = time.perf_counter()
    indices = range(args.first_index, args.first_index + args.samples)
    samples = [generator.generate(i) for i in tqdm(indices, desc=f"render {cfg.task}", unit="sample")]
    elapsed = time.perf_counter() - start
    sheet = contact_sheet([(s.images, s.label) for s in samples], args.annotate)
    write_output(out, sheet.save, "contact sheet")
    sampler = generator.sampler
    print(f"wrote {out}: {args.samples} samples x {cfg.render.randomization.cameras.count} cameras "
          f"at {cfg.render.image_size}px, {args.samples / elapsed:.1f} samples/s, "
          f"{sampler.rejected} rejected states")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
