"""The sampling-based planner: rollouts match the environment, costs rank states sensibly, splines shift,
the optimizer follows its elites, the planner solves a gimbal-block goal, and bad configs end in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import one_error_line
from dexvision.envs.task import BlockReorientEnv
from dexvision.planning.config import load_planner_config
from dexvision.planning.costs import CostConfig, Task, Trajectory, angle_to, total_cost
from dexvision.planning.evaluate import summarize_goals, wilson_interval
from dexvision.planning.optimizer import CrossEntropy
from dexvision.planning.planner import Planner
from dexvision.planning.rollout import CpuRollout
from dexvision.planning.splines import basis, shift
from dexvision.policy import evaluate
from dexvision.sim.rotations import axis_angle_to_quat
from dexvision.sim.scenes import BLOCK_REST_POINT


def test_rollout_reproduces_the_environment_steps():
    cfg = load_planner_config(None, [])
    env = BlockReorientEnv(cfg.env, 1)
    env.reset(seed=3)
    env.step(np.zeros((1, env.nu)))  # a state with contacts and a warm start of its own
    actions = np.random.default_rng(0).uniform(-1, 1, (6, env.nu))
    low, high = env.models[0].actuator_ctrlrange.T
    backend = CpuRollout(2)
    qpos, qvel = backend.run(env.models[0], env.datas[0], (low + (high - low) * (actions + 1) / 2)[None],
                             env.substeps)
    backend.close()
    for t in range(len(actions)):
        env.step(actions[t:t + 1])
        np.testing.assert_array_equal(env.datas[0].qpos, qpos[0, t])
        np.testing.assert_array_equal(env.datas[0].qvel, qvel[0, t])


def _trajectory(pos, quat, n_steps=3):
    n = len(pos)
    return Trajectory(block_pos=np.repeat(np.asarray(pos, float)[:, None], n_steps, 1),
                      block_quat=np.repeat(np.asarray(quat, float)[:, None], n_steps, 1),
                      block_linvel=np.zeros((n, n_steps, 3)), joint_pos=np.zeros((n, n_steps, 2)),
                      controls=np.zeros((n, n_steps, 2)), previous=np.zeros(2))


def test_a_drop_costs_more_than_any_kept_block():
    task = Task(goal=np.array([1.0, 0, 0, 0]), rest_point=BLOCK_REST_POINT, drop_height=0.1, posture=np.zeros(2))
    worst_kept = _trajectory([BLOCK_REST_POINT + [0.04, 0.04, 0.0]], [axis_angle_to_quat([1, 0, 0], np.pi)])
    dropped = _trajectory([BLOCK_REST_POINT - [0, 0, 0.1]], [[1.0, 0, 0, 0]])  # at its goal orientation, on the floor
    cfg = CostConfig()
    assert total_cost(dropped, task, cfg)[0] > total_cost(worst_kept, task, cfg)[0]


def test_orientation_is_the_same_for_q_and_minus_q():
    goal = axis_angle_to_quat([0, 0, 1], 0.3)
    q = axis_angle_to_quat([1, 1, 0], 1.2)
    assert angle_to(q, goal) == pytest.approx(angle_to(-q, goal))
    assert angle_to(goal, goal) == pytest.approx(0.0, abs=1e-6)
    assert angle_to(axis_angle_to_quat([0, 0, 1], 1.3), goal) == pytest.approx(1.0)


@pytest.mark.parametrize("interpolation", ["zero", "linear"])
def test_spline_basis_and_shift(interpolation):
    b = basis(8, 4, interpolation)
    assert b.shape == (8, 4) and np.allclose(b.sum(axis=1), 1.0)
    knots = np.array([[0.0], [1.0], [2.0], [3.0]])
    controls = b @ knots
    assert controls[0, 0] == 0.0 and controls[-1, 0] == 3.0
    constant = shift(np.full((4, 1), 0.7), b)  # a held command stays held
    np.testing.assert_allclose(constant, 0.7)
    moved = b @ shift(knots, b, 2)  # later commands come earlier
    assert moved[0, 0] > controls[0, 0] and moved[-1, 0] == pytest.approx(3.0, abs=0.05)


def test_cross_entropy_follows_its_elites():
    opt = CrossEntropy(samples=200, elites=10, noise=0.5, noise_min=0.01, rng=np.random.default_rng(0))
    opt.reset(np.zeros((2, 1)))
    target = np.array([[0.6], [-0.4]])
    for _ in range(15):
        knots = opt.sample()
        assert knots.shape == (200, 2, 1) and np.array_equal(knots[0], np.clip(opt.mean, -1, 1))
        opt.update(knots, ((knots - target) ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(opt.mean, target, atol=0.05)
    assert (opt.std < 0.1).all()


def test_the_planner_reaches_a_gimbal_goal_in_a_few_dozen_steps():
    cfg = load_planner_config(None, ["env.task=gimbal-block", "samples=16", "elites=1", "noise_min=0.3",
                                     "horizon=0.32", "knots=8", "env.sampler.gimbal_max_angvel=0"])
    env = BlockReorientEnv(cfg.env, 1)
    planner = Planner(cfg, env, seed=0)
    env.reset(seed=0)
    for step in range(40):
        _, reward, _, _, info = env.step(planner.act(env))
        if info["episode_successes"][0] >= 1 or info["done_mask"][0]:
            break
    planner.close()
    assert info["episode_successes"][0] >= 1, f"no success in {step + 1} steps"


@pytest.mark.parametrize("warm_start", [True, False])
def test_without_warm_start_and_with_fixed_noise_the_action_depends_on_the_state_alone(warm_start):
    """warm_start false and fixed_noise true: a planner that has played for a while and a fresh one (the same
    seed, so the same candidates) choose the same action at the same state; with a warm start they do not."""
    cfg = load_planner_config(None, ["env.task=gimbal-block", "samples=8", "horizon=0.16", "knots=4", "threads=1",
                                     f"warm_start={str(warm_start).lower()}", "fixed_noise=true"])
    env = BlockReorientEnv(cfg.env, 1)
    env.reset(seed=3)
    played = Planner(cfg, env, seed=5)
    for _ in range(5):
        env.step(played.act(env))
    fresh = Planner(cfg, env, seed=5)
    same = np.array_equal(played.act(env), fresh.act(env))
    played.close()
    fresh.close()
    env.close()
    assert same != warm_start


def test_the_proposal_cost_pulls_the_first_command_and_needs_a_proposal():
    controls = np.array([[[0.5, 0.5], [1.0, 1.0]], [[0.0, 0.0], [0.5, 0.5]]])  # (2 samples, 2 steps, 2)
    traj = Trajectory(block_pos=np.zeros((2, 2, 3)), block_quat=np.tile([1.0, 0, 0, 0], (2, 2, 1)),
                      block_linvel=np.zeros((2, 2, 3)), joint_pos=np.zeros((2, 2, 0)), controls=controls,
                      previous=np.zeros(2))
    cfg = CostConfig(orientation=0, orientation_final=0, position=0, drop=0, proposal=1.0)
    task = Task(goal=np.array([1.0, 0, 0, 0]), rest_point=BLOCK_REST_POINT, drop_height=-np.inf,
                posture=np.zeros(0), proposal=np.array([0.5, 0.5]))
    np.testing.assert_allclose(total_cost(traj, task, cfg), [0.0, 0.25])  # the first command only
    task.proposal = None  # the planner alone: no proposal, no term
    np.testing.assert_allclose(total_cost(traj, task, cfg), [0.0, 0.0])


@pytest.mark.parametrize("proposal", ["start", "first"])
def test_a_proposal_as_the_first_knot_keeps_the_rest_of_the_plan(proposal):
    """proposal: first puts the guide in the plan's first knot and keeps the rest of the plan it has; start
    replaces the whole plan by the guide held over the horizon."""
    cfg = load_planner_config(None, ["env.task=gimbal-block", "samples=8", "horizon=0.16", "knots=4", "threads=1",
                                     f"proposal={proposal}", "noise=0.3", "noise_min=0.3"])
    env = BlockReorientEnv(cfg.env, 1)
    env.reset(seed=3)
    planner = Planner(cfg, env, seed=5)
    for _ in range(3):
        env.step(planner.act(env))
    guide = np.array([[0.9, -0.9, 0.9]])
    rest = planner.optimizers[0].mean[1:].copy()
    planner.optimizers[0].noise = planner.optimizers[0].noise_min = 0.0  # the plan's mean alone, unchanged
    planner.optimizers[0].std[:] = 0.0
    action = planner.act(env, guide=guide)
    planned = planner.optimizers[0].mean  # shifted by one step after acting
    planner.close()
    env.close()
    np.testing.assert_allclose(action, guide, atol=1e-6)
    expected = np.tile(guide[0], (3, 1)) if proposal == "start" else rest
    np.testing.assert_allclose(planned[:3], expected, atol=1e-6)


def test_proposal_candidates_try_half_the_first_commands_around_the_proposal(monkeypatch):
    """proposal: candidates keeps the plan (the first sample is its mean) and centres half the other samples'
    first commands on the proposal; the rest of each sample is the plan's."""
    from dexvision.planning import planner as planner_module  # noqa: PLC0415

    cfg = load_planner_config(None, ["env.task=gimbal-block", "samples=9", "horizon=0.16", "knots=4", "threads=1",
                                     "proposal=candidates", "noise=0", "noise_min=0"])
    env = BlockReorientEnv(cfg.env, 1)
    env.reset(seed=3)
    planner = Planner(cfg, env, seed=5)
    planner.act(env)
    mean = planner.optimizers[0].mean.copy()
    seen = []
    cost = planner_module.total_cost
    monkeypatch.setattr(planner_module, "total_cost", lambda traj, task, c: (seen.append(traj.controls), cost(traj, task, c))[1])
    guide = np.array([[0.9, -0.9, 0.9]])
    planner.act(env, guide=guide)
    planner.close()
    env.close()
    controls = seen[0]
    np.testing.assert_allclose(controls[[0, 5, 6, 7, 8], 0], np.tile(mean[0], (5, 1)), atol=1e-6)
    np.testing.assert_allclose(controls[1:5, 0], np.tile(guide[0], (4, 1)), atol=1e-6)
    np.testing.assert_allclose(controls[:, 1:], np.tile(mean[1:], (9, 1, 1)), atol=1e-6)


