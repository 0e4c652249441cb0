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

Concurrency: any number of processes, on one machine or on several that share the
filesystem, may render into one directory at once, from its creation on
(`prepare_directory` creates the manifest exactly once, atomically). Each shard is
claimed by the rename that puts it in place, not by a lock: two processes given
overlapping slices may both render a shard, but each writes its own temporary file
and the renames replace one complete shard by an identical one (a shard's bytes
depend only on the spec and its indices), so a reader never sees a mixed or partial
shard. A process skips a shard whose record has landed before it starts it.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import re
import tarfile
import time
import uuid
from pathlib import Path
from typing import Iterable

from dexvision.config import check_choice, from_dict, to_dict
from dexvision.datasets.format import FORMAT_VERSION, IMAGE_FORMATS, JPEG_QUALITY, JPEG_SUBSAMPLING, LABELS, shard_name
from dexvision.errors import UserError
from dexvision.files import atomic_write, stale_temp
from dexvision.render.sample import DataConfig
from dexvision.version import code_version

MANIFEST = "dataset.json"
RECORDS = ".records"
_RECORD = re.compile(r"^shard-(\d+)\.json$")


@dataclasses.dataclass
class DatasetSpec:
    """Everything that decides the bytes of a dataset. Two runs into one directory must agree on it."""

    n: int
    shard_size: int = 1000
    format: str = "jpg"
    jpeg_quality: int = JPEG_QUALITY  # 1-95 (PIL's useful range); jpg only
    jpeg_subsampling: str = "444"  # chroma: 444 (none) or 420 (half resolution in x and y); jpg only
    labels: str = "full"  # full pose.json, or lean: without what (config, seed, index) recompute
    data: DataConfig = dataclasses.field(default_factory=DataConfig)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        check_choice("format", self.format, IMAGE_FORMATS)
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be within [1, 95], got {self.jpeg_quality}")
        check_choice("jpeg_subsampling", self.jpeg_subsampling, JPEG_SUBSAMPLING)
        check_choice("labels", self.labels, LABELS)

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


# What render-shards itself puts in a dataset directory before its manifest exists: another process
# that started on the same new --out a moment earlier may be half way through creating it.
_OWN_BEFORE_MANIFEST = re.compile(r"^(\.records|\.write-test-.*|\.dataset\.json\.(tmp|claim)-.*)$")
_MANIFEST_READ_TRIES = 50  # x 0.1 s: a manifest created without hard links is written in place


