import numpy as np
import pytest

from dexvision.render.cameras import project
from dexvision.render.sample import SampleGenerator, sample_rngs
from dexvision.sim.scenes import BLOCK_HALF_SIZE

from conftest import SMALL, small_config


def test_images_and_labels_have_the_promised_shape(generator):
    sample = generator.generate(0)
    assert len(sample.images) == 3
    for img in sample.images:
        assert img.shape == (SMALL, SMALL, 3) and img.dtype == np.uint8
    label = sample.label
    assert label["index"] == 0 and label["task"] == generator.cfg.task
    assert len(label["position"]) == 3
    q = np.asarray(label["quaternion"])
    assert np.linalg.norm(q) == pytest.approx(1.0) and q[0] >= 0
    for cam in label["cameras"]:
        assert np.asarray(cam["K"]).shape == (3, 3) and np.asarray(cam["R"]).shape == (3, 3)
        assert len(cam["t"]) == 3 and cam["width"] == cam["height"] == SMALL
    assert set(label["randomization"]) == {"cameras", "lighting", "appearance", "post"}


def test_same_seed_same_pixels_different_seed_different_pixels(generator):
    a = generator.generate(3)
    b = generator.generate(3)  # again, after other work: a pure function of (seed, index)
    other = SampleGenerator(generator.cfg).generate(3)
    c = generator.generate(4)
    for x, y, z in zip(a.images, b.images, other.images):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    assert a.label == b.label
    assert all(not np.array_equal(x, w) for x, w in zip(a.images, c.images))


def test_root_seed_changes_everything():
    a = SampleGenerator(small_config("gimbal-block", seed=0)).generate(0)
    b = SampleGenerator(small_config("gimbal-block", seed=1)).generate(0)
    assert a.label["quaternion"] != b.label["quaternion"]
    assert not np.array_equal(a.images[0], b.images[0])


def test_sample_rngs_are_independent_streams():
    s1, r1 = sample_rngs(0, 5)
    s2, r2 = sample_rngs(0, 5)
    assert s1.random() == s2.random() and r1.random() == r2.random()
    s3, r3 = sample_rngs(0, 6)
    assert s3.random() != sample_rngs(0, 5)[0].random()


def test_block_centre_projects_onto_the_block(generator):
    """The label's projected centre is inside the image, and hiding the block changes those pixels."""
    inside, changed, total = 0, 0, 0
    r = max(1, int(SMALL * 0.03))
    for index in range(6):
        sample = generator.generate(index)
        hidden = generator.generate(index, show_block=False)
        for cam, (img, img_hidden) in enumerate(zip(sample.images, hidden.images)):
            c = sample.label["cameras"][cam]
            u, v = project(np.asarray(c["K"]), np.asarray(c["R"]), np.asarray(c["t"]),
                           np.asarray(sample.label["position"])[None])[0]
            total += 1
            if not (0 <= u < SMALL and 0 <= v < SMALL):
                continue
            inside += 1
            ui, vi = int(round(u)), int(round(v))
            patch = np.s_[max(0, vi - r):vi + r + 1, max(0, ui - r):ui + r + 1]
            diff = np.abs(img[patch].astype(int) - img_hidden[patch].astype(int)).mean()
            changed += diff > 8
    assert inside >= 0.95 * total
    # Where the centre falls the block is what is seen, unless a finger covers it.
    assert changed >= 0.8 * inside


def test_block_looks_the_same_size_as_its_label_says(generator):
    """The block's silhouette (pixels that change when it is hidden) matches its projected size."""
    sample = generator.generate(1)
    hidden = generator.generate(1, show_block=False)
    c = sample.label["cameras"][0]
    K = np.asarray(c["K"])
    depth = (np.asarray(c["R"]) @ np.asarray(sample.label["position"]) + np.asarray(c["t"]))[2]
    side_px = K[0, 0] * 2 * BLOCK_HALF_SIZE / depth
    mask = np.abs(sample.images[0].astype(int) - hidden.images[0].astype(int)).sum(-1) > 30
    # A cube seen from any side covers between one face and about 1.7 faces of area.
    assert 0.5 * side_px**2 < mask.sum() < 2.2 * side_px**2


