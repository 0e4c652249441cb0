"""Cluster use: render-shards started many times at once on one new directory, a real two-node Ray
cluster (render-shards and run-experiment over it), and user errors that no worker process adds to."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import one_error_line
from dexvision.datasets import render_shards, shards, verify
from dexvision.errors import UserError
from dexvision.files import STALE_TEMP_S, stale_temp, temp_name
from dexvision.render.sample import DataConfig

SMALL = ["--task", "gimbal-block", "--image-size", "32"]
BIN = Path(sys.executable).parent


def shas(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("shard-*.tar"))}


def spec(n: int = 30, seed: int = 0) -> shards.DatasetSpec:
    return shards.DatasetSpec(n=n, shard_size=5, data=DataConfig(task="gimbal-block", seed=seed))


def together(calls: list) -> list:
    """Run the callables in threads released at the same instant; each one's result or exception."""
    gate = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i):
        gate.wait()
        try:
            results[i] = calls[i]()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_simultaneous_starters_create_the_dataset_once(tmp_path, monkeypatch):
    out = tmp_path / "new"
    created = []
    real = shards._create_manifest
    monkeypatch.setattr(shards, "_create_manifest", lambda o, s: created.append(real(o, s)) or created[-1])
    results = together([lambda: shards.prepare_directory(out, spec()) for _ in range(8)])
    assert results == [None] * 8  # every starter joined
    assert created.count(True) == 1  # and exactly one of those that raced created it
    assert shards.load_manifest(out)[1] == spec()
    assert sorted(p.name for p in out.iterdir()) == [".records", "dataset.json"]


def test_a_different_spec_is_refused_whoever_came_first(tmp_path):
    out = tmp_path / "mixed"
    a, b = spec(seed=0), spec(seed=1)
    results = together([lambda s=s: shards.prepare_directory(out, s) for s in [a, b] * 4])
    winner = shards.load_manifest(out)[1]
    for s, result in zip([a, b] * 4, results):
        if s == winner:
            assert result is None
        else:
            assert isinstance(result, UserError) and "different config (data.seed" in str(result)


def test_a_directory_half_made_by_another_starter_is_joined_a_foreign_one_refused(tmp_path):
    racing = tmp_path / "racing"
    (racing / shards.RECORDS).mkdir(parents=True)  # another starter got this far
    (racing / ".dataset.json.claim-0123abcd").write_text("{")
    shards.prepare_directory(racing, spec())
    assert shards.load_manifest(racing)[1] == spec()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty and holds no dexvision dataset"):
        shards.prepare_directory(foreign, spec())


def test_only_leftovers_of_dead_or_silent_writers_are_cleaned(tmp_path):
    out = tmp_path / "ds"
    shards.prepare_directory(out, spec())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live_here = temp_name(out / "shard-000000.tar")  # this process: a writer that is still at work
    dead_here = out / live_here.name.replace(f"-{os.getpid()}-", f"-{int(dead.stdout)}-")
    other_fresh = out / ".shard-000001.tar.tmp-otherhost-42-0123abcd"
    other_silent = out / ".shard-000002.tar.tmp-otherhost-43-0123abcd"
    legacy = out / ".shard-000003.tar.tmp-deadbeef"
    for path in (live_here, dead_here, other_fresh, other_silent, legacy):
        path.write_bytes(b"partial")
    old = time.time() - STALE_TEMP_S - 60
    os.utime(other_silent, (old, old))
    assert [stale_temp(p) for p in (live_here, dead_here, other_fresh, other_silent, legacy)] == [
        False, True, False, True, True]
    shards.prepare_directory(out, spec())  # a second starter joins
    assert sorted(p.name for p in out.glob(".shard-*")) == sorted([live_here.name, other_fresh.name])


def test_the_manifest_keeps_a_record_that_lands_while_it_is_written(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    s = spec(n=10)
    assert render_shards.main(["--n", "10", "--shard-size", "5", "--out", str(out), "--workers", "1",
                               "--shards", "0:1", *SMALL]) == 0
    late = json.loads(shards.record_path(out, 0).read_text())
    (out / "shard-000001.tar").write_bytes((out / "shard-000000.tar").read_bytes())
    real, calls = shards._atomic_json, []

    def racing_write(path, obj):  # another process finishes shard 1 between our read and our rename
        calls.append(path)
        if len(calls) == 1:
            shards.write_record(out, 1, {**late, "id": 1, "shard": "shard-000001.tar"})
        real(path, obj)

    monkeypatch.setattr(shards, "_atomic_json", racing_write)
    manifest = shards.write_manifest(out, s)
    assert manifest["shards_written"] == 2 and manifest["complete"]
    assert len(calls) >= 3  # the first rename missed shard 1, so it was written again


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The 30-sample dataset rendered by one process."""
    out = tmp_path_factory.mktemp("ref") / "one"
    assert render_shards.main(["--n", "30", "--shard-size", "5", "--out", str(out), "--workers", "1", *SMALL]) == 0
    return out


@pytest.mark.slow
def test_four_simultaneous_render_shards_on_a_new_directory(reference, tmp_path):
    out = tmp_path / "four"
    procs = [subprocess.Popen([str(BIN / "render-shards"), "--n", "30", "--shard-size", "5", "--out", str(out),
                               "--workers", "1", "--shards", rng, *SMALL],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rng in ("0:3", "2:5", "4:6", "1:6")]  # overlapping slices, all started together
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
    assert verify.main([str(out), "--workers", "1"]) == 0
    assert shas(out) == shas(reference)
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["complete"] and manifest["samples_written"] == 30
    assert not list(out.glob(".*tmp*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def two_node_ray(tmp_path, monkeypatch):
    """A Ray cluster of two nodes on this machine (one CPU each): `ray start --head`, then a second
    `ray start --address` joining it, as on two machines. Token authentication, with the token in a
    file every node and driver is pointed to (as on a real cluster; and a token the user's
    ~/.ray may hold from another cluster cannot get in the way). Yields the head's address."""
    pytest.importorskip("ray")
    import secrets

    token = tmp_path / "ray-token"
    token.write_text(secrets.token_hex(32))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))  # inherited by every command below
    ray_cli = str(BIN / "ray")
    address = f"127.0.0.1:{_free_port()}"
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        for args in (["--head", "--node-ip-address", "127.0.0.1", "--port", address.split(":")[1],
                      "--include-dashboard=false"], ["--address", address]):
            res = subprocess.run([ray_cli, "start", *args, *common], capture_output=True, text=True, timeout=180)
            assert res.returncode == 0, res.stderr[-2000:]
        yield address
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)


