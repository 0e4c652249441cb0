"""dexvision.policy environments: determinism under a seed, rewards and episode ends, pixel observations,
env workers (same trajectories whatever their number, errors reach the parent), relative actions and the
goal curriculum."""

from __future__ import annotations

import numpy as np
import pytest

from dexvision.errors import UserError
from dexvision.envs.curriculum import Curriculum, CurriculumConfig
from dexvision.envs.rules import nearby_goal
from dexvision.envs.task import BlockReorientEnv, EnvConfig
from dexvision.policy.loop import EpisodeStats
from dexvision.envs.workers import EnvWorkerError, EnvWorkers
from dexvision.sim.rotations import axis_angle_to_quat, quat_angle, random_quat
from dexvision.sim.sampler import SamplerConfig


@pytest.mark.parametrize("task", ["gimbal-block", "hand-block"])
def test_environment_is_deterministic_under_a_seed(task):
    cfg = EnvConfig(task=task)
    a, ra, _ = _roll(BlockReorientEnv(cfg, 3), steps=5, seed=3)
    b, rb, _ = _roll(BlockReorientEnv(cfg, 3), steps=5, seed=3)
    c, _, _ = _roll(BlockReorientEnv(cfg, 3), steps=5, seed=4)
    for x, y in zip(a, b):
        for k in x:
            assert np.array_equal(x[k], y[k]), k
    assert np.array_equal(ra, rb)
    assert not np.array_equal(a[0]["goal"], c[0]["goal"])


def test_success_pays_the_bonus_and_draws_a_new_goal():
    env = BlockReorientEnv(EnvConfig(task="gimbal-block", obs_noise=0.0), 2)
    env.reset(seed=0)
    block = env.block_pose(0)[1]
    env.goal[0] = block  # already there: the next step is a success
    env.prev_dist[0] = 0.0
    _, reward, _, _, info = env.step(np.full((2, env.nu), 5))  # the middle bin: zero torque
    assert env.successes[0] == 1 and reward[0] > 4.0
    assert not np.allclose(env.goal[0], block)
    assert not info["done_mask"][0]


def test_turned_goals_are_the_block_turned_in_the_hand_frame_with_a_fresh_clock():
    env = BlockReorientEnv(EnvConfig(task="gimbal-block", obs_noise=0.0, goal_frame="hand"), 2)
    env.reset(seed=0)
    env.step(np.full((2, env.nu), 5))
    assert env.goal_steps.max() == 1
    blocks = np.stack([env.block_pose(i)[1] for i in range(2)])
    turn = axis_angle_to_quat(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), np.array([0.8, 1.6]))
    obs = env.turn_goals(turn)
    np.testing.assert_allclose(quat_angle(blocks, env.goal), [0.8, 1.6], atol=1e-9)
    np.testing.assert_allclose(obs["relative_rotvec"], [[0.0, 0.0, 0.8], [1.6, 0.0, 0.0]], atol=1e-5)
    np.testing.assert_allclose(env.prev_dist, [0.8, 1.6], atol=1e-9)
    assert env.goal_steps.max() == 0
    with pytest.raises(ValueError, match="shape"):
        env.turn_goals(turn[:1])


def test_goal_timeout_and_max_successes_end_episodes():
    env = BlockReorientEnv(EnvConfig(task="gimbal-block", goal_timeout=3, obs_noise=0.0), 2)
    env.reset(seed=0)
    env.goal[:] = [0.0, 1.0, 0.0, 0.0]  # far away: never reached in 3 still steps
    env.datas[0].qpos[:] = env.datas[1].qpos[:] = [1.0, 0.0, 0.0, 0.0]
    env.datas[0].qvel[:] = env.datas[1].qvel[:] = 0.0
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(np.full((2, env.nu), 5))
    assert truncated.all() and not terminated.any() and (info["episode_length"] == 3).all()
    assert (env.episode_length == 0).all()  # reset in the same step


def test_pixel_observations_have_every_camera():
    cfg = EnvConfig(task="gimbal-block")
    cfg.render.image_size = 32
    env = BlockReorientEnv(cfg, 2, obs="pixels", render_workers=1)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["images"].shape == (2, 3, 3, 32, 32) and obs["images"].dtype == np.uint8
        obs2, *_ = env.step(np.full((2, env.nu), 10))
        assert not np.array_equal(obs["images"], obs2["images"])  # the block turned
        assert obs["images"].std() > 5
    finally:
        env.close()




# -- env workers, relative actions, curriculum -------------------------------------------------
def _roll(env, steps: int = 6, seed: int = 3):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(0)
    out, rewards, dones = [obs], [], []
    for _ in range(steps):
        obs, reward, _, _, info = env.step(rng.integers(0, env.cfg.action_bins, (env.num_envs, env.nu)))
        out.append(obs)
        rewards.append(reward)
        dones.append(info["done_mask"])
    return out, np.array(rewards), np.array(dones)


def test_env_workers_give_the_same_trajectories_whatever_their_number():
    cfg = EnvConfig(task="hand-block", action_mode="relative", goal_timeout=3)  # timeouts: resets mid-roll
    env = BlockReorientEnv(cfg, 3)
    env.set_goal_max_angle(1.0)  # curriculum goals: drawn from each environment's own stream too
    expected = _roll(env)
    for workers in (1, 2):
        env = EnvWorkers(cfg, 3, workers)
        env.set_goal_max_angle(1.0)
        try:
            got = _roll(env)
        finally:
            env.close()
        for a, b in zip(expected[0], got[0]):
            assert a.keys() == b.keys()
            for k in a:
                assert np.array_equal(a[k], b[k]), (workers, k)
        assert np.array_equal(expected[1], got[1]) and np.array_equal(expected[2], got[2])
    assert expected[2].any()  # episodes ended and restarted inside the roll


