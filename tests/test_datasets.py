"""render-shards / verify-shards / the shard format and readers."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line
import webdataset as wds
from PIL import Image

from dexvision.datasets import render_shards, shards, verify
from dexvision.datasets.format import parse_count
from dexvision.datasets.reader import iter_shard
from dexvision.errors import UserError
from dexvision.sim.rotations import quat_to_matrix

SMALL = ["--task", "gimbal-block", "--image-size", "32"]


def render(out, n=12, shard_size=5, workers="1", extra=()):
    return render_shards.main(["--n", str(n), "--shard-size", str(shard_size), "--out", str(out),
                               "--workers", workers, *SMALL, *extra])


def shas(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("shard-*.tar"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "gimbal"
    assert render(out) == 0
    return out


@pytest.mark.parametrize("text, n", [("1000", 1000), ("250k", 250_000), ("10M", 10_000_000), ("1e6", 10**6),
                                     (" 2K ", 2000), ("1.5k", 1500), ("1G", 10**9)])
def test_counts(text, n):
    assert parse_count(text) == n


@pytest.mark.parametrize("text", ["0", "-5", "lots", "1.5", "", "10X", "0.0001k"])
def test_bad_counts(text):
    with pytest.raises(UserError):
        parse_count(text)


def test_layout_and_manifest(dataset):
    names = sorted(p.name for p in dataset.iterdir())
    assert names == [".records", "dataset.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    manifest = json.loads((dataset / "dataset.json").read_text())
    assert manifest["format"] == "dexvision-shards/1"
    assert manifest["complete"] and manifest["num_samples"] == 12 and manifest["samples_written"] == 12
    assert [s["count"] for s in manifest["shards"]] == [5, 5, 2]
    assert manifest["spec"]["data"]["task"] == "gimbal-block"
    assert manifest["spec"]["data"]["render"]["image_size"] == 32
    assert len(manifest["code_version"]["git_sha"]) >= 7
    for record in manifest["shards"]:
        assert record["sha256"] == hashlib.sha256((dataset / record["shard"]).read_bytes()).hexdigest()


def test_tarfile_round_trip(dataset):
    with tarfile.open(dataset / "shard-000001.tar") as tar:
        members = tar.getmembers()
        assert [m.name for m in members[:4]] == ["000000005.cam0.jpg", "000000005.cam1.jpg",
                                                 "000000005.cam2.jpg", "000000005.pose.json"]
        assert all(m.mtime == 0 and m.uid == 0 for m in members)
        pose = json.loads(tar.extractfile(members[3]).read())
        img = Image.open(tar.extractfile(members[0]))
        assert img.size == (32, 32) and img.format == "JPEG"
    assert pose["index"] == 5 and pose["task"] == "gimbal-block"
    for field in ("position", "quaternion", "qpos", "cameras", "randomization"):
        assert field in pose


def test_plain_webdataset_round_trip(dataset):
    urls = [str(dataset / f"shard-{i:06d}.tar") for i in range(3)]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in samples] == [f"{i:09d}" for i in range(12)]
    for s in samples:
        assert {"cam0.jpg", "cam1.jpg", "cam2.jpg", "pose.json"} <= set(s)
        assert json.loads(s["pose.json"])["index"] == int(s["__key__"])


def test_bop_fields_agree_with_the_opencv_pose(dataset):
    images, pose = next(iter_shard(dataset / "shard-000000.tar"))
    R_obj = quat_to_matrix(np.asarray(pose["quaternion"]))
    for cam in pose["cameras"]:
        R, t, K = (np.asarray(cam[k]) for k in ("R", "t", "K"))
        np.testing.assert_allclose(np.reshape(cam["cam_R_m2c"], (3, 3)), R @ R_obj, atol=1e-9)
        np.testing.assert_allclose(cam["cam_t_m2c"], (R @ pose["position"] + t) * 1000, atol=1e-6)
        np.testing.assert_allclose(np.reshape(cam["cam_K"], (3, 3)), K)
    assert len(images) == 3 and images[0].shape == (32, 32, 3)


def test_shards_do_not_depend_on_worker_count(dataset, tmp_path):
    assert render(tmp_path / "two", workers="2") == 0
    assert shas(tmp_path / "two") == shas(dataset)


def test_resume_renders_only_what_is_missing(dataset, tmp_path, capsys):
    out = tmp_path / "resume"
    assert render(out, extra=["--shards", "0:1"]) == 0
    manifest = json.loads((out / "dataset.json").read_text())
    assert not manifest["complete"] and manifest["shards_written"] == 1
    first = (out / "shard-000000.tar").stat().st_mtime_ns
    capsys.readouterr()
    assert render(out) == 0
    assert "rendering 2 of 3 shards" in capsys.readouterr().out
    assert (out / "shard-000000.tar").stat().st_mtime_ns == first  # not rewritten
    assert shas(out) == shas(dataset)
    assert render(out) == 0
    assert "nothing to render" in capsys.readouterr().out


def test_partial_and_unrecorded_shards_do_not_count(dataset, tmp_path):
    out = tmp_path / "crash"
    assert render(out, extra=["--shards", "0:2"]) == 0
    # As after a kill -9: a temporary file mid-write, and a renamed shard whose record never landed.
    (out / ".shard-000002.tar.tmp-deadbeef").write_bytes(b"partial")
    (out / shards.RECORDS / "shard-000001.json").unlink()
    spec = shards.load_manifest(out)[1]
    assert sorted(shards.read_records(out, spec)) == [0]
    assert render(out) == 0
    assert not list(out.glob(".*tmp*"))
    assert shas(out) == shas(dataset)


# Run render-shards so that it kills itself with SIGKILL halfway through writing its third shard: a
# deterministic kill -9 mid-write (no polling for files, no time limit to race).
_KILL_MID_THIRD_SHARD = """
import os, signal, sys
from dexvision.datasets import render_shards
real, calls = render_shards.write_shard, []

