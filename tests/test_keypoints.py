"""The keypoint head: its targets, the calibrated multi-view solve, and a tiny run of each head end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from conftest import one_error_line
from dexvision.datasets import render_shards
from dexvision.render.cameras import CameraConfig, camera_label, sample_cameras
from dexvision.sim.scenes import BLOCK_HALF_SIZE, BLOCK_REST_POINT
from dexvision.track.run import read_metrics
from dexvision.vision import evaluate as evaluate_cli
from dexvision.vision import train as train_cli
from dexvision.vision.checkpoint import load_checkpoint, load_encoder
from dexvision.vision.evaluation import perturb_cameras
from dexvision.vision.keypoints import block_keypoints, keypoint_targets, solve_pose, to_pixels
from dexvision.vision.model import PoseNet, PoseNetConfig
from dexvision.vision.rotations import geodesic_angle


def _rig(batch: int, seed: int = 0, size: int = 64) -> dict[str, torch.Tensor]:
    """The shipped camera rig's randomized cameras, `batch` draws of 3 cameras, as a loader batch holds them."""
    rng = np.random.default_rng(seed)
    cams = [[camera_label(c, size, size) for c in sample_cameras(CameraConfig(), BLOCK_REST_POINT, rng)]
            for _ in range(batch)]
    out = {k: torch.tensor(np.array([[c[k] for c in row] for row in cams])) for k in ("K", "R", "t")}
    out["size"] = torch.full((batch, 3, 2), float(size), dtype=torch.float64)
    return out


