"""train-vision --follow: training on a dataset that render-shards is still writing."""

import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line

from dexvision.config import load_config
from dexvision.datasets import render_shards
from dexvision.datasets.follow import LeastReadShards, ShardWatcher
from dexvision.vision import train as train_cli
from dexvision.vision.checkpoint import load_checkpoint
from dexvision.vision.follow import held_out_ids

SMALL = ["--task", "gimbal-block", "--image-size", "32", "--workers", "1"]


def _render(out, shards="0:3"):
    """Three shards of 8 planned: 0 and 1 train, 2 is held out (the last, as 3 < 1 / val_fraction)."""
    return render_shards.main(["--n", "24", "--shard-size", "8", "--out", str(out), "--shards", shards, *SMALL])


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("follow") / "full"
    assert _render(out) == 0
    return out


def _publish(source: Path, dest: Path, shard_id: int) -> None:
    """Land a shard as render-shards does: the tar written under a temporary name and renamed into place, then
    its record."""
    name = f"shard-{shard_id:06d}"
    tmp = dest / f".{name}.tar.tmp-elsewhere-1-0000abcd"
    shutil.copy(source / f"{name}.tar", tmp)
    os.replace(tmp, dest / f"{name}.tar")
    shutil.copy(source / ".records" / f"{name}.json", dest / ".records" / f"{name}.json")


def _growing(source: Path, dest: Path, shards: list[int]) -> Path:
    """`source` as render-shards leaves it part way: its fresh manifest, and only `shards` finished."""
    (dest / ".records").mkdir(parents=True)
    manifest = json.loads((source / "dataset.json").read_text())
    manifest.update(shards=[], complete=False, shards_written=0, samples_written=0, bytes_written=0)
    (dest / "dataset.json").write_text(json.dumps(manifest))
    for shard_id in shards:
        _publish(source, dest, shard_id)
    return dest


def test_held_out_shards_are_spread_over_the_plan():
    assert held_out_ids(30, 0.1) == [9, 19, 29]
    assert held_out_ids(3, 0.1) == [2]  # fewer shards than the stride: the last one
    assert held_out_ids(6, 0.5) == [1, 3, 5]


def test_only_recorded_shards_count_never_a_temporary(source, tmp_path):
    data = _growing(source, tmp_path / "d", [0])
    (data / ".shard-000002.tar.tmp-otherhost-7-deadbeef").write_bytes(b"half a shard")  # a writer mid-shard
    shutil.copy(source / "shard-000001.tar", data / "shard-000001.tar")  # renamed into place, record to come
    watcher = ShardWatcher(data, wait_s=1)
    assert sorted(watcher.finished()) == [0]
    shutil.copy(source / ".records" / "shard-000001.json", data / ".records" / "shard-000001.json")
    assert sorted(watcher.finished()) == [0, 1]


def test_a_shard_that_just_landed_is_read_before_the_others_again(source, tmp_path):
    data = _growing(source, tmp_path / "d", [0, 2])
    shards = LeastReadShards(ShardWatcher(data, wait_s=1), [0, 1], mp.Array("q", 3))
    rng = np.random.default_rng(0)
    assert [shards.next_shard(rng) for _ in range(4)] == [0, 0, 0, 0]  # 2 is held out, 1 has not landed
    _publish(source, data, 1)
    assert [shards.next_shard(rng) for _ in range(4)] == [1, 1, 1, 1]  # until it has been read as often
    assert sorted(shards.next_shard(rng) for _ in range(6)) == [0, 0, 0, 1, 1, 1]  # then both in turn


def _config(data, out, steps, *sets):
    return load_config(train_cli.TrainVisionConfig, None, [
        f"data={data}", f"out={out}", f"steps={steps}", "batch_size=4", "num_workers=1", "shuffle_buffer=0",
        "warmup_steps=2", "val_every=1000", "log_every_s=0", "follow=true", "follow_wait_min=0.5", *sets])