def test_env_worker_errors_reach_the_parent_as_one_exception():
    env = EnvWorkers(EnvConfig(task="gimbal-block"), 2, 2)
    try:
        with pytest.raises(EnvWorkerError, match="goal max angle must be > 0"):
            env.set_goal_max_angle(-1.0)
    finally:
        env.close()
    assert all(not p.is_alive() for p in env._procs)


def test_relative_actions_move_the_commands_by_at_most_a_step():
    env = BlockReorientEnv(EnvConfig(task="hand-block", action_mode="relative", relative_step=0.1, obs_noise=0.0), 2)
    env.reset(seed=0)
    low, span = env._ctrl_low, env._ctrl_span
    start = env.targets.copy()
    np.testing.assert_allclose(env.prev_action, 2 * (start - low) / span - 1)  # the hold commands, observed
    actions = np.full((2, env.nu), 5)  # middle bin: hold
    actions[0] = 10  # top bin: up by a step
    env.step(actions)
    np.testing.assert_allclose(env.targets[1], start[1])
    np.testing.assert_allclose(env.targets[0], np.minimum(start[0] + 0.1 * span, low + span))
    np.testing.assert_allclose([d.ctrl for d in env.datas], env.targets)


def test_curriculum_goals_follow_the_conditioned_uniform_rotation():
    rng = np.random.default_rng(0)
    block = random_quat(rng)
    cdf = lambda a: (a - np.sin(a)) / np.pi  # noqa: E731 - P(angle <= a) for a uniform rotation
    for low, high in ((0.4, 1.2), (0.4, 3.0), (0.0, 0.8)):
        angles = np.array([quat_angle(block, nearby_goal(block, rng, high, low)) for _ in range(4000)])
        assert angles.min() >= low - 1e-9 and angles.max() <= high + 1e-9
        mid = (low + high) / 2
        expected = (cdf(mid) - cdf(low)) / (cdf(high) - cdf(low))  # 0.30 for (0.4, 1.2): not uniform in angle
        assert abs(np.mean(angles <= mid) - expected) < 0.03, (low, high)
    # at pi the goals are uniform rotations: their mean distance from any orientation is pi/2 + 2/pi
    uniform = [quat_angle(block, nearby_goal(block, rng, np.pi)) for _ in range(3000)]
    assert abs(np.mean(uniform) - (np.pi / 2 + 2 / np.pi)) < 0.05


def test_curriculum_goals_are_never_reached_as_they_are_drawn():
    env = BlockReorientEnv(EnvConfig(task="gimbal-block", obs_noise=0.0), 8)
    env.set_goal_max_angle(0.6)
    env.reset(seed=0)
    distances = [quat_angle(env.block_pose(i)[1], env.goal[i]) for i in range(8)]
    assert min(distances) >= env.cfg.success_threshold - 1e-9 and max(distances) <= 0.6 + 1e-9


def test_curriculum_widens_on_success_and_stops_at_the_full_task():
    cur = Curriculum(CurriculumConfig(enabled=True, start_angle=2.8, step=0.2, promote_at=3, min_episodes=4))
    assert cur.max_angle == 2.8
    assert not cur.update([5, 5, 5])  # too few episodes at this bound yet
    assert cur.update([1]) and cur.max_angle == pytest.approx(3.0)  # mean 4 >= 3
    assert not cur.update([1, 1, 1, 1])  # a new bound starts a new count; mean 1 < 3
    assert cur.update([9, 9]) and cur.complete and cur.max_angle == pytest.approx(np.pi)  # capped at pi
    assert not cur.update([50] * 10) and cur.promotions == 2
    other = Curriculum(CurriculumConfig(enabled=True))
    other.load_state_dict(cur.state_dict())
    assert other.max_angle == cur.max_angle and other.promotions == 2
    assert Curriculum(CurriculumConfig(enabled=False)).complete  # disabled: the full task from the start


def _finish(stats, envs, successes, n=3):
    done = np.zeros(n, bool)
    done[envs] = True
    count = np.zeros(n, int)
    count[envs] = successes
    stats.add({"done_mask": done, "episode_successes": count, "episode_return": np.zeros(n), "dropped": np.zeros(n)})


def test_only_episodes_begun_at_the_current_bound_count_towards_a_promotion():
    stats = EpisodeStats(level=0)
    _finish(stats, [0], 7)
    assert stats.take_finished() == [7]
    stats.set_level(1)  # promoted: environments 1 and 2 are still in episodes begun at the easier bound
    _finish(stats, [1, 2], 9)
    assert stats.take_finished() == []
    _finish(stats, [0, 1], 2)  # 1 began its episode after the promotion; 0 began before it, at level 0
    assert stats.take_finished() == [2]
    assert stats.total == 5 and stats.metrics()["charts/successes_per_episode"] == pytest.approx(29 / 5)




def test_user_errors_inside_env_workers_reach_the_parent_as_user_errors():
    never_on_the_hand = SamplerConfig(max_attempts=1, drop_height=(1.0, 1.0), drop_xy_jitter=0.3)
    with pytest.raises(UserError, match="no state kept the block on the hand"):
        EnvWorkers(EnvConfig(task="hand-block", sampler=never_on_the_hand), 2, 2).reset(seed=0)
    with pytest.raises(UserError, match="not a whole number of the 0.01 s physics steps"):
        BlockReorientEnv(EnvConfig(task="hand-block", physics="fast", control_period=0.015), 1)
