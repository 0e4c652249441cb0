import mujoco
import numpy as np
import pytest

from dexvision.errors import UserError
from dexvision.sim.physics import PhysicsRandomization, PhysicsRandomizer, sample_physics
from dexvision.sim.sampler import SamplerConfig, SamplingError, StateSampler
from dexvision.sim.scenes import BLOCK_REST_POINT, TASKS, load_scene


def test_both_scenes_load(hand_scene, gimbal_scene):
    m = hand_scene.model
    assert len(hand_scene.hand_joints) == 24
    assert m.nu == 20
    # The goal ("target") block and the hidden inner block are gone: nothing can show them.
    names = {m.body(i).name for i in range(m.nbody)} | {m.geom(i).name for i in range(m.ngeom)}
    assert "target" not in names and "object_hidden" not in names
    g = gimbal_scene.model
    assert g.nq == 4 and g.nv == 3 and g.nu == 3  # ball joint, three motor axes
    assert g.body("object").id > 0
    assert set(TASKS) == {"hand-block", "gimbal-block"}


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(UserError, match="valid: hand-block, gimbal-block"):
        load_scene("cube")


def _block_on_hand_after(scene, state, seconds=0.3):
    """Re-create the state in a fresh MjData, hold the hand, and simulate a little longer."""
    m = scene.model
    d = mujoco.MjData(m)
    d.qpos[:] = state.qpos
    d.qvel[:] = state.qvel
    mujoco.mj_forward(m, d)
    d.ctrl[:] = np.clip(d.actuator_length, m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1])
    mujoco.mj_step(m, d, nstep=int(seconds / m.opt.timestep))
    return d.body("object").xpos.copy()


def test_hand_states_keep_the_block_on_the_hand():
    scene = load_scene("hand-block")
    sampler = StateSampler(scene, SamplerConfig())
    rng = np.random.default_rng(0)
    for _ in range(8):
        state = sampler.sample(rng)
        assert sampler._block_on_hand()
        pos = _block_on_hand_after(scene, state)
        # Still resting on the palm: near the rest point and well above the floor.
        assert np.linalg.norm(pos[:2] - BLOCK_REST_POINT[:2]) < 0.08
        assert pos[2] > 0.12
    assert sampler.accepted == 8


def test_nominal_rest_point_is_where_blocks_settle():
    scene = load_scene("hand-block")
    cfg = SamplerConfig(finger_spread=0.0, wrist_spread=0.0, drop_xy_jitter=0.0,
                        physics=PhysicsRandomization(enabled=False))
    sampler = StateSampler(scene, cfg)
    positions = [sampler.sample(np.random.default_rng(i)).qpos[24:27] for i in range(6)]
    assert np.linalg.norm(np.mean(positions, axis=0) - BLOCK_REST_POINT) < 0.015


def test_rejected_states_are_counted():
    # Releasing the block far off the palm makes many draws fall: they are rejected and counted.
    scene = load_scene("hand-block")
    sampler = StateSampler(scene, SamplerConfig(drop_xy_jitter=0.06))
    rng = np.random.default_rng(1)
    states = [sampler.sample(rng) for _ in range(6)]
    assert sampler.rejected > 0
    assert sum(s.attempts for s in states) == sampler.accepted + sampler.rejected
    assert 0 < sampler.rejection_rate() < 1
    for s in states:
        assert _block_on_hand_after(scene, s)[2] > 0.12


def test_impossible_config_ends_in_a_clear_error():
    scene = load_scene("hand-block")
    sampler = StateSampler(scene, SamplerConfig(drop_xy_jitter=1.0, max_attempts=3))
    with pytest.raises(SamplingError, match="in 3 attempts"):
        sampler.sample(np.random.default_rng(0))


@pytest.mark.parametrize("task", TASKS)
def test_sampler_is_deterministic_and_varied(task):
    scene = load_scene(task)
    a = StateSampler(scene).sample(np.random.default_rng(7))
    b = StateSampler(load_scene(task)).sample(np.random.default_rng(7))
    c = StateSampler(scene).sample(np.random.default_rng(8))
    np.testing.assert_array_equal(a.qpos, b.qpos)
    assert a.physics == b.physics
    assert not np.allclose(a.qpos, c.qpos)


