"""`verify-shards DIR`: check every shard of a dataset against its manifest.

    verify-shards data/hand-10M
    verify-shards data/hand-10M --quick        # sizes and checksums only, no decoding

For each shard the dataset should have: the file exists, its size and sha256 match
the manifest, and (unless --quick) every sample decodes: the right keys in order,
one image per camera at the configured size, a valid pose.json. Exits 1 naming the
bad shards when any is missing or corrupt.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import tarfile
from pathlib import Path

from tqdm import tqdm

from dexvision.datasets.format import check_pose, sample_key, shard_name
from dexvision.datasets.reader import ShardFormatError, decode_sample, iter_raw
from dexvision.distributed import resolve_workers
from dexvision.datasets.shards import DatasetSpec, load_manifest
from dexvision.errors import ArgumentParser, cli


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_shard(out: Path, spec: DatasetSpec, shard_id: int, record: dict | None, quick: bool) -> str | None:
    """What is wrong with one shard, or None when it is sound."""
    path = out / shard_name(shard_id)
    if not path.exists():
        return "missing"
    if record is None:
        return "not in the manifest (unfinished, or written by another run)"
    if path.stat().st_size != record["bytes"]:
        return f"size {path.stat().st_size} bytes, manifest says {record['bytes']}"
    if _sha256(path) != record["sha256"]:
        return "sha256 does not match the manifest"
    if quick:
        return None
    expected = [sample_key(i) for i in spec.shard_range(shard_id)]
    size = spec.data.render.image_size
    n_cams = spec.data.render.randomization.cameras.count
    try:
        keys = []
        for key, files in iter_raw(path):
            keys.append(key)
            images, pose = decode_sample(files)
            if len(images) != n_cams:
                return f"sample {key}: {len(images)} images, expected {n_cams}"
            if any(img.shape != (size, size, 3) for img in images):
                return f"sample {key}: image size is not {size}x{size}"
            problems = check_pose(pose, n_cams, spec.labels)
            if problems:
                return f"sample {key}: {problems[0]}"
            if pose["index"] != int(key):
                return f"sample {key}: pose.json says index {pose['index']}"
    except (tarfile.TarError, ShardFormatError, OSError, ValueError) as e:
        return f"unreadable: {e}"
    if keys != expected:
        return f"{len(keys)} samples, expected {len(expected)} ({expected[0]}..{expected[-1]})"
    return None


def _check(args: tuple) -> tuple[int, str | None]:
    out, spec, shard_id, record, quick = args
    return shard_id, check_shard(out, spec, shard_id, record, quick)


@cli
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="verify-shards", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="dataset directory (holds dataset.json)")
    p.add_argument("--quick", action="store_true", help="check sizes and checksums only")
    p.add_argument("--workers", default="auto", help="processes (default: one per core)")
    args = p.parse_args(argv)
    out = Path(args.dir)
    manifest, spec = load_manifest(out)
    records = {r["id"]: r for r in manifest["shards"]}
    jobs = [(out, spec, sid, records.get(sid), args.quick) for sid in range(spec.num_shards)]
    workers = min(resolve_workers(args.workers), len(jobs))
    bad = {}
    with tqdm(total=len(jobs), unit="shard", desc="verify-shards") as bar:
        if workers <= 1:
            results = map(_check, jobs)
            for sid, problem in results:
                bar.update(1)
                if problem:
                    bad[sid] = problem
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for sid, problem in pool.imap_unordered(_check, jobs):
                    bar.update(1)
                    if problem:
                        bad[sid] = problem
    for sid in sorted(bad):
        print(f"BAD {shard_name(sid)}: {bad[sid]}")
    good = len(jobs) - len(bad)
    kind = "checksums" if args.quick else "checksums, images and labels"
    print(f"{good}/{len(jobs)} shards OK ({kind}); {manifest['samples_written']:,} samples in the manifest")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
