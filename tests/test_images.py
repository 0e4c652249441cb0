import numpy as np
import pytest

from dexvision.render.images import floor_texture, hue_rotation_matrix, postprocess, recolor
from dexvision.render.randomization import ALL_FLOOR_PATTERNS

IDENTITY_POST = {"gamma": 1.0, "contrast": 1.0, "brightness": 0.0, "blur_sigma": 0.0, "noise_std": 0.0,
                 "noise_seed": 0}


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def test_identity_postprocess_keeps_pixels():
    img = _image()
    np.testing.assert_array_equal(postprocess(img, IDENTITY_POST), img)


def test_postprocess_effects():
    img = _image()
    blurred = postprocess(img, {**IDENTITY_POST, "blur_sigma": 1.0}).astype(float)
    assert blurred.std() < img.std()
    assert abs(blurred.mean() - img.mean()) < 2.0
    darker = postprocess(img, {**IDENTITY_POST, "gamma": 2.0})
    assert darker.mean() < img.mean()
    noisy_a = postprocess(img, {**IDENTITY_POST, "noise_std": 0.05, "noise_seed": 1})
    noisy_b = postprocess(img, {**IDENTITY_POST, "noise_std": 0.05, "noise_seed": 1})
    np.testing.assert_array_equal(noisy_a, noisy_b)
    assert not np.array_equal(noisy_a, img)


def test_hue_rotation():
    np.testing.assert_allclose(hue_rotation_matrix(0.0), np.eye(3), atol=1e-6)
    red = np.array([[[255, 0, 0]]], np.uint8)
    assert recolor(red, 1 / 3, 1.0, 1.0)[0, 0].argmax() == 1  # a third of a turn: red -> green
    grey = np.full((1, 1, 3), 128, np.uint8)
    np.testing.assert_array_equal(recolor(grey, 0.2, 1.0, 1.0), grey)  # grey has no hue


@pytest.mark.parametrize("pattern", ALL_FLOOR_PATTERNS)  # held-out ones too
def test_floor_textures(pattern):
    floor = {"pattern": pattern, "color_a": [0.1, 0.2, 0.3], "color_b": [0.9, 0.8, 0.1], "scale": 6.0, "seed": 4}
    a = floor_texture(floor, 32)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, floor_texture(floor, 32))
    if pattern != "flat":
        assert a.std() > 10  # the pattern mixes both colours