def test_gimbal_state_is_a_unit_quaternion(gimbal_scene):
    state = StateSampler(gimbal_scene).sample(np.random.default_rng(3))
    assert state.qpos.shape == (4,)
    assert np.linalg.norm(state.qpos) == pytest.approx(1.0)
    assert state.qpos[0] >= 0


def test_physics_randomization_applies_and_resets():
    scene = load_scene("hand-block")
    m = scene.model
    randomizer = PhysicsRandomizer(m, "object")
    nominal_mass = m.body("object").mass.copy()
    nominal_friction = m.geom_friction.copy()
    params = sample_physics(PhysicsRandomization(), np.random.default_rng(0))
    randomizer.apply(params)
    np.testing.assert_allclose(m.body("object").mass, nominal_mass * params["block_mass_scale"])
    np.testing.assert_allclose(m.geom_friction, nominal_friction * params["friction_scale"])
    np.testing.assert_allclose(m.opt.gravity, params["gravity"])
    randomizer.apply(params)  # applying twice is not cumulative
    np.testing.assert_allclose(m.body("object").mass, nominal_mass * params["block_mass_scale"])
    randomizer.reset()
    np.testing.assert_allclose(m.body("object").mass, nominal_mass)
    np.testing.assert_allclose(m.geom_friction, nominal_friction)


def test_physics_ranges_are_validated():
    with pytest.raises(ValueError, match="positive"):
        PhysicsRandomization(friction_scale=(0.0, 1.0))
    off = sample_physics(PhysicsRandomization(enabled=False), np.random.default_rng(0))
    assert off["friction_scale"] == 1.0 and off["gravity"] == [0.0, 0.0, -9.81]


# -- physics profiles -----------------------------------------------------------------------
@pytest.mark.parametrize("physics", ["reference", "fast"])
def test_both_profiles_hold_a_settled_state_for_two_seconds(physics):
    scene = load_scene("hand-block", physics)
    sampler = StateSampler(load_scene("hand-block", physics), SamplerConfig())
    m, d = scene.model, mujoco.MjData(scene.model)
    rng = np.random.default_rng(1)
    drifts = []
    for _ in range(4):
        state = sampler.sample(rng)
        mujoco.mj_resetData(m, d)
        d.qpos[:], d.qvel[:], d.ctrl[:] = state.qpos, state.qvel, state.ctrl  # the hold action
        mujoco.mj_forward(m, d)
        start = d.body("object").xpos.copy()
        mujoco.mj_step(m, d, nstep=int(round(2.0 / m.opt.timestep)))
        drifts.append(np.linalg.norm(d.body("object").xpos - start))
        assert d.body("object").xpos[2] > 0.12  # still on the palm
    assert np.median(drifts) < 0.02
    assert d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == 0


def test_fast_profile_changes_the_physics_not_the_look():
    ref, fast = load_scene("hand-block", "reference"), load_scene("hand-block", "fast")
    assert ref.physics == "reference" and fast.physics == "fast"
    assert ref.model.opt.timestep == 0.002 and fast.model.opt.timestep == 0.01
    assert fast.model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert ref.model.ngeom == fast.model.ngeom and np.array_equal(ref.model.geom_rgba, fast.model.geom_rgba)
    assert np.array_equal(ref.model.geom_dataid, fast.model.geom_dataid)
    floor = fast.model.geom("floor0").id
    assert fast.model.geom_contype[floor] == fast.model.geom_conaffinity[floor] == 0
    assert ref.model.geom_conaffinity[floor] == 1
    with pytest.raises(UserError, match="unknown physics profile 'nonsense'"):
        load_scene("hand-block", "nonsense")


def test_mass_randomization_updates_what_mujoco_derives_from_masses():
    # The contact solver scales its softness by body_invweight0: stale values made a light block blow up
    # the 10 ms solver. After a draw it must equal what a model compiled with that mass has.
    scene = load_scene("hand-block", "fast")
    randomizer = PhysicsRandomizer(scene.model, scene.block_body)
    block = scene.model.body("object").id
    before = scene.model.body_invweight0[block].copy()
    draw = {"friction_scale": 1.0, "block_mass_scale": 0.5, "damping_scale": 1.0, "actuator_gain_scale": 1.0,
            "gravity": [0.0, 0.0, -9.81]}
    randomizer.apply(draw)
    assert scene.model.body_invweight0[block][0] == pytest.approx(2 * before[0], rel=0.05)
    randomizer.reset()
    np.testing.assert_allclose(scene.model.body_invweight0[block], before)