def test_a_guided_planner_refines_the_guide_and_not_its_own_plan():
    """Given a guide, the plan starts from it: without noise the action is the guide itself, whatever the planner
    played before; with noise, labels around one guide scatter about it, not about the planner's last plan."""
    cfg = load_planner_config(None, ["env.task=gimbal-block", "samples=8", "horizon=0.16", "knots=4", "threads=1",
                                     "noise=0", "noise_min=0"])
    env = BlockReorientEnv(cfg.env, 2)
    env.reset(seed=3)
    planner = Planner(cfg, env, seed=5)
    for _ in range(3):
        env.step(planner.act(env))
    guide = np.array([[0.5, -0.25, 0.75], [-0.5, 0.0, 0.25]])
    np.testing.assert_allclose(planner.act(env, guide=guide), guide, atol=1e-6)
    with pytest.raises(ValueError, match="guide must be"):
        planner.act(env, guide=guide[:1])
    planner.close()

    noisy = load_planner_config(None, ["env.task=gimbal-block", "samples=8", "elites=2", "horizon=0.16", "knots=4",
                                       "threads=1", "noise=0.2", "noise_min=0.2"])
    planner = Planner(noisy, env, seed=5)
    labels = np.stack([planner.act(env, guide=guide) for _ in range(20)])
    planner.close()
    env.close()
    assert np.abs(labels.mean(axis=0) - guide).max() < 0.2  # around the guide (the elites' mean of 0.2 noise)
    assert labels.std(axis=0).min() > 0.01  # and refined: not the guide itself


