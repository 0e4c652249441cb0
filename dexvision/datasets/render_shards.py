"""`render-shards`: sharded, resumable, parallel generation of labelled multi-camera samples.

    render-shards --n 10M --task hand-block --out data/hand-10M
    render-shards --n 20k --task gimbal-block --image-size 64 --out data/gimbal --preview gimbal.png
    render-shards --n 10M --out /shared/hand-10M --ray auto           # fan shards out over a Ray cluster
    render-shards --n 10M --out /shared/hand-10M --shards 0:100       # one array job's slice

Every sample is a pure function of (config, seed, global index), so the bytes of a
shard do not depend on how many workers, machines or restarts made it. Running the
same command again completes only what is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import queue
import signal
import socket
import time
from pathlib import Path

from tqdm import tqdm

from dexvision.config import check_flags, from_dict, to_dict
from dexvision.datasets.format import (
    IMAGE_FORMATS, JPEG_QUALITY, JPEG_SUBSAMPLING, LABELS, encode_sample, parse_count, shard_name,
)
from dexvision.datasets.shards import (
    DatasetSpec, finished_record, load_manifest, prepare_directory, read_records, write_manifest, write_record,
    write_shard,
)
from dexvision import distributed
from dexvision.distributed import resolve_workers
from dexvision.errors import ArgumentParser, Interrupted, UserError, cli
from dexvision.files import check_writable, write_output
from dexvision.render.cli import add_data_arguments, data_config
from dexvision.version import code_version

log = logging.getLogger(__name__)

# Each render process is single-threaded: parallelism comes from processes, and Mesa's
# rasterizer threads would only compete with them for the same cores. LP_NUM_THREADS=0
# rasterizes on the calling thread: the same pixels as one rasterizer thread, without the
# hand-over after every draw (BENCHMARKS.md, "Render passes").
WORKER_ENV = {"LP_NUM_THREADS": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_GENERATOR: tuple[str, object] | None = None
_PROGRESS = None


def _generator(spec: DatasetSpec):
    """One SampleGenerator per process, re-used across the shards it renders."""
    global _GENERATOR
    from dexvision.render.sample import SampleGenerator  # noqa: PLC0415 - GL is set up on first use

    key = json.dumps(to_dict(spec.data), sort_keys=True)
    if _GENERATOR is None or _GENERATOR[0] != key:
        _GENERATOR = (key, SampleGenerator(spec.data))
    return _GENERATOR[1]


def render_shard(spec_dict: dict, out: str, shard_id: int, progress=None, made_by: dict | None = None) -> dict:
    """Render, write and record one shard; returns its record. Runs in any process. A shard that another
    process (an overlapping slice) finished meanwhile is not rendered again: its record comes back with
    `skipped` set."""
    spec = from_dict(DatasetSpec, spec_dict)
    out_path = Path(out)
    done = finished_record(out_path, spec, shard_id)
    if done is not None:
        if progress is not None:
            progress(done["count"])
        return {**done, "skipped": True}
    generator = _generator(spec)
    rejected_before = generator.sampler.rejected
    indices = spec.shard_range(shard_id)

    def samples():
        for index in indices:
            sample = generator.generate(index)
            if progress is not None:
                progress(1)
            yield encode_sample(sample.label, sample.images, spec.format, spec.jpeg_quality, spec.jpeg_subsampling,
                                spec.labels)

    record = write_shard(out_path / shard_name(shard_id), samples())
    record = {"shard": shard_name(shard_id), "id": shard_id, "first_index": indices.start, **record,
              "rejected_states": generator.sampler.rejected - rejected_before,
              "git_sha": code_version()["git_sha"], "host": socket.gethostname(), **(made_by or {})}
    write_record(out_path, shard_id, record)
    return record


def _init_worker(progress_queue) -> None:
    global _PROGRESS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool, quietly
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    _PROGRESS = progress_queue


def _pool_task(spec_dict: dict, out: str, shard_id: int) -> dict:
    return render_shard(spec_dict, out, shard_id, progress=lambda n: _PROGRESS.put(n))


def _ray_task(spec_dict: dict, out: str, shard_id: int) -> dict:
    import ray  # noqa: PLC0415

    return render_shard(spec_dict, out, shard_id, made_by={"ray_node": ray.get_runtime_context().get_node_id()})


def run_local(spec: DatasetSpec, out: Path, todo: list[int], workers: int, bar: tqdm) -> list[dict]:
    spec_dict = to_dict(spec)
    if workers == 1:
        return [render_shard(spec_dict, str(out), sid, progress=bar.update) for sid in todo]
    ctx = mp.get_context("spawn")  # never fork a process that may hold a GL context
    progress = ctx.Queue()
    records = []
    with ctx.Pool(workers, initializer=_init_worker, initargs=(progress,)) as pool:
        pending = [pool.apply_async(_pool_task, (spec_dict, str(out), sid)) for sid in todo]
        while pending:
            try:
                bar.update(progress.get(timeout=0.2))
            except queue.Empty:
                pass
            for result in [r for r in pending if r.ready()]:
                records.append(result.get())  # re-raises a worker's exception here
                pending.remove(result)
        pool.close()
    while True:
        try:
            bar.update(progress.get_nowait())
        except queue.Empty:
            break
    return records


def connect_ray(address: str) -> None:
    """Connect to Ray at `address`; its render tasks get WORKER_ENV and this process's GL platform."""
    env = {**WORKER_ENV, "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl"),
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    distributed.connect_ray(address, env)


