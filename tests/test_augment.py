"""Image augmentation in train-vision's loader (vision/augment.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dexvision.config import ConfigError, load_config
from dexvision.datasets import render_shards
from dexvision.datasets.follow import ShardWatcher, make_follow_loader
from dexvision.datasets.loader import make_loader
from dexvision.vision.augment import Augment, AugmentConfig, _blur, _warp, augment_images, warp_homography
from dexvision.vision.keypoints import project
from dexvision.vision import train as train_cli
from dexvision.vision.train import TrainVisionConfig

NEUTRAL = dict(brightness=(1.0, 1.0), contrast=(1.0, 1.0), saturation=(1.0, 1.0), tint=0.0, blur_sigma=(0.0, 0.0),
               noise_std=(0.0, 0.0), shift_px=0.0, rotate_deg=0.0, zoom=(1.0, 1.0))


def _images(k: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(20, 236, (k, 3, size, size), dtype=np.uint8))


def test_neutral_ranges_leave_images_unchanged():
    images = _images()
    out = augment_images(images, AugmentConfig(enabled=True, **NEUTRAL), torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, images)


def test_probability_zero_leaves_images_unchanged():
    images = _images()
    out = augment_images(images, AugmentConfig(enabled=True, probability=0.0), torch.Generator().manual_seed(0))
    assert torch.equal(out, images)


def test_probability_one_half_augments_some_images_and_leaves_the_others_byte_identical():
    images = _images(k=16)
    out = augment_images(images, AugmentConfig(probability=0.5), torch.Generator().manual_seed(2))
    same = [torch.equal(a, b) for a, b in zip(out, images)]
    assert 0 < sum(same) < len(same)


def test_each_worker_and_rank_draws_its_own_stream(monkeypatch):
    images = _images()
    cfg = AugmentConfig(enabled=True)

    def draw(seed, worker):
        info = type("Info", (), {"id": worker})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
        return Augment(cfg, seed)({"images": images})["images"]

    first = draw(0, 0)
    assert torch.equal(first, draw(0, 0))  # repeatable
    assert not torch.equal(first, draw(0, 1))  # another worker
    assert not torch.equal(first, draw(1000, 0))  # another rank (train-vision adds 1000 per rank)


def test_brightness_scales_the_mean_and_tint_changes_channels_apart():
    images = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    dim = augment_images(images, AugmentConfig(**{**NEUTRAL, "brightness": (0.5, 0.5)}), torch.Generator())
    assert torch.all(dim == 50)
    tinted = augment_images(images, AugmentConfig(**{**NEUTRAL, "tint": 0.3}), torch.Generator().manual_seed(1))
    channel_means = tinted.float().mean(dim=(2, 3))  # (K, 3)
    assert channel_means.std(dim=1).min() > 1.0  # the channels no longer agree
    assert torch.all((channel_means >= 70 - 1) & (channel_means <= 130 + 1))


def test_saturation_zero_gives_grey():
    out = augment_images(_images(), AugmentConfig(**{**NEUTRAL, "saturation": (0.0, 0.0)}), torch.Generator())
    spread = out.float().max(dim=1).values - out.float().min(dim=1).values
    assert spread.max() <= 1.0


def test_blur_smooths_and_keeps_the_mean():
    x = _images(k=1).float() / 255
    blurred = _blur(x, 1.5)
    assert blurred.shape == x.shape
    laplacian = lambda t: (4 * t[..., 1:-1, 1:-1] - t[..., :-2, 1:-1] - t[..., 2:, 1:-1]  # noqa: E731
                           - t[..., 1:-1, :-2] - t[..., 1:-1, 2:]).abs().mean()
    assert laplacian(blurred) < 0.2 * laplacian(x)
    assert abs(blurred.mean() - x.mean()) < 0.01


def test_warp_moves_a_dot_by_the_shift_and_the_roll_turns_it_about_the_centre():
    x = torch.zeros(1, 3, 33, 33)
    x[..., 16, 24] = 1.0  # 8 px right of the centre
    moved = _warp(x, torch.tensor([[3.0, -2.0]]), torch.zeros(1))
    y, xx = divmod(int(moved[0, 0].argmax()), 33)
    assert (y, xx) == (14, 27)
    turned = _warp(x, torch.zeros(1, 2), torch.tensor([np.pi / 2]))
    y, xx = divmod(int(turned[0, 0].argmax()), 33)
    assert (abs(y - 16) == 8 and xx == 16)


def _blob(size: int, u: float, v: float, sigma: float = 1.5) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    return torch.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * sigma**2)).float().expand(1, 3, size, size).clone()


def _centroid(image: torch.Tensor) -> np.ndarray:
    w = image[0, 0].double()
    ys, xs = torch.meshgrid(torch.arange(w.shape[0], dtype=torch.float64), torch.arange(w.shape[1], dtype=torch.float64),
                            indexing="ij")
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


@pytest.mark.parametrize("shift, deg, zoom", [((0.0, 0.0), 0.0, 1.0), ((1.5, -2.0), 0.0, 1.0), ((0.0, 0.0), 5.0, 1.0),
                                              ((-1.2, 0.7), -3.0, 1.0), ((0.0, 0.0), 0.0, 1.1),
                                              ((0.8, 1.3), 4.0, 0.9)])
def test_the_warp_homography_is_where_the_warp_moves_a_point(shift, deg, zoom):
    size, u, v = 48, 30.3, 17.6  # a blob off the centre, so a roll or a zoom moves it too
    shift_t, angle, zoom_t = torch.tensor([shift]), torch.deg2rad(torch.tensor([deg])), torch.tensor([zoom])
    moved = _centroid(_warp(_blob(size, u, v, sigma=2.5), shift_t, angle, zoom_t))  # wide: little resampling bias
    expected = (warp_homography(shift_t, angle, size, zoom_t)[0] @ torch.tensor([u, v, 1.0], dtype=torch.float64))[:2]
    assert np.allclose(moved, expected.numpy(), atol=0.02)
    centre = (size - 1) / 2
    if deg == 0.0 and zoom == 1.0:  # a pure shift moves every point by the shift
        assert np.allclose(expected.numpy(), [u + shift[0], v + shift[1]])
    if deg == 0.0 and shift == (0.0, 0.0):  # a pure zoom scales every point's offset from the centre
        assert np.allclose(expected.numpy(), [centre + zoom * (u - centre), centre + zoom * (v - centre)])


def test_augment_moves_each_cameras_K_with_its_image():
    rng = np.random.default_rng(4)
    k, size = 3, 40
    K = torch.tensor([[50.0, 0.0, 19.5], [0.0, 50.0, 19.5], [0.0, 0.0, 1.0]], dtype=torch.float64).repeat(k, 1, 1)
    R = torch.eye(3, dtype=torch.float64).repeat(k, 1, 1)
    t = torch.tensor([[0.0, 0.0, 0.5]], dtype=torch.float64).repeat(k, 1)
    point = torch.tensor([[[0.06, -0.04, 0.0]]], dtype=torch.float64)  # off the optical axis
    pixel = project(point, K[None], R[None], t[None])[0, :, 0]
    images = torch.stack([_blob(size, *pixel[c].tolist())[0] for c in range(k)])
    images = (images * 255).round().to(torch.uint8)
    cfg = AugmentConfig(enabled=True, **{**NEUTRAL, "shift_px": 2.0, "rotate_deg": 4.0, "zoom": (0.9, 1.1)})
    sample = Augment(cfg, seed=int(rng.integers(100)))({"images": images, "cam_K": K.clone()})
    assert not torch.equal(sample["cam_K"], K)  # every camera was moved
    told = project(point, sample["cam_K"][None], R[None], t[None])[0, :, 0]
    seen = np.stack([_centroid(sample["images"][c:c + 1].float()) for c in range(k)])
    assert np.abs(seen - told.numpy()).max() < 0.05  # the blob is where the new K projects it
    assert np.abs(seen - pixel.numpy()).max() > 0.3  # and not where the old one did
    plain = Augment(AugmentConfig(enabled=True, **NEUTRAL), seed=0)({"images": images, "cam_K": K.clone()})
    assert torch.equal(plain["cam_K"], K)  # no shift, roll or zoom: K untouched


def test_noise_is_added_and_seeded():
    images = torch.full((3, 3, 16, 16), 128, dtype=torch.uint8)
    cfg = AugmentConfig(**{**NEUTRAL, "noise_std": (0.05, 0.05)})
    a = augment_images(images, cfg, torch.Generator().manual_seed(3))
    b = augment_images(images, cfg, torch.Generator().manual_seed(3))
    c = augment_images(images, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a.float() - 128).std() == pytest.approx(0.05 * 255, rel=0.15)


def test_a_range_past_its_bounds_is_refused():
    with pytest.raises(ConfigError, match="noise_std"):
        load_config(TrainVisionConfig, None, ["augment.noise_std=[0, 2]"])
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(probability=1.5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("augment") / "gimbal"
    assert render_shards.main(["--n", "16", "--shard-size", "4", "--task", "gimbal-block", "--image-size", "32",
                               "--workers", "1", "--out", str(out)]) == 0
    return out


def test_the_loader_augments_in_its_workers(data):
    def first_batch(transform):
        loader = make_loader(data, batch_size=8, num_workers=1, shuffle_buffer=0, transform=transform)
        batch = next(iter(loader))
        return batch["images"], batch["index"]

    plain, index = first_batch(None)
    cfg = AugmentConfig(enabled=True)
    augmented, index2 = first_batch(Augment(cfg, seed=5))
    again, _ = first_batch(Augment(cfg, seed=5))
    assert torch.equal(index, index2) and augmented.shape == plain.shape
    assert not torch.equal(augmented, plain)
    assert torch.equal(augmented, again)  # seeded per worker: the same draws every time


def test_train_vision_with_augmentation_records_it(data, tmp_path):
    run_dir = tmp_path / "run"
    assert train_cli.main(["--data", str(data), "--out", str(run_dir), "--steps", "6", "--batch-size", "4",
                           "--num-workers", "1", "--set", "val_every=1000", "--set", "shuffle_buffer=8",
                           "--set", "augment.enabled=true", "--set", "augment.noise_std=[0.01, 0.02]"]) == 0
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config["augment"]["enabled"] is True and config["augment"]["noise_std"] == [0.01, 0.02]
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 6
    # The run shows what it trained on: per sample, the rendered cameras and two augmented draws.
    sheet = Image.open(run_dir / "augment-sheet.png")
    assert sheet.size == (3 * 32 + 2 * 2, 9 * 32 + 8 * 2)


def test_the_follow_loader_augments(data):
    watcher = ShardWatcher(data, 1.0)

    def first_batch(transform):
        loader = make_follow_loader(watcher, range(4), batch_size=4, num_workers=1, shuffle_buffer=0, seed=0,
                                    transform=transform)
        return next(iter(loader))

    plain, augmented = first_batch(None), first_batch(Augment(AugmentConfig(enabled=True), seed=5))
    assert torch.equal(plain["index"], augmented["index"])  # same shard order: the seed is the same
    assert not torch.equal(plain["images"], augmented["images"])


def test_a_follow_run_augments_too(data, tmp_path):
    run_dir = tmp_path / "follow"
    assert train_cli.main(["--data", str(data), "--follow", "--out", str(run_dir), "--steps", "3", "--batch-size", "4",
                           "--num-workers", "1", "--set", "val_every=1000", "--set", "shuffle_buffer=8",
                           "--set", "augment.enabled=true"]) == 0
    assert (run_dir / "augment-sheet.png").stat().st_size > 0