def _create_manifest(out: Path, spec: DatasetSpec) -> bool:
    """Create the manifest of a new dataset, once whoever else races for it; True if this call did.

    The full manifest is written to a private file and hard-linked to its name: link(2) fails when the
    name exists, atomically, on local and network filesystems alike. Where hard links are not
    supported, an exclusive create (O_EXCL) makes the same claim, and readers retry until it is whole."""
    claim = out / f".{MANIFEST}.claim-{uuid.uuid4().hex[:8]}"
    text = json.dumps(_manifest(spec, {}), indent=1) + "\n"
    try:
        claim.write_text(text)
        try:
            os.link(claim, out / MANIFEST)
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
        try:
            fd = os.open(out / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return True
    finally:
        claim.unlink(missing_ok=True)


def _read_spec(out: Path) -> dict:
    """The directory's spec, with the defaults of fields added since it was written (as it was made)."""
    path = out / MANIFEST
    for _ in range(_MANIFEST_READ_TRIES):
        try:
            spec = json.loads(path.read_text())["spec"]
            break
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    else:
        raise UserError(f"{path} is not a dexvision manifest; use another --out")
    try:
        return to_dict(from_dict(DatasetSpec, spec))
    except (UserError, ValueError, TypeError):
        return spec  # a spec this version cannot read: compared as it is (and so refused)


def prepare_directory(out: Path, spec: DatasetSpec) -> None:
    """Create dataset `out` for `spec`, or join it if it already holds the same spec; clean stale leftovers.

    Any number of processes (on one machine or several sharing the filesystem) may call this together
    on the same new directory: exactly one creates the manifest, the others join it if their spec is
    the same and are refused, in one line, if it differs, whichever came first."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror or e}") from None
    if not out.is_dir():
        raise UserError(f"{out} is not a directory; choose an empty or new --out")
    if not (out / MANIFEST).exists():
        foreign = sorted(p.name for p in out.iterdir() if not _OWN_BEFORE_MANIFEST.match(p.name))
        if foreign and not (out / MANIFEST).exists():
            raise UserError(f"{out} is not empty and holds no dexvision dataset ({foreign[0]}, ...); "
                            "choose an empty or new --out")
        try:
            _create_manifest(out, spec)
        except OSError as e:
            raise UserError(f"cannot write to {out}: {e.strerror or e}") from None
    diff = _first_difference(to_dict(spec), _read_spec(out))
    if diff:
        raise UserError(f"{out} holds a dataset made with a different config ({diff}); "
                        "run with the same flags to resume, or choose another --out")
    try:
        (out / RECORDS).mkdir(exist_ok=True)
        probe = out / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror or e}") from None
    now = time.time()
    for leftover in list(out.glob(".shard-*.tar.tmp-*")) + list(out.glob(".*.json.tmp-*")) \
            + list((out / RECORDS).glob(".*.json.tmp-*")):
        if stale_temp(leftover, now):  # never another live process's shard in the making
            leftover.unlink(missing_ok=True)


def record_path(out: Path, shard_id: int) -> Path:
    return out / RECORDS / shard_name(shard_id).replace(".tar", ".json")


def finished_record(out: Path, spec: DatasetSpec, shard_id: int) -> dict | None:
    """The record of shard `shard_id` if it is finished (record present, tar of the recorded size)."""
    try:
        record = json.loads(record_path(out, shard_id).read_text())
        size = (out / shard_name(shard_id)).stat().st_size
    except (OSError, ValueError):
        return None
    return record if size == record.get("bytes") and record.get("count") == len(spec.shard_range(shard_id)) else None


def write_record(out: Path, shard_id: int, record: dict) -> None:
    _atomic_json(record_path(out, shard_id), record)


def read_records(out: Path, spec: DatasetSpec) -> dict[int, dict]:
    """Records of finished shards whose tar is present with the recorded size."""
    records = {}
    try:
        names = os.listdir(out / RECORDS)
    except FileNotFoundError:
        return records
    for name in names:
        match = _RECORD.match(name)
        if match and int(match[1]) < spec.num_shards:
            record = finished_record(out, spec, int(match[1]))
            if record is not None:
                records[int(match[1])] = record
    return records


def _manifest(spec: DatasetSpec, records: dict[int, dict]) -> dict:
    shards = [records[i] for i in sorted(records)]
    return {
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


def write_manifest(out: Path, spec: DatasetSpec) -> dict:
    """Rebuild the manifest from the records on disk; returns it.

    Processes that finish together each rewrite it, and the last rename wins; so each one checks,
    after its rename, that no record landed since it read them, and writes again if one did. The
    process whose rename is last thus wrote every record there is: no finished shard is left out."""
    while True:
        records = read_records(out, spec)
        manifest = _manifest(spec, records)
        _atomic_json(out / MANIFEST, manifest)
        if read_records(out, spec).keys() == records.keys():
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


def shard_paths(data: str | Path, manifest: dict) -> list[str]:
    """The finished shards of dataset `data` in order, each checked to be there at the size its record gives:
    one line naming the first that is not (a truncated shard would fail mid-read with a lesser message)."""
    records = sorted(manifest["shards"], key=lambda r: r["id"])
    paths = [str(Path(data) / r["shard"]) for r in records]
    for r, p in zip(records, paths):
        if not Path(p).exists() or Path(p).stat().st_size != r["bytes"]:
            raise UserError(f"shard {p} is missing or has the wrong size; run verify-shards {data}")
    return paths


def check_val_data(data: str, spec: DatasetSpec, val_data: str, val_spec: DatasetSpec) -> None:
    """Refuse a validation set a pose model trained on `data` cannot be measured on: another task, or another
    number of cameras (other image sizes are resized, as for training)."""
    task, val_task = spec.data.task, val_spec.data.task
    if task != val_task:
        raise UserError(f"--val-data {val_data} is a {val_task} dataset, --data {data} a {task} one")
    cams, val_cams = (s.data.render.randomization.cameras.count for s in (spec, val_spec))
    if cams != val_cams:
        raise UserError(f"--val-data {val_data} has {val_cams} camera(s) per sample, --data {data} has {cams}")