def run_ray(spec: DatasetSpec, out: Path, todo: list[int], bar: tqdm) -> list[dict]:
    """Render the shards as Ray tasks (one CPU each) on the cluster this process is connected to."""
    import ray  # noqa: PLC0415

    task = ray.remote(num_cpus=1)(_ray_task)
    spec_dict = to_dict(spec)
    refs = [task.remote(spec_dict, str(out.resolve()), sid) for sid in todo]
    records = []
    while refs:
        done, refs = ray.wait(refs, num_returns=1)
        try:
            record = ray.get(done[0])
        except ray.exceptions.RayTaskError as e:
            cause = e.as_instanceof_cause()
            if isinstance(cause, UserError):
                raise UserError(str(cause)) from None
            raise
        records.append(record)
        bar.update(record["count"])
    return records


def parse_shards(text: str | None, num_shards: int) -> range:
    """'A:B' (B exclusive), 'A:', ':B' or 'A' -> the shard ids to render."""
    if text is None:
        return range(num_shards)
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            start, stop = int(a) if a else 0, int(b) if b else num_shards
        else:
            start = int(text)
            stop = start + 1
    except ValueError:
        raise UserError(f"--shards must look like A:B, A: or A, got '{text}'") from None
    if not 0 <= start < stop <= num_shards:
        raise UserError(f"--shards {text} is outside the dataset's shards 0:{num_shards}")
    return range(start, stop)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="render-shards", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", required=True, help="samples in the dataset: 1000, 250k, 10M, 1e6")
    p.add_argument("--out", required=True, help="dataset directory (created; resumed if it exists)")
    add_data_arguments(p)
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--format", choices=IMAGE_FORMATS, default="jpg", help="image encoding (default jpg)")
    p.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY,
                   help=f"JPEG quality, 1-95 (default {JPEG_QUALITY}; see BENCHMARKS.md for bytes vs accuracy)")
    p.add_argument("--jpeg-subsampling", choices=tuple(JPEG_SUBSAMPLING), default="444",
                   help="JPEG chroma subsampling: 444 (none, default) or 420")
    p.add_argument("--labels", choices=LABELS, default="full",
                   help="pose.json: full (default) or lean (without what config, seed and index recompute)")
    p.add_argument("--workers", default="auto", help="local render processes (default: one per core)")
    p.add_argument("--ray", metavar="ADDRESS", help="render on Ray: 'auto' (running cluster), 'local', or an address")
    p.add_argument("--shards", metavar="A:B", help="render only shards A..B-1 (array jobs)")
    p.add_argument("--preview", metavar="PNG", help="also write a contact sheet of the first samples")
    return p


def _human_bytes(n: float) -> str:
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            break
    return f"{n:.1f} {unit}"


def write_preview(out: Path, path: Path, samples: int = 4) -> None:
    """A contact sheet of the first samples of the lowest-numbered written shard, read back from disk."""
    from dexvision.datasets.reader import iter_shard  # noqa: PLC0415
    from dexvision.render.sheet import contact_sheet  # noqa: PLC0415

    manifest, _ = load_manifest(out)
    if not manifest["shards"]:
        return
    rows = []
    for images, pose in iter_shard(out / manifest["shards"][0]["shard"]):
        rows.append((images, pose))
        if len(rows) == samples:
            break
    write_output(path, contact_sheet(rows, annotate_labels=True).save, "preview")


