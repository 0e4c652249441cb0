"""Shards on disk: the dataset spec, the shard plan, atomic deterministic tar writing, the manifest.

A dataset directory holds:

    dataset.json              manifest: spec (resolved config), code version, per-shard records, totals
    shard-000000.tar ...      WebDataset shards, each complete or absent
    .records/shard-000000.json  one record per finished shard (count, sha256, bytes, code version)

A shard is written under a temporary name, fsynced and renamed into place; only
then is its record written. A kill at any moment leaves at most a temporary file
(ignored and cleaned up) or a shard without a record (rendered again on resume).
The manifest is rebuilt from the records at the end of every run, so array jobs
that each render a slice into one directory all contribute to it.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Iterable

from dexvision.config import from_dict, to_dict
from dexvision.datasets.format import FORMAT_VERSION, IMAGE_FORMATS, shard_name
from dexvision.errors import UserError
from dexvision.files import atomic_write
from dexvision.render.sample import DataConfig
from dexvision.version import code_version

MANIFEST = "dataset.json"
RECORDS = ".records"


@dataclasses.dataclass
class DatasetSpec:
    """Everything that decides the bytes of a dataset. Two runs into one directory must agree on it."""

    n: int
    shard_size: int = 1000
    format: str = "jpg"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.format not in IMAGE_FORMATS:
            raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}, got '{self.format}'")

    @property
    def num_shards(self) -> int:
        return -(-self.n // self.shard_size)

    def shard_range(self, shard_id: int) -> range:
        """Global sample indices of shard `shard_id`."""
        first = shard_id * self.shard_size
        return range(first, min(first + self.shard_size, self.n))


class DiskFullError(UserError):
    """The disk filled up while a shard was written (the partial shard was removed)."""


class _HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, raw):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    # Fixed metadata: the bytes of a shard must not depend on who wrote it, or when.
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _open_temp(path: Path):
    return open(path, "wb")


def write_shard(path: Path, samples: Iterable[list[tuple[str, bytes]]]) -> dict:
    """Write the samples' files to tar `path` atomically; returns count, sha256 and size in bytes."""
    out: dict = {}

    def write(tmp: Path) -> None:
        count = 0
        with _open_temp(tmp) as raw:
            writer = _HashingWriter(raw)
            with tarfile.open(fileobj=writer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for files in samples:
                    for name, data in files:
                        tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
                    count += 1
            raw.flush()
            os.fsync(raw.fileno())
        out.update(count=count, sha256=writer.sha256.hexdigest(), bytes=writer.size)

    try:
        atomic_write(path, write)
        _fsync_dir(path.parent)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DiskFullError(f"disk full while writing {path}; the partial shard was removed, "
                                "free space and run the same command again to resume") from None
        raise
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_json(path: Path, obj: dict) -> None:
    try:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n"))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DiskFullError(f"disk full while writing {path}") from None
        raise


def _first_difference(a, b, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if diff:
                return diff
        return None
    return None if a == b else f"{path}: {json.dumps(a)} here, {json.dumps(b)} in the directory"


def prepare_directory(out: Path, spec: DatasetSpec) -> None:
    """Create `out` (or check it is a dataset of the same spec); clean stale temporary files."""
    if out.is_dir() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty and holds no dexvision dataset; choose an empty or new --out")
    try:
        (out / RECORDS).mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror or e}") from None
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        try:
            existing = json.loads(manifest_path.read_text())["spec"]
        except (OSError, ValueError, KeyError):
            raise UserError(f"{manifest_path} is not a dexvision manifest; use another --out") from None
        diff = _first_difference(to_dict(spec), existing)
        if diff:
            raise UserError(f"{out} holds a dataset made with a different config ({diff}); "
                            "run with the same flags to resume, or choose another --out")
    else:
        write_manifest(out, spec)
    for stale in list(out.glob(".shard-*.tar.tmp-*")) + list(out.glob(".*.json.tmp-*")):
        stale.unlink(missing_ok=True)


def record_path(out: Path, shard_id: int) -> Path:
    return out / RECORDS / shard_name(shard_id).replace(".tar", ".json")


def write_record(out: Path, shard_id: int, record: dict) -> None:
    _atomic_json(record_path(out, shard_id), record)


def read_records(out: Path, spec: DatasetSpec) -> dict[int, dict]:
    """Records of finished shards whose tar is present with the recorded size."""
    records = {}
    for shard_id in range(spec.num_shards):
        path = record_path(out, shard_id)
        if not path.exists():
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        tar = out / shard_name(shard_id)
        if tar.exists() and tar.stat().st_size == record.get("bytes"):
            records[shard_id] = record
    return records


def write_manifest(out: Path, spec: DatasetSpec, records: dict[int, dict] | None = None) -> dict:
    records = records or {}
    shards = [records[i] for i in sorted(records)]
    manifest = {
        "format": FORMAT_VERSION,
        "spec": to_dict(spec),
        "code_version": code_version(),
        "num_shards": spec.num_shards,
        "num_samples": spec.n,
        "complete": len(shards) == spec.num_shards,
        "shards_written": len(shards),
        "samples_written": sum(r["count"] for r in shards),
        "bytes_written": sum(r["bytes"] for r in shards),
        "shards": shards,
    }
    _atomic_json(out / MANIFEST, manifest)
    return manifest


def load_manifest(out: Path) -> tuple[dict, DatasetSpec]:
    """The manifest of dataset directory `out` and its spec; one clear error if there is none."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise UserError(f"{out} is not a dexvision dataset (no {MANIFEST}); make one with render-shards")
    try:
        manifest = json.loads(path.read_text())
        return manifest, from_dict(DatasetSpec, manifest["spec"])
    except (ValueError, KeyError, UserError):
        raise UserError(f"{path} is not a valid dexvision manifest") from None