@pytest.mark.slow
def test_a_two_node_ray_cluster_renders_the_same_bytes_and_runs_an_experiment(reference, two_node_ray, tmp_path):
    out = tmp_path / "ray"
    res = subprocess.run([str(BIN / "render-shards"), "--n", "30", "--shard-size", "5", "--out", str(out),
                          "--ray", two_node_ray, *SMALL], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert shas(out) == shas(reference)
    records = json.loads((out / "dataset.json").read_text())["shards"]
    assert len({r["ray_node"] for r in records}) == 2  # shards came from both nodes

    from test_experiment import TINY

    doc = {"title": "Two runs over Ray", "runs_dir": str(tmp_path / "runs"),
           "defaults": {"command": "train-policy", "args": {"steps": 80, "set": dict(TINY)}},
           "run_sets": [{"name": "a", "color": "#1f77b4", "runs": [{"name": "one"}]},
                        {"name": "b", "color": "#d62728", "runs": [{"name": "two", "args": {"seed": 1}}]}],
           "sections": []}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = subprocess.run([str(BIN / "run-experiment"), str(study), "--ray", "auto", "--cpus-per-run", "1"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    done = [json.loads((tmp_path / "runs" / "logs" / f"{n}.done.json").read_text()) for n in ("one", "two")]
    assert all(d["exit_code"] == 0 for d in done)
    assert len({d["node"] for d in done}) == 2  # one run on each node
    assert all((tmp_path / "runs" / n / "metrics.json").exists() for n in ("one", "two"))


def _one_line_and_nothing_else(res: subprocess.CompletedProcess, fragment: str) -> None:
    assert res.returncode == 2, res.stderr[-2000:]
    one_error_line(res.stderr, fragment)
    assert "Traceback" not in res.stdout + res.stderr


@pytest.mark.slow
def test_user_errors_of_commands_that_start_workers_are_one_line_from_one_process(reference, tmp_path):
    run = lambda *argv: subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,  # noqa: E731
                                       timeout=300, cwd=tmp_path)
    # render-shards: two workers asked for, a dataset of another spec in the way
    res = run("render-shards", "--n", "30", "--shard-size", "5", "--seed", "3", "--workers", "2",
              "--out", str(reference), *SMALL)
    _one_line_and_nothing_else(res, "different config (data.seed: 3 here, 0 in the directory)")
    # train-policy from pixels with render workers, and a pretrained encoder that is not there
    res = run("train-policy", "--obs", "pixels", "--init-vision", str(tmp_path / "missing.pt"), "--steps", "80",
              "--num-envs", "4", "--set", "render_workers=2", "--out", str(tmp_path / "p"))
    _one_line_and_nothing_else(res, "checkpoint not found")
    # train-policy on the hand with env workers, a bad --steps count and then a missing resume
    res = run("train-policy", "--task", "hand-block", "--env-workers", "2", "--steps", "lots")
    _one_line_and_nothing_else(res, "--steps must be a positive count")
    res = run("train-policy", "--task", "hand-block", "--env-workers", "2", "--out", str(tmp_path / "h"),
              "--resume")
    _one_line_and_nothing_else(res, "--resume: no checkpoint in")
    # evaluate-policy with env workers and no checkpoint
    res = run("evaluate-policy", "--checkpoint", str(tmp_path / "missing.pt"), "--env-workers", "2")
    _one_line_and_nothing_else(res, "checkpoint not found")
    # run-experiment: a mistake in the last run is found before the first one starts
    doc = {"title": "Broken", "runs_dir": str(tmp_path / "runs"),
           "setup": [{"name": "first", "command": "train-policy", "args": {"steps": 80}}],
           "run_sets": [{"name": "a", "color": "#1f77b4", "runs": [
               {"name": "last", "command": "train-policy", "args": {"set": {"num_envz": 4}}}]}],
           "sections": []}
    study = tmp_path / "broken.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = run("run-experiment", str(study))
    _one_line_and_nothing_else(res, "run 'last': unknown config key 'num_envz'")
    assert not (tmp_path / "runs").exists()  # nothing started
