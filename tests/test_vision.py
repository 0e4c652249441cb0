"""Pose model, rotation math, losses, train-vision / evaluate-vision, tracking."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line
import torch

from dexvision.datasets import render_shards
from dexvision.errors import UserError
from dexvision.sim import rotations as np_rot
from dexvision.track.run import read_metrics
from dexvision.version import git_sha
from dexvision.vision import evaluate as evaluate_cli
from dexvision.vision import train as train_cli
from dexvision.vision.checkpoint import load_checkpoint, load_encoder
from dexvision.vision.encoders import create_encoder
from dexvision.vision.model import PoseNet, PoseNetConfig, pose_errors, pose_loss, summarize
from dexvision.vision.rotations import geodesic_angle, matrix_to_rot6d, quat_to_matrix, rot6d_to_matrix


@pytest.mark.parametrize("arch, size", [("impala", 32), ("impala", 64), ("resnet50", 32), ("resnet18", 32)])
def test_encoders_forward_and_backward(arch, size):
    model = PoseNet(PoseNetConfig(arch=arch, image_size=size, num_cameras=3, head_hidden=32))
    images = torch.randint(0, 256, (2, 3, 3, size, size), dtype=torch.uint8)
    out = model(images)
    assert out["position"].shape == (2, 3) and out["rotation"].shape == (2, 3, 3)
    loss = pose_loss(out, torch.zeros(2, 3), torch.tensor([[1.0, 0, 0, 0]] * 2))["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.encoder.num_features > 0


def test_impala_has_the_published_shape():
    enc = create_encoder("impala", 64)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[::5]] == [16, 32, 32]  # one stage conv then 4 residual convs
    assert len(convs) == 15 and enc.num_features == 256


def test_unknown_encoder_lists_the_valid_ones():
    with pytest.raises(UserError, match="valid: impala, resnet50, or any timm model"):
        create_encoder("resnet5", 64)


def test_rot6d_round_trip_and_orthonormality():
    q = torch.tensor(np_rot.random_quat(np.random.default_rng(0), 16), dtype=torch.float64)
    R = quat_to_matrix(q)
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R)), R)
    M = rot6d_to_matrix(torch.randn(16, 6, dtype=torch.float64))
    torch.testing.assert_close(M @ M.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(16, 3, 3))
    assert torch.allclose(torch.det(M), torch.ones(16, dtype=torch.float64))


def test_torch_quaternions_match_numpy_and_are_sign_invariant():
    q = np_rot.random_quat(np.random.default_rng(1), 8)
    torch.testing.assert_close(quat_to_matrix(torch.tensor(q)), torch.tensor(np_rot.quat_to_matrix(q)))
    torch.testing.assert_close(quat_to_matrix(-torch.tensor(q)), quat_to_matrix(torch.tensor(q)))


def test_geodesic_angle_hand_computed():
    eye = torch.eye(3)
    rz90 = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert geodesic_angle(eye, rz90).item() == pytest.approx(math.pi / 2, abs=1e-6)
    rx180 = torch.diag(torch.tensor([1.0, -1, -1]))
    assert geodesic_angle(eye, rx180).item() == pytest.approx(math.pi, abs=1e-3)
    assert geodesic_angle(rz90, rz90).item() == pytest.approx(0.0, abs=1e-3)


def test_losses_and_errors_hand_computed():
    identity = torch.tensor([[1.0, 0, 0, 0]])
    pred = {"position": torch.tensor([[0.05, 0.0, 0.0]]), "rotation": torch.diag(torch.tensor([1.0, -1, -1]))[None]}
    losses = pose_loss(pred, torch.zeros(1, 3), identity, scale=0.05)
    assert losses["position"].item() == pytest.approx(1.0)  # 5 cm off, in units of 5 cm, squared
    assert losses["rotation"].item() == pytest.approx(8.0)  # ||I - diag(1,-1,-1)||_F^2 = 2 * (3 - (-1))
    errs = pose_errors(pred, torch.zeros(1, 3), identity)
    assert errs["position_mm"].item() == pytest.approx(50.0)
    assert errs["orientation_deg"].item() == pytest.approx(180.0, abs=0.1)
    perfect = {"position": torch.zeros(1, 3), "rotation": torch.eye(3)[None]}
    assert pose_loss(perfect, torch.zeros(1, 3), identity)["loss"].item() == pytest.approx(0.0, abs=1e-7)


def test_summary_statistics():
    stats = summarize({"x": torch.arange(1.0, 11.0)})
    assert stats["x/mean"] == pytest.approx(5.5)
    assert stats["x/median"] == pytest.approx(5.5)
    assert stats["x/p90"] == pytest.approx(9.1)


# -- end to end on a tiny rendered dataset -----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("vision") / "hand"
    code = render_shards.main(["--n", "48", "--shard-size", "8", "--task", "hand-block", "--image-size", "32",
                               "--workers", "2", "--out", str(out)])
    assert code == 0
    return out


def _train(data, out, steps, *extra):
    return train_cli.main(["--data", str(data), "--out", str(out), "--steps", str(steps), "--batch-size", "8",
                           "--num-workers", "1", "--lr", "2e-3", "--set", "log_every_s=0", "--set", "warmup_steps=5",
                           "--set", "val_every=1000", "--set", "shuffle_buffer=16", *extra])


def test_training_lowers_the_loss_and_writes_a_checkpoint(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    assert _train(tiny_data, run_dir, 160) == 0
    losses = [m["losses/total"] for m in read_metrics(run_dir) if "losses/total" in m]
    assert len(losses) >= 150
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:20])
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["steps"] == 160 and result["images_per_s"] > 0
    assert set(result["validation"]) >= {"position_mm/median", "orientation_deg/p90", "position_mm/mean"}
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    assert ckpt["step"] == 160 and ckpt["git_sha"] == git_sha()
    assert ckpt["data"]["spec_sha256"] and ckpt["config"]["arch"] == "impala"
    # The run is tracked under a name that starts with the code's short SHA.
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["name"].startswith(git_sha()[:7] + "-") and meta["config"]["steps"] == 160
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    logged = read_metrics(run_dir)[0]
    for key in ("charts/learning_rate", "perf/images_per_s", "perf/data_wait_fraction", "system/cpu_percent",
                "system/ram_used_gb", "errors/train_orientation_deg_median"):
        assert key in logged
    # evaluate-vision reads the checkpoint and writes the same metrics.
    out = tmp_path / "eval.json"
    assert evaluate_cli.main(["--checkpoint", str(run_dir / "checkpoint.pt"), "--data", str(tiny_data),
                              "--num-workers", "0", "--out", str(out)]) == 0
    evaluated = json.loads(out.read_text())
    assert evaluated["metrics"]["samples"] == 48 and evaluated["step"] == 160
    # The encoder alone comes back from the file, with the trained weights.
    encoder, cfg = load_encoder(run_dir / "checkpoint.pt")
    trained = {k[len("encoder."):]: v for k, v in ckpt["model"].items() if k.startswith("encoder.")}
    for name, tensor in encoder.state_dict().items():
        torch.testing.assert_close(tensor, trained[name])
    assert cfg.arch == "impala" and cfg.num_cameras == 3


def test_resume_continues_the_step_count(tiny_data, tmp_path):
    run_dir = tmp_path / "resume"
    assert _train(tiny_data, run_dir, 10) == 0
    assert _train(tiny_data, run_dir, 16, "--resume") == 0
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 16
    steps = [m["step"] for m in read_metrics(run_dir) if "losses/total" in m]
    assert steps[:10] == list(range(1, 11)) and steps[10:] == list(range(11, 17))
    assert json.loads((run_dir / "run.json").read_text())["config"]["steps"] == 10  # the run keeps its name


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "dexvision.vision.train", *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_torchrun_two_processes(tiny_data, tmp_path):
    run_dir = tmp_path / "ddp"
    res = _torchrun(["--data", str(tiny_data), "--out", str(run_dir), "--steps", "6", "--batch-size", "4",
                     "--num-workers", "1", "--set", "val_every=1000"])
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["world_size"] == 2 and result["steps"] == 6
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 6


@pytest.mark.slow
def test_torchrun_time_limit_stops_every_rank_at_the_same_step(tiny_data, tmp_path):
    # A limit of 30 s with far more steps than fit (6 s, and with three jobs on 2 cores 15 s, ran out before the
    # first step):
    # the ranks see the deadline at different moments, and must still stop together (a rank that stopped alone would leave the other in a collective).
    run_dir = tmp_path / "ddp-limit"
    res = _torchrun(["--data", str(tiny_data), "--out", str(run_dir), "--steps", "100000", "--batch-size", "4",
                     "--num-workers", "1", "--set", "val_every=100000", "--set", "time_limit_min=0.5"])
    assert res.returncode == 0, res.stderr[-3000:]
    stops = sorted(set(re.findall(r"rank (\d) stopped by the time limit at step (\d+)", res.stderr)))
    assert [rank for rank, _ in stops] == ["0", "1"], res.stderr[-3000:]
    assert stops[0][1] == stops[1][1]
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["stopped_by_time_limit"] and 0 < result["steps"] == int(stops[0][1]) < 100000


def _one_line(capsys, *fragments):
    one_error_line(capsys.readouterr().err, *fragments)


def test_bad_inputs_end_in_one_line(tiny_data, tmp_path, capsys):
    assert train_cli.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    _one_line(capsys, "not a dexvision dataset")
    assert train_cli.main(["--data", str(tiny_data), "--arch", "resnet5", "--out", str(tmp_path / "r")]) == 2
    _one_line(capsys, "unknown encoder 'resnet5'")
    other = tmp_path / "policy.pt"
    torch.save({"kind": "dexvision-policy", "step": 3}, other)
    assert evaluate_cli.main(["--checkpoint", str(other), "--data", str(tiny_data)]) == 2
    _one_line(capsys, "is a dexvision-policy checkpoint, not a dexvision-vision checkpoint")
    assert evaluate_cli.main(["--checkpoint", str(tmp_path / "none.pt"), "--data", str(tiny_data)]) == 2
    _one_line(capsys, "checkpoint not found")


def test_corrupt_shard_ends_in_one_line(tiny_data, tmp_path, capsys):
    import shutil

    data = tmp_path / "corrupt"
    shutil.copytree(tiny_data, data)
    shard = data / "shard-000000.tar"
    raw = bytearray(shard.read_bytes())
    for offset in range(512, len(raw) - 1024, 997):  # scramble image bytes, keep the size
        raw[offset] ^= 0x5A
    shard.write_bytes(bytes(raw))
    code = train_cli.main(["--data", str(data), "--out", str(tmp_path / "r"), "--steps", "40", "--batch-size", "8",
                           "--num-workers", "0", "--set", "shuffle_buffer=0", "--set", "val_every=1000"])
    assert code == 2
    _one_line(capsys, "reading the data failed", "verify-shards")


def test_wandb_offline_run_is_written(tiny_data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "wb"
    assert _train(tiny_data, run_dir, 3, "--wandb") == 0
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and offline[0].name.endswith(json.loads((run_dir / "run.json").read_text())["name"])


def test_plot_runs_draws_a_png(tiny_data, tmp_path):
    from dexvision.track import plots

    run_dir = tmp_path / "plotted"
    assert _train(tiny_data, run_dir, 4, "--set", "val_every=2") == 0
    out = tmp_path / "curves.png"
    assert plots.main([str(run_dir), "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size[0] > 300
    assert plots.main([str(tmp_path / "missing"), "--out", str(out)]) == 2