def test_fixed_noise_draws_the_same_candidates_each_step():
    opt = CrossEntropy(6, 1, 0.5, 0.5, np.random.default_rng(0), fixed_noise=True)
    opt.reset(np.zeros((3, 2)))
    first = opt.sample()
    assert np.array_equal(first, opt.sample())
    random = CrossEntropy(6, 1, 0.5, 0.5, np.random.default_rng(0))
    random.reset(np.zeros((3, 2)))
    assert np.array_equal(random.sample(), first) and not np.array_equal(random.sample(), first)


def test_goal_summary():
    goals = [{"start_angle": 0.5, "steps": 10, "outcome": "success", "angle_left": 0.3},
             {"start_angle": 2.2, "steps": 30, "outcome": "success", "angle_left": 0.2},
             {"start_angle": 2.8, "steps": 100, "outcome": "timeout", "angle_left": 1.1},
             {"start_angle": 1.2, "steps": 7, "outcome": "drop", "angle_left": 0.9}]
    s = summarize_goals(goals)
    assert s["per_goal_p"] == 0.5 and s["drops_per_goal"] == 0.25 and s["timeouts_per_goal"] == 0.25
    assert s["steps_per_success"] == 20 and s["median_angle_left_at_timeout"] == 1.1
    assert [b["goals"] for b in s["success_by_start_angle"]] == [1, 1, 0, 1, 1]
    low, high = wilson_interval(90, 100)
    assert 0.82 < low < 0.9 < high < 0.95
    assert wilson_interval(0, 10)[0] == 0.0


