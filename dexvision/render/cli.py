"""Command-line flags shared by the commands that make samples (render-sheet, render-shards)."""

from __future__ import annotations

import argparse

from dexvision.config import check_flag_agrees, flag_overrides, load_config
from dexvision.render.sample import DataConfig
from dexvision.sim.scenes import TASKS


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML DataConfig (e.g. configs/data.yaml)")
    p.add_argument("--task", help=f"scene: {', '.join(TASKS)} (default: from the config, hand-block)")
    p.add_argument("--image-size", type=int, help="pixels per side (default 128)")
    p.add_argument("--cameras", type=int, help="number of cameras (default 3)")
    p.add_argument("--seed", type=int, help="root seed (default 0)")
    p.add_argument("--no-randomization", action="store_true", help="nominal cameras, lights and materials")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any DataConfig field, e.g. render.randomization.lighting.count=[2,2]")


def data_config(args: argparse.Namespace) -> DataConfig:
    """The DataConfig of the defaults, then --config, then --set, then the named flags."""
    overrides = flag_overrides(args, {"task": "task", "image_size": "render.image_size",
                                      "cameras": "render.randomization.cameras.count", "seed": "seed"})
    if args.no_randomization:
        check_flag_agrees(args.set, "render.randomization.enabled", "--no-randomization", False)
        overrides.append("render.randomization.enabled=false")
    return load_config(DataConfig, args.config, overrides)