def config_from_args(args: argparse.Namespace) -> tuple[DatasetSpec, range]:
    """The dataset's spec and the shards to render, from parsed flags (no files written, nothing started)."""
    n = parse_count(args.n)
    if args.shard_size < 1:
        raise UserError(f"--shard-size must be >= 1, got {args.shard_size}")
    if args.preview and Path(args.preview).suffix.lower() != ".png":
        raise UserError(f"--preview must name a .png file, got {args.preview}")
    resolve_workers(args.workers)
    if not 1 <= args.jpeg_quality <= 95:
        raise UserError(f"--jpeg-quality must be within [1, 95], got {args.jpeg_quality}")
    spec = DatasetSpec(n=n, shard_size=args.shard_size, format=args.format, jpeg_quality=args.jpeg_quality,
                       jpeg_subsampling=args.jpeg_subsampling, labels=args.labels, data=data_config(args))
    return spec, parse_shards(args.shards, spec.num_shards)


@cli
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    check_flags(args, "seed")  # before any file or directory is made
    spec, wanted = config_from_args(args)
    out = Path(args.out)
    workers = resolve_workers(args.workers)
    check_writable(out, "--out", directory=True)
    if args.preview:
        check_writable(args.preview, "--preview")
    if args.ray:
        distributed.check_ray_reachable(args.ray)  # in seconds, before the dataset directory is made
    prepare_directory(out, spec)
    done = read_records(out, spec)
    todo = [sid for sid in wanted if sid not in done]
    start = time.perf_counter()
    if todo and args.ray:
        connect_ray(args.ray)
    try:
        records = _render(args, spec, out, todo, workers)
    finally:
        if todo and args.ray:
            import ray  # noqa: PLC0415

            ray.shutdown()
    manifest = write_manifest(out, spec)
    elapsed = time.perf_counter() - start
    _report(out, records, manifest, elapsed)
    if args.preview:  # after the dataset's summary: a preview that cannot be written loses nothing
        write_preview(out, Path(args.preview))
    return 0


def _render(args: argparse.Namespace, spec: DatasetSpec, out: Path, todo: list[int], workers: int) -> list[dict]:
    """Render the shards `todo` locally or on Ray; their records. The manifest is rewritten on any exit."""
    total = sum(len(spec.shard_range(sid)) for sid in todo)
    records: list[dict] = []
    if todo:
        print(f"rendering {len(todo)} of {spec.num_shards} shards ({total:,} samples) into {out} "
              f"with {'Ray at ' + args.ray if args.ray else f'{min(workers, len(todo))} process(es)'}")
        with tqdm(total=total, unit="sample", desc="render-shards", smoothing=0.05) as bar:
            try:
                if args.ray:
                    records = run_ray(spec, out, todo, bar)
                else:
                    records = run_local(spec, out, todo, min(workers, len(todo)), bar)
            except KeyboardInterrupt:
                write_manifest(out, spec)
                raise Interrupted("interrupted; finished shards are kept: run the same command to resume") from None
            except BaseException:
                write_manifest(out, spec)
                raise
    return records


def _report(out: Path, records: list[dict], manifest: dict, elapsed: float) -> None:
    skipped = [r for r in records if r.get("skipped")]
    records = [r for r in records if not r.get("skipped")]
    if skipped:
        print(f"{len(skipped)} shard(s) were finished by another process meanwhile and were not rendered again")
    rendered = sum(r["count"] for r in records)
    if records:
        size = sum(r["bytes"] for r in records)
        rejected = sum(r["rejected_states"] for r in records)
        print(f"rendered {len(records)} shards ({rendered:,} samples) in {elapsed:.1f} s: "
              f"{rendered / elapsed:.1f} samples/s, {_human_bytes(size)} ({_human_bytes(size / rendered)}/sample), "
              f"{rejected} rejected states")
    else:
        print(f"nothing to render: the requested shards of {out} are complete")
    status = "complete" if manifest["complete"] else "incomplete"
    print(f"dataset {out}: {manifest['shards_written']}/{manifest['num_shards']} shards, "
          f"{manifest['samples_written']:,}/{manifest['num_samples']:,} samples, "
          f"{_human_bytes(manifest['bytes_written'])}, {status}")


if __name__ == "__main__":
    raise SystemExit(main())