def test_evaluate_policy_plays_the_planner(tmp_path, capsys):
    out = tmp_path / "planner.json"
    argv = ["--planner", "configs/planner/hand.yaml", "--episodes", "1", "--seed", "5", "--out", str(out),
            "--set", "env.task=gimbal-block", "--set", "samples=8", "--set", "env.max_successes=2",
            "--set", "env.goal_timeout=20"]
    assert evaluate.main(argv) == 0
    summary = json.loads(out.read_text())
    assert summary["episodes"] == 1 and summary["goals"] >= summary["successes"][0]
    assert summary["planner_config"]["samples"] == 8 and summary["decisions_per_s"] > 0
    assert "per-goal p" in capsys.readouterr().out


@pytest.mark.parametrize("sets, expected", [
    (["samples=0"], "samples must be >= 1"),
    (["samples=8", "elites=9"], "elites must be within [1, samples=8]"),
    (["horizon=0"], "horizon must be > 0"),
    (["horizon=0.05"], "not a whole number of the 0.04 s control periods"),
    (["costs.grip=1"], "unknown config key 'costs.grip'"),
    (["obs=pixels"], "obs must be one of state"),
    (["env.action_mode=relative"], "absolute continuous targets"),
    (["knots=50"], "knots 50 exceed the horizon's 12 control steps"),
    (["replan_every=20"], "replan_every 20 is past the horizon's 12 control steps"),
])
def test_bad_planner_configs_end_in_one_line(sets, expected, capsys):
    argv = ["--planner", "configs/planner/hand.yaml", "--episodes", "1"]
    for s in sets:
        argv += ["--set", s]
    assert evaluate.main(argv) == 2
    one_error_line(capsys.readouterr().err, expected)


def test_planner_flags_a_checkpoint_run_reads_are_refused(capsys):
    assert evaluate.main(["--planner", "configs/planner/hand.yaml", "--sample"]) == 2
    one_error_line(capsys.readouterr().err, "--sample is read with --checkpoint only")
    assert evaluate.main(["--checkpoint", "x.pt", "--set", "samples=3"]) == 2
    one_error_line(capsys.readouterr().err, "--set overrides a planner config")


def test_a_drop_on_a_success_step_is_one_success_and_no_phantom_goal(monkeypatch):
    """The goal records of play_planner: a success that ends the episode by a drop on the same step is the
    goal's outcome, not a 0-step drop of the next goal."""
    from dexvision.planning import evaluate as ev  # noqa: PLC0415

    cfg = load_planner_config(None, ["env.task=gimbal-block", "samples=4", "env.max_successes=3"])
    env = BlockReorientEnv(cfg.env, 1)
    planner = Planner(cfg, env, seed=0)
    real_step = env.step

    def step(actions):  # every step succeeds; the second also drops the block
        obs, reward, terminated, truncated, info = real_step(actions)
        step.n += 1
        info = dict(info, episode_successes=np.array([step.n]), dropped=np.array([step.n == 2]))
        done = np.array([step.n == 2])
        if done[0]:
            step.n = 0
        return obs, reward, done, np.zeros(1, bool), {**info, "done_mask": done}

    step.n = 0
    monkeypatch.setattr(env, "step", step)
    results, goals = ev.play_planner(planner, env, 1, seed=0, progress=False)
    planner.close()
    assert [g["outcome"] for g in goals] == ["success", "success"] and results[0]["dropped"]