def write_shard(path, samples):
    calls.append(path)
    if len(calls) < 3:
        return real(path, samples)
    def until_killed():
        for i, sample in enumerate(samples):
            if i == 5:
                os.kill(os.getpid(), signal.SIGKILL)
            yield sample
    return real(path, until_killed())

render_shards.write_shard = write_shard
sys.exit(render_shards.main(sys.argv[1:]))
"""


def test_kill_9_mid_run_then_resume(dataset, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", _KILL_MID_THIRD_SHARD, "--n", "60", "--shard-size", "10", "--out", str(out),
           "--workers", "1", *SMALL]
    res = subprocess.run(cmd, capture_output=True, timeout=300)
    assert res.returncode == -signal.SIGKILL
    assert list(out.glob(".shard-000002.tar.tmp-*"))  # the third shard was cut off mid-write
    spec = shards.load_manifest(out)[1]
    done = shards.read_records(out, spec)
    assert sorted(done) == [0, 1]
    # Every shard that counts is whole: its checksum matches its record.
    for sid, record in done.items():
        assert hashlib.sha256((out / f"shard-{sid:06d}.tar").read_bytes()).hexdigest() == record["sha256"]
    assert render(out, n=60, shard_size=10) == 0
    assert verify.main([str(out), "--workers", "1"]) == 0
    assert not list(out.glob(".*.tmp-*"))
    fresh = tmp_path / "fresh"
    assert render(fresh, n=60, shard_size=10) == 0
    assert shas(out) == shas(fresh)


def _one_line(capsys, *fragments):
    one_error_line(capsys.readouterr().err, *fragments)


@pytest.mark.parametrize("n, fragment", [("0", "at least 1"), ("-5", "positive count"), ("lots", "positive count")])
def test_bad_n(n, fragment, tmp_path, capsys):
    assert render_shards.main(["--n", n, "--out", str(tmp_path / "x")]) == 2
    _one_line(capsys, fragment)
    assert not (tmp_path / "x").exists()


def test_bad_task_and_unwritable_dir(tmp_path, capsys):
    assert render_shards.main(["--n", "10", "--task", "cube", "--out", str(tmp_path / "x")]) == 2
    _one_line(capsys, "unknown task 'cube'")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    target = locked / "ds"
    code = render_shards.main(["--n", "10", "--out", str(target), *SMALL])
    locked.chmod(0o700)
    if os.geteuid() == 0:  # root writes anywhere: use a path that cannot be a directory instead
        (tmp_path / "file").write_text("x")
        code = render_shards.main(["--n", "10", "--out", str(tmp_path / "file" / "ds"), *SMALL])
    assert code == 2
    _one_line(capsys, "cannot write to")


def test_foreign_directory_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert render_shards.main(["--n", "10", "--out", str(tmp_path), *SMALL]) == 2
    _one_line(capsys, "not empty and holds no dexvision dataset")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_different_config_is_refused(dataset, capsys):
    assert render_shards.main(["--n", "12", "--shard-size", "5", "--out", str(dataset), "--task", "gimbal-block",
                               "--image-size", "48"]) == 2
    _one_line(capsys, "different config", "data.render.image_size: 48 here, 32 in the directory")


def test_disk_full_mid_shard(tmp_path, capsys, monkeypatch):
    # /dev/full fails every write with ENOSPC, as a full disk does.
    monkeypatch.setattr(shards, "_open_temp", lambda path: open("/dev/full", "wb", buffering=0))
    out = tmp_path / "full"
    assert render(out) == 2
    _one_line(capsys, "disk full while writing", "run the same command again to resume")
    assert not list(out.glob("shard-*.tar")) and not list(out.glob(".shard-*"))


def test_verify_names_corrupt_and_missing_shards(dataset, tmp_path, capsys):
    assert verify.main([str(dataset), "--workers", "1"]) == 0
    assert "3/3 shards OK" in capsys.readouterr().out
    broken = tmp_path / "broken"
    assert render(broken) == 0
    data = bytearray((broken / "shard-000001.tar").read_bytes())
    data[700] ^= 0xFF
    (broken / "shard-000001.tar").write_bytes(bytes(data))
    (broken / "shard-000002.tar").unlink()
    capsys.readouterr()
    assert verify.main([str(broken), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "BAD shard-000001.tar: sha256 does not match" in out
    assert "BAD shard-000002.tar: missing" in out
    assert "BAD shard-000000.tar" not in out
    assert verify.main([str(tmp_path / "nowhere")]) == 2


def test_verify_decodes_images_and_labels(dataset, tmp_path, monkeypatch):
    # A shard whose checksum matches the manifest but whose labels are wrong (a writer bug) is caught.
    spec = shards.load_manifest(dataset)[1]
    record = json.loads((dataset / "dataset.json").read_text())["shards"][0]
    assert verify.check_shard(dataset, spec, 0, record, quick=False) is None
    monkeypatch.setattr(verify, "check_pose", lambda pose, n, labels="full": ["quaternion is not a unit [w, x, y, z]"])
    assert "quaternion is not a unit" in verify.check_shard(dataset, spec, 0, record, quick=False)
    assert verify.check_shard(dataset, spec, 0, record, quick=True) is None


def test_preview_is_read_back_from_the_shards(tmp_path):
    out = tmp_path / "prev"
    assert render(out, extra=["--preview", str(tmp_path / "preview.png")]) == 0
    assert Image.open(tmp_path / "preview.png").size == (3 * 34 - 2, 4 * 34 - 2)


@pytest.mark.slow
def test_ray_local_cluster_writes_the_same_bytes(dataset, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    assert render(out, extra=["--ray", "local"]) == 0
    assert shas(out) == shas(dataset)


# A Ray cluster of two nodes (render-shards --ray ADDRESS, run-experiment --ray auto): tests/test_cluster.py


def test_loader_yields_every_sample_once(dataset):
    from dexvision.datasets.loader import make_loader

    seen = []
    for batch in make_loader(dataset, batch_size=4, num_workers=2, shuffle_buffer=8):
        assert batch["images"].shape[1:] == (3, 3, 32, 32)
        assert batch["position"].shape[1:] == (3,) and batch["quaternion"].shape[1:] == (4,)
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(12))


def test_loader_splits_shards_by_node(dataset, monkeypatch):
    from dexvision.datasets.loader import make_loader

    per_rank = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        per_rank.append({i for b in make_loader(dataset, batch_size=4, num_workers=0) for i in b["index"].tolist()})
    assert per_rank[0] and per_rank[1]
    assert not per_rank[0] & per_rank[1]
    assert per_rank[0] | per_rank[1] == set(range(12))


def test_lean_encoding_is_smaller_verifies_and_loads(dataset, tmp_path):
    from dexvision.datasets.format import LEAN_FIELDS
    from dexvision.datasets.loader import make_loader

    out = tmp_path / "lean"
    assert render(out, extra=["--jpeg-quality", "75", "--jpeg-subsampling", "420", "--labels", "lean"]) == 0
    assert verify.main([str(out), "--workers", "1"]) == 0
    lean, full = (json.loads((d / "dataset.json").read_text()) for d in (out, dataset))
    assert lean["spec"]["labels"] == "lean" and lean["spec"]["jpeg_quality"] == 75
    assert lean["bytes_written"] < 0.8 * full["bytes_written"]
    (images, pose), (full_images, full_pose) = next(iter_shard(out / "shard-000000.tar")), \
        next(iter_shard(dataset / "shard-000000.tar"))
    assert tuple(pose) == LEAN_FIELDS and set(pose["cameras"][0]) == {"K", "R", "t", "width", "height"}
    assert pose["quaternion"] == full_pose["quaternion"] and pose["qpos"] == full_pose["qpos"]  # same samples
    other = list(iter_shard(dataset / "shard-000000.tar"))[1][0]
    diff = lambda a, b: np.abs(a[0].astype(int) - b[0].astype(int)).mean()  # noqa: E731
    assert diff(images, full_images) < 0.5 * diff(images, other)  # the same image, coarser
    batch = next(iter(make_loader(out, batch_size=4, num_workers=0)))
    assert batch["images"].shape[1:] == (3, 3, 32, 32)


def test_a_dataset_from_before_the_encoding_options_resumes(tmp_path, capsys):
    out = tmp_path / "old"
    assert render(out, extra=["--shards", "0:1"]) == 0
    manifest = json.loads((out / "dataset.json").read_text())
    for key in ("jpeg_quality", "jpeg_subsampling", "labels"):
        del manifest["spec"][key]
    (out / "dataset.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert render(out) == 0
    assert "rendering 2 of 3 shards" in capsys.readouterr().out
    assert render(out, extra=["--jpeg-quality", "90"]) == 2
    one_error_line(capsys.readouterr().err, "different config (jpeg_quality: 90 here, 95 in the directory)")


def test_bad_jpeg_quality_is_one_line(tmp_path, capsys):
    assert render(tmp_path / "q", extra=["--jpeg-quality", "0"]) == 2
    one_error_line(capsys.readouterr().err, "--jpeg-quality must be within [1, 95]")
    assert not (tmp_path / "q").exists()