def test_no_randomization_is_repeatable_across_seeds():
    a = SampleGenerator(small_config("gimbal-block", **{"render.randomization.enabled": "false"}))
    s0, s1 = a.generate(0), a.generate(1)
    assert s0.label["randomization"] == s1.label["randomization"]
    assert s0.label["quaternion"] != s1.label["quaternion"]


def test_camera_count_and_image_size_are_configurable():
    cfg = small_config("gimbal-block", **{"render.randomization.cameras.count": 2, "render.image_size": 32})
    sample = SampleGenerator(cfg).generate(0)
    assert len(sample.images) == 2 and sample.images[0].shape == (32, 32, 3)


def test_pbr_shading_is_available_and_differs():
    lean = SampleGenerator(small_config("gimbal-block")).generate(0)
    pbr = SampleGenerator(small_config("gimbal-block", **{"render.shading": "pbr"})).generate(0)
    assert lean.label == pbr.label
    assert not np.array_equal(lean.images[0], pbr.images[0])
    # Same scene, same place: the images agree roughly even though the shading model differs.
    assert np.abs(lean.images[0].astype(int) - pbr.images[0].astype(int)).mean() < 40


def test_torch_dynamo_after_rendering_does_not_crash(tmp_path):
    # Mesa's llvmpipe and triton both bundle LLVM: importing triton (torch._dynamo does) after a GL
    # context exists used to kill the process. Students render and run torch models in one process.
    import subprocess
    import sys

    code = ("import dexvision.render\n"
            "from conftest import small_config\n"
            "from dexvision.render.sample import SampleGenerator\n"
            "SampleGenerator(small_config('gimbal-block')).generate(0)\n"
            "import torch._dynamo, timm, torch\n"
            "timm.create_model('resnet18', pretrained=False, num_classes=0)(torch.zeros(2, 3, 32, 32))\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=str(__import__("pathlib").Path(__file__).parent))
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_appearances_rendered_in_turn_keep_their_textures_and_pixels(monkeypatch):
    """A policy's environments are rendered in turn, each with its own appearance: every image equals a fresh
    renderer's, textures are uploaded once per appearance, and those the cache lets go are deleted from GL."""
    from dexvision.render import renderer as renderer_module  # noqa: PLC0415

    gen = SampleGenerator(small_config("hand-block"))
    states = [gen.generate(i) for i in range(3)] + [SampleGenerator(small_config("hand-block")).generate(3)]
    params = [s.label["randomization"] for s in states]
    fresh = [SampleGenerator(small_config("hand-block")).renderer.render(s.state.qpos, p) for s, p in zip(states, params)]
    r = gen.renderer
    first = [r.render(states[i].state.qpos, params[i]) for i in (0, 1)]
    textures = {id(t) for t in r._textures.values()}
    again = [r.render(states[i].state.qpos, params[i]) for i in (0, 1)]
    assert {id(t) for t in r._textures.values()} == textures and len(textures) == 6  # block + floor of 3 samples
    for images, expected in zip(first + again, fresh[:2] * 2):
        for x, y in zip(images, expected):
            np.testing.assert_array_equal(x, y)
    monkeypatch.setattr(renderer_module, "TEXTURE_CACHE", 2)
    held = list(r._textures.values())
    for i in (3, 0, 3):  # a new appearance, and more of them than the cache holds
        for x, y in zip(r.render(states[i].state.qpos, params[i]), fresh[i]):
            np.testing.assert_array_equal(x, y)
    assert len(r._textures) == 2
    evicted = [t for t in held if t not in r._textures.values()]
    assert evicted and all(t._texid is None for t in evicted)  # deleted from GL, not leaked
    kept = list(r._textures.values())
    r.close()  # a closed renderer's textures go at the process's next frame
    gen.renderer = None
    SampleGenerator(small_config("hand-block")).generate(0)
    assert all(t._texid is None for t in kept)