def _poses(batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    rotation = torch.tensor(Rotation.random(batch, random_state=seed).as_matrix())
    position = torch.tensor(BLOCK_REST_POINT) + 0.01 * torch.randn(batch, 3, dtype=torch.float64,
                                                                    generator=torch.Generator().manual_seed(seed))
    return position, rotation


def test_keypoint_targets_are_the_hand_computed_projections_of_the_corners():
    """A camera at (0, 0, -1) looking along +z (R = I, t = (0, 0, 1)), f = 100 px, a 64 px image (principal point
    31.5): the block at the origin, unrotated, has its corner (+h, +h, +h) at depth 1 + h, so it falls at
    u = v = 31.5 + 100 h / (1 + h); its centre at the principal point. Normalized: (u - 31.5) / 32."""
    h = BLOCK_HALF_SIZE
    cameras = {"K": torch.tensor([[[[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]]]], dtype=torch.float64),
               "R": torch.eye(3, dtype=torch.float64)[None, None], "t": torch.tensor([[[0.0, 0, 1]]], dtype=torch.float64),
               "size": torch.tensor([[[64.0, 64.0]]], dtype=torch.float64)}
    target = keypoint_targets(torch.zeros(1, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[None], cameras)
    assert target.shape == (1, 1, 9, 2)
    corner = 100 * h / (1 + h) / 32  # corner 7: +h on every axis
    np.testing.assert_allclose(target[0, 0, 7].numpy(), [corner, corner], atol=1e-12)
    far = 100 * h / (1 - h) / 32  # corner 0: -h on every axis, nearer the camera (depth 1 - h)
    np.testing.assert_allclose(target[0, 0, 0].numpy(), [-far, -far], atol=1e-12)
    np.testing.assert_allclose(target[0, 0, 8].numpy(), [0.0, 0.0], atol=1e-12)  # the centre
    np.testing.assert_allclose(to_pixels(target, cameras["size"][:, :, None])[0, 0, 7].numpy(),
                               [31.5 + 100 * h / (1 + h)] * 2, atol=1e-10)
    # corner i is at the signs of the bits of i (x: bit 0)
    np.testing.assert_allclose(block_keypoints()[5].numpy(), [h, -h, h])


def test_the_solve_recovers_a_known_pose_from_noiseless_keypoints():
    cameras, (position, rotation) = _rig(16), _poses(16)
    keypoints = keypoint_targets(position, rotation, cameras)
    scales = torch.full(keypoints.shape[:-1], 0.01, dtype=torch.float64)
    solved_position, solved_rotation = solve_pose(keypoints, scales, cameras)
    assert (solved_position - position).abs().max() < 1e-4 * BLOCK_HALF_SIZE
    assert geodesic_angle(solved_rotation, rotation).max() < 1e-4


def test_the_solve_degrades_gracefully_when_one_cameras_keypoints_are_wrong():
    """Keypoints with noise of ~0.3 px, and one camera's keypoints moved by ~10 px at random: with equal confidence
    everywhere, the robust weights keep the pose within a few degrees and millimetres; when the head says it is
    unsure of that camera (a larger scale), the pose is about as good as with clean keypoints."""
    cameras, (position, rotation) = _rig(32, seed=3), _poses(32, seed=4)
    g = torch.Generator().manual_seed(5)
    keypoints = keypoint_targets(position, rotation, cameras)
    noisy = keypoints + 0.01 * torch.randn(keypoints.shape, generator=g, dtype=torch.float64)
    corrupted = noisy.clone()
    corrupted[:, 0] += 0.3 * torch.randn(corrupted[:, 0].shape, generator=g, dtype=torch.float64)
    scales = torch.full(keypoints.shape[:-1], 0.01, dtype=torch.float64)

    def errors(kp, sc):
        p, r = solve_pose(kp, sc, cameras)
        return (p - position).norm(dim=-1).median() * 1000, torch.rad2deg(geodesic_angle(r, rotation)).median()

    clean_mm, clean_deg = errors(noisy, scales)
    bad_mm, bad_deg = errors(corrupted, scales)
    assert clean_mm < 1.0 and clean_deg < 1.0
    assert bad_mm < 3.0 and bad_deg < 3.0  # a camera 30x noisier than the rest
    unsure = scales.clone()
    unsure[:, 0] = 1.0  # the head's own doubt about camera 0
    told_mm, told_deg = errors(corrupted, unsure)
    assert told_mm < 1.5 * clean_mm + 0.2 and told_deg < 1.5 * clean_deg + 0.2


def test_a_miscalibrated_rig_moves_each_camera_by_the_error_asked_for():
    cameras = _rig(8)
    batch = {f"cam_{k}": v for k, v in cameras.items()}
    wrong = perturb_cameras(batch, (0.005, math.radians(1.0)), torch.Generator().manual_seed(0))
    centre = lambda R, t: -torch.einsum("...ji,...j->...i", R, t)  # noqa: E731
    moved = (centre(wrong["cam_R"], wrong["cam_t"]) - centre(batch["cam_R"], batch["cam_t"])).norm(dim=-1)
    torch.testing.assert_close(moved, torch.full_like(moved, 0.005))
    turned = torch.rad2deg(geodesic_angle(wrong["cam_R"], batch["cam_R"]))
    torch.testing.assert_close(turned, torch.full_like(turned, 1.0))
    assert torch.equal(wrong["cam_K"], batch["cam_K"])


def test_the_keypoint_head_outputs_per_camera_keypoints_and_a_solved_pose():
    model = PoseNet(PoseNetConfig(image_size=32, head="keypoints", head_hidden=16))
    images = torch.randint(0, 255, (2, 3, 3, 32, 32), dtype=torch.uint8)
    pred = model(images)
    assert pred["keypoints"].shape == (2, 3, 9, 2) and pred["log_scale"].shape == (2, 3, 9)
    assert "position" not in pred  # no calibration, no pose
    pred = model(images, {k: v[:2] for k, v in _rig(2, size=32).items()})
    assert pred["position"].shape == (2, 3) and pred["rotation"].shape == (2, 3, 3)
    with pytest.raises(ValueError, match="head must be one of direct, keypoints"):
        PoseNetConfig(head="heatmaps")


# -- end to end on a tiny rendered dataset -----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("keypoints") / "gimbal"
    assert render_shards.main(["--n", "32", "--shard-size", "8", "--task", "gimbal-block", "--image-size", "32",
                               "--workers", "1", "--out", str(out)]) == 0
    return out


def _train(data, out, steps, head, *extra):
    return train_cli.main(["--data", str(data), "--out", str(out), "--steps", str(steps), "--batch-size", "8",
                           "--num-workers", "0", "--lr", "2e-3", "--set", "log_every_s=0", "--set", "warmup_steps=5",
                           "--set", "val_every=1000", "--set", "shuffle_buffer=16", "--set", f"head={head}", *extra])


@pytest.fixture(scope="module")
def two_heads(tiny_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("heads")
    for head in ("direct", "keypoints"):
        assert _train(tiny_data, runs / head, 40, head) == 0
    return runs


def test_each_head_trains_evaluates_and_resumes(tiny_data, two_heads, tmp_path, capsys):
    for head, part in (("direct", "losses/rotation"), ("keypoints", "losses/keypoints")):
        run = two_heads / head
        logged = [m for m in read_metrics(run) if "losses/total" in m]
        losses = [m["losses/total"] for m in logged]
        assert len(losses) == 40 and part in logged[0] and "errors/train_orientation_deg_median" in logged[0]
        if head == "keypoints":  # (the direct head's learning is tested in test_vision, over more steps)
            assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5
        ckpt = load_checkpoint(run / "checkpoint.pt")
        assert ckpt["model_config"]["head"] == head
        assert set(json.loads((run / "metrics.json").read_text())["validation"]) >= {"orientation_deg/median"}
        encoder, cfg = load_encoder(run / "checkpoint.pt")  # --init-vision's view of it
        assert cfg.head == head
    assert "errors/train_keypoint_px_median" in read_metrics(two_heads / "keypoints")[0]
    # resume the keypoint run for 10 more steps
    assert _train(tiny_data, two_heads / "keypoints", 50, "keypoints", "--resume") == 0
    assert load_checkpoint(two_heads / "keypoints" / "checkpoint.pt")["step"] == 50
    # both heads in one table: the keypoint head adds its keypoint error
    out = tmp_path / "heads.json"
    capsys.readouterr()
    assert evaluate_cli.main(["--checkpoint", str(two_heads / "direct" / "checkpoint.pt"), "--checkpoint",
                              str(two_heads / "keypoints" / "checkpoint.pt"), "--data", str(tiny_data),
                              "--num-workers", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| direct | impala | 40 | 32 |" in printed and "| keypoints | impala | 50 | 32 |" in printed
    rows = json.loads(out.read_text())["checkpoints"]
    assert [r["head"] for r in rows] == ["direct", "keypoints"]
    assert "keypoint_px/median" in rows[1]["metrics"] and "keypoint_px/median" not in rows[0]["metrics"]


def test_camera_error_changes_a_keypoint_heads_solve_and_is_refused_for_a_direct_one(tiny_data, two_heads, capsys):
    ckpt = two_heads / "keypoints" / "checkpoint.pt"
    args = ["--checkpoint", str(ckpt), "--data", str(tiny_data), "--num-workers", "0"]
    assert evaluate_cli.main(args) == 0
    assert evaluate_cli.main(args + ["--camera-error", "10,2"]) == 0
    exact = json.loads((ckpt.parent / "eval-gimbal.json").read_text())
    wrong = json.loads((ckpt.parent / "eval-gimbal-camera-error-10mm-2deg.json").read_text())
    assert wrong["camera_error"] == {"mm": 10.0, "deg": 2.0} and "camera_error" not in exact
    # the keypoints are the same (the images are): only the solve is told other cameras
    assert wrong["metrics"]["keypoint_px/median"] == pytest.approx(exact["metrics"]["keypoint_px/median"])
    assert wrong["metrics"]["position_mm/median"] != pytest.approx(exact["metrics"]["position_mm/median"])
    capsys.readouterr()
    assert evaluate_cli.main(["--checkpoint", str(two_heads / "direct" / "checkpoint.pt"), "--data",
                              str(tiny_data), "--camera-error", "5,1"]) == 2
    one_error_line(capsys.readouterr().err, "holds a direct head, which does not use the calibration")


def test_a_keypoint_head_on_one_camera_is_refused_in_one_line(tmp_path, capsys):
    data = tmp_path / "one"
    assert render_shards.main(["--n", "4", "--shard-size", "2", "--task", "gimbal-block", "--image-size", "32",
                               "--workers", "1", "--set", "render.randomization.cameras.count=1", "--out", str(data)]) == 0
    capsys.readouterr()
    assert _train(data, tmp_path / "run", 2, "keypoints") == 2
    one_error_line(capsys.readouterr().err, "two or more calibrated cameras", "has 1 per sample (use head=direct)")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
