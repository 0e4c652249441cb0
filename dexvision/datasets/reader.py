"""Reading shards without torch: samples as (images, pose) pairs, straight from the tar."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Iterator

import numpy as np

from dexvision.datasets.format import decode_image

_MEMBER = re.compile(r"^(\d{9})\.(cam(\d+)\.(jpg|png)|pose\.json)$")


class ShardFormatError(ValueError):
    """A shard whose members do not follow the format (see datasets/README.md)."""


def iter_raw(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member suffix: bytes}) per sample, in tar order; members of a key are contiguous."""
    current, files = None, {}
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            match = _MEMBER.match(member.name)
            if not match:
                raise ShardFormatError(f"unexpected member '{member.name}'")
            key, suffix = match.group(1), match.group(2)
            if key != current:
                if current is not None:
                    yield current, files
                current, files = key, {}
            files[suffix] = tar.extractfile(member).read()
    if current is not None:
        yield current, files


def decode_sample(files: dict[str, bytes]) -> tuple[list[np.ndarray], dict]:
    """Images in camera order and the parsed pose.json of one sample's files."""
    if "pose.json" not in files:
        raise ShardFormatError("sample without pose.json")
    cams = sorted((int(re.match(r"cam(\d+)", k).group(1)), k) for k in files if k.startswith("cam"))
    if [i for i, _ in cams] != list(range(len(cams))):
        raise ShardFormatError("camera images are not numbered cam0..camK")
    images = [decode_image(files[k]) for _, k in cams]
    return images, json.loads(files["pose.json"])


def iter_shard(path: Path) -> Iterator[tuple[list[np.ndarray], dict]]:
    """Decoded (images, pose) of every sample of a shard."""
    for _, files in iter_raw(path):
        yield decode_sample(files)