def test_follow_takes_up_a_shard_written_between_two_steps(source, tmp_path):
    data = _growing(source, tmp_path / "d", [0, 2])
    junk = data / ".shard-000001.tar.tmp-otherhost-7-deadbeef"  # another writer's shard 1, half written
    junk.write_bytes(b"not a tar: reading it would fail the run")
    trainer = train_cli.VisionTrainer(_config(data, tmp_path / "run", 20))
    landed, train_step = [], trainer.train_step

    def step_then_render(*args):
        train_step(*args)
        if trainer.step == 4:  # render-shards writes shard 1 between steps 4 and 5
            assert _render(data, "1:2") == 0
            landed.append(trainer.step)

    trainer.train_step = step_then_render
    result = trainer.run()
    assert landed == [4] and junk.exists()
    reads = {r["id"]: r for r in result["follow"]["shards"]}
    assert sorted(reads) == [0, 1]  # never the held-out shard, never the temporary
    assert reads[0]["first_step"] == 1 and 4 < reads[1]["first_step"] <= 14  # taken up within the prefetch
    assert result["follow"]["samples_read"] == 80 == reads[0]["samples"] + reads[1]["samples"]
    assert result["validation"]["samples"] == 8  # the held-out shard 2
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["follow"]["shards"] == result["follow"]["shards"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["follow"]["shards"][1]["shard"] == "shard-000001.tar" and metrics["data"]["follow"]


def test_follow_on_a_finished_dataset_and_resume(source, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data", str(source), "--out", str(run), "--follow", "--batch-size", "4", "--num-workers", "0",
              "--set", "val_every=1000", "--set", "warmup_steps=2"]
    assert train_cli.main([*common, "--steps", "6"]) == 0
    assert "read 24 samples from" in capsys.readouterr().out
    assert train_cli.main([*common, "--steps", "10", "--resume"]) == 0
    result = json.loads((run / "metrics.json").read_text())
    assert result["steps"] == 10 and result["follow"]["samples_read"] == 40  # counted across the resume
    assert {r["id"] for r in result["follow"]["shards"]} == {0, 1} and result["validation"]["samples"] == 8


def test_follow_gives_up_in_one_line_when_nothing_comes(tmp_path, capsys):
    code = train_cli.main(["--data", str(tmp_path / "never"), "--out", str(tmp_path / "run"), "--follow",
                           "--set", "follow_wait_min=0.01"])
    assert code == 2
    err = capsys.readouterr().err
    one_error_line("\n".join(line for line in err.splitlines() if not line.startswith("waiting")),
                   "no dexvision dataset appeared at")
    assert train_cli.main(["--data", str(tmp_path), "--follow", "--set", "follow_wait_min=-1"]) == 2
    one_error_line(capsys.readouterr().err, "follow_wait_min -1.0 goes past its valid bounds >= 0")


def test_train_vision_waits_for_render_shards_started_after_it(source, tmp_path):
    # The trainer starts first, on a directory that does not exist yet; render-shards starts once the trainer
    # has said it is waiting (no sleeps: the test reads the trainer's stderr).
    data, run = tmp_path / "growing", tmp_path / "run"
    trainer = subprocess.Popen(
        [sys.executable, "-m", "dexvision.vision.train", "--data", str(data), "--val-data", str(source),
         "--out", str(run), "--follow", "--steps", "12", "--batch-size", "4", "--num-workers", "1",
         "--set", "warmup_steps=2", "--set", "val_every=1000", "--set", "follow_wait_min=5"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        lines = [trainer.stderr.readline()]
        while lines[-1] and "waiting for the dataset" not in lines[-1]:
            lines.append(trainer.stderr.readline())
        assert lines[-1] and not data.exists(), lines  # waiting, for a dataset nobody has started yet
        assert _render(data) == 0
        out, err = trainer.communicate(timeout=300)
    finally:
        trainer.kill()
    assert trainer.returncode == 0, err[-2000:]
    result = json.loads((run / "metrics.json").read_text())
    assert result["follow"]["shards_read"] >= 1 and result["validation"]["samples"] == 24
    assert "read 48 samples from" in out


@pytest.mark.slow
def test_follow_under_torchrun_records_every_rank(source, tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    run = tmp_path / "ddp"
    res = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "dexvision.vision.train",
                          "--data", str(source), "--out", str(run), "--follow", "--steps", "5", "--batch-size", "4",
                          "--num-workers", "1", "--set", "val_every=1000"],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((run / "metrics.json").read_text())
    assert result["world_size"] == 2 and result["follow"]["samples_read"] == 2 * 5 * 4  # both ranks' batches
    assert {r["id"] for r in result["follow"]["shards"]} == {0, 1}  # each rank prefers its own shard
