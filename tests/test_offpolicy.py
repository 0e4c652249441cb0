"""The off-policy hand teacher: soft actor-critic with hindsight goal relabelling (dexvision.policy.sac and
dexvision.policy.offpolicy), what it needs of the environments (final observations, the goal-dependent
inputs of any goal, a reward of (achieved, goal, drop), one goal per episode, smoothed absolute actions),
and PPO's fixes for a fair baseline (truncation bootstrapped, the goal clock, timeouts that resample)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import one_error_line
from dexvision.config import load_config
from dexvision.policy import evaluate as evaluate_cli
from dexvision.policy import train as train_cli
from dexvision.policy.checkpoint import build_policy, load_policy_checkpoint
from dexvision.envs.rules import goal_observation
from dexvision.envs.task import BlockReorientEnv, EnvConfig, state_keys
from dexvision.policy.loop import Collector, EpisodeStats
from dexvision.policy.model import ActorCritic, PolicyConfig, policy_config_for
from dexvision.policy.offpolicy import SacTrainer
from dexvision.policy.ppo import compute_gae
from dexvision.policy.sac import GoalReward, HerBuffer, SacConfig, SacLearner
from dexvision.policy.train import TrainPolicyConfig
from dexvision.envs.workers import EnvWorkers
from dexvision.sim.rotations import quat_to_matrix, random_quat

HER_ENV = dict(task="hand-block", action_type="continuous", action_mode="absolute", goal_repr="matrix",
               goals="single", rotation_reward="none", success_reward=1.0, drop_penalty=5.0, goal_frame="hand")
TINY_SAC = ["--config", "configs/policy/hand-teacher-sac.yaml", "--set", "num_envs=4", "--set", "rollout=5",
            "--set", "embed_dim=16", "--set", "mlp_hidden=[16]", "--set", "sac.critic_hidden=[16]",
            "--set", "sac.batch_size=8", "--set", "sac.warmup=8", "--set", "sac.buffer_size=400", "--set", "sac.updates_per_step=1",
            "--set", "eval_episodes=2", "--set", "env.goal_timeout=6", "--set", "env.max_successes=2",
            "--set", "eval_every_min=0", "--set", "env_workers=1"]


def tiny_sac(tmp_path, *extra: str) -> TrainPolicyConfig:
    sets = [s for s in TINY_SAC[2:] if s != "--set"] + [f"out={json.dumps(str(tmp_path))}", *extra]
    return load_config(TrainPolicyConfig, "configs/policy/hand-teacher-sac.yaml", sets)


# -- the environment's side ------------------------------------------------------------
@pytest.mark.parametrize("rotation", ["none", "inverse", "distance", "closeness"])
def test_relabelled_reward_is_the_environments_reward_for_that_goal(rotation):
    """Two copies of the same episodes, one playing other goals: the physics is the same (goals do not push the
    block), and GoalReward of (what copy A achieved, copy B's goal, drop) is what copy B's environment paid."""
    cfg = EnvConfig(**{**HER_ENV, "rotation_reward": rotation})
    a, b = BlockReorientEnv(cfg, 3), BlockReorientEnv(cfg, 3)
    a.reset(seed=4), b.reset(seed=4)
    rng = np.random.default_rng(0)
    b.goal = np.stack([random_quat(rng) for _ in range(3)])
    b.goal[0] = a.block_pose(0)[1]  # one goal the block is at: the success term is exercised
    reward_fn = GoalReward.of_env(cfg)
    for _ in range(4):
        actions = rng.uniform(-1, 1, (3, a.nu))
        _, _, _, _, info_a = a.step(actions)
        _, reward_b, _, _, info_b = b.step(actions)
        np.testing.assert_allclose(info_a["achieved_quat"], info_b["achieved_quat"])
        relabelled = reward_fn(info_a["achieved_quat"], info_b["step_goal"], info_a["dropped"])
        np.testing.assert_allclose(relabelled, reward_b, rtol=1e-5, atol=1e-6)
    assert reward_fn(info_a["achieved_quat"][:1], info_a["achieved_quat"][:1], np.zeros(1, bool))[0] >= 1.0


def test_goal_observation_recomputes_what_the_environment_observes():
    cfg = EnvConfig(**HER_ENV)
    env = BlockReorientEnv(cfg, 3)
    obs, _ = env.reset(seed=1)
    again = goal_observation(obs, env.goal, cfg)
    for key in ("goal_rot", "relative_rot"):
        np.testing.assert_allclose(again[key], obs[key], atol=1e-6)
    # another goal: the block's observed orientation turned into it
    goal = np.stack([random_quat(np.random.default_rng(i)) for i in range(3)])
    rel = goal_observation(obs, goal, cfg)["relative_rot"].reshape(3, 3, 3)
    turned = rel @ obs["block_rot"].reshape(3, 3, 3)
    np.testing.assert_allclose(turned, quat_to_matrix(goal), atol=0.05)  # (the block_rot observed is noisy)
    with pytest.raises(ValueError, match="goal_repr matrix"):
        goal_observation(obs, goal, EnvConfig(**{**HER_ENV, "goal_repr": "rotvec"}))


def test_single_goal_episodes_keep_their_goal_and_end_on_the_clock_with_a_final_observation():
    cfg = EnvConfig(**{**HER_ENV, "goal_timeout": 4, "obs_noise": 0.0})
    env = BlockReorientEnv(cfg, 2)
    env.reset(seed=0)
    env.goal[0] = env.block_pose(0)[1]  # reached at once, and kept
    goals = env.goal.copy()
    hold = np.zeros((2, env.nu))
    for t in range(4):
        obs, reward, terminated, truncated, info = env.step(hold)
        np.testing.assert_allclose(info["step_goal"], goals)  # the goal is not replaced on success
        if t < 3:
            assert not info["done_mask"].any() and "final_obs" not in info
    assert truncated.all() and not terminated.any() and info["episode_successes"][0] == 1
    # the final observation is the state the episode ended in, not the next episode's first
    final = info["final_obs"]["block_rot"].reshape(2, 3, 3)
    np.testing.assert_allclose(final, quat_to_matrix(info["achieved_quat"]), atol=1e-5)
    assert not np.allclose(obs["goal_rot"], final.reshape(2, 9))


def test_env_workers_pass_final_observations_and_goals_through():
    cfg = EnvConfig(**{**HER_ENV, "goal_timeout": 3})
    one, two = BlockReorientEnv(cfg, 4), EnvWorkers(cfg, 4, 2)
    try:
        one.reset(seed=2), two.reset(seed=2)
        rng = np.random.default_rng(1)
        for _ in range(3):
            actions = rng.uniform(-1, 1, (4, one.nu))
            *_, info_1 = one.step(actions)
            *_, info_2 = two.step(actions)
            for key in ("achieved_quat", "step_goal", "done_mask"):
                np.testing.assert_allclose(info_1[key], info_2[key])
        assert set(info_1["final_obs"]) == set(info_2["final_obs"])
        for key, value in info_1["final_obs"].items():
            np.testing.assert_allclose(value, info_2["final_obs"][key])
    finally:
        two.close()


def test_smoothed_absolute_actions_move_part_of_the_way():
    env = BlockReorientEnv(EnvConfig(**{**HER_ENV, "action_average": 0.25}), 1)
    env.reset(seed=0)
    before = env.targets.copy()
    env.step(np.ones((1, env.nu)))  # the top of every range
    top = env._ctrl_low + env._ctrl_span
    np.testing.assert_allclose(env.targets, before + 0.25 * (top - before))
    with pytest.raises(ValueError, match="action_average"):
        EnvConfig(**{**HER_ENV, "action_mode": "relative", "action_average": 0.5})


# -- the replay buffer ------------------------------------------------------------------
def hand_made_buffer(her_k: float) -> HerBuffer:
    """One environment: an episode of 3 steps (achieved 1, 2, 3), then a running one (achieved 4, 5)."""
    buf = HerBuffer(capacity=10, num_envs=1, obs_dims={"x": 1}, action_dim=1, goal_dim=1, her_k=her_k, seed=0)
    for t, (achieved, done) in enumerate([(1, False), (2, False), (3, True), (4, False), (5, False)]):
        buf.add({"x": np.array([[t]])}, np.array([[t]]), {"x": np.array([[t + 1]])}, np.array([[achieved]]),
                np.array([[100.0 + t // 3]]), np.array([t == 2]), np.array([done]))
    return buf


def sample_of(buf: HerBuffer, n: int = 400) -> dict:
    return buf.sample(n, lambda achieved, goal, terminal: (achieved[:, 0] == goal[:, 0]).astype(np.float32),
                      lambda obs, goal: {"g": goal.astype(np.float32)})


def test_her_buffer_relabels_with_an_orientation_reached_later_in_the_same_episode():
    batch = sample_of(hand_made_buffer(her_k=1e9))  # every goal relabelled
    t = batch["obs"]["x"][:, 0].astype(int)
    goal = batch["obs"]["g"][:, 0]
    first = t < 3
    # episode 1: step t may take what steps t..2 achieved (t+1..3); episode 2 (running): steps t..4 (t+1..5)
    assert np.all(goal[first] >= t[first] + 1) and np.all(goal[first] <= 3)
    assert np.all(goal[~first] >= t[~first] + 1) and np.all(goal[~first] <= 5)
    assert set(np.unique(goal[t == 0])) == {1.0, 2.0, 3.0}  # every later orientation is drawn
    np.testing.assert_array_equal(batch["next_obs"]["g"], batch["obs"]["g"])  # one goal for both ends
    np.testing.assert_array_equal(batch["next_obs"]["x"][:, 0], t + 1)
    np.testing.assert_array_equal(batch["terminal"], (t == 2).astype(np.float32))
    # the reward is recomputed for the new goal: the last step of a future draw reaches it
    np.testing.assert_array_equal(batch["rewards"], (goal == t + 1).astype(np.float32))
    assert batch["relabelled"].all()


def test_her_buffer_keeps_the_original_goals_without_relabelling():
    batch = sample_of(hand_made_buffer(her_k=0.0))
    t = batch["obs"]["x"][:, 0].astype(int)
    np.testing.assert_array_equal(batch["obs"]["g"][:, 0], 100.0 + t // 3)
    assert not batch["relabelled"].any() and not batch["rewards"].any()


def test_her_buffer_overwrites_the_oldest_steps():
    buf = HerBuffer(capacity=3, num_envs=1, obs_dims={"x": 1}, action_dim=1, goal_dim=1, her_k=1e9, seed=0)
    for t in range(7):
        buf.add({"x": np.array([[t]])}, np.zeros((1, 1)), {"x": np.array([[t + 1]])}, np.array([[t + 1.0]]),
                np.zeros((1, 1)), np.zeros(1, bool), np.array([t == 5]))
    assert len(buf) == 3
    batch = sample_of(buf, 200)
    t = batch["obs"]["x"][:, 0].astype(int)
    assert set(np.unique(t)) == {4, 5, 6}
    goal = batch["obs"]["g"][:, 0]
    assert np.all(goal[t == 6] == 7) and np.all((goal[t == 4] >= 5) & (goal[t == 4] <= 6))


# -- the learner --------------------------------------------------------------------------
def test_squashed_gaussian_actions_are_bounded_and_greedy_is_tanh_of_the_mean():
    cfg = PolicyConfig(policy_inputs={"a": 3}, value_inputs={"a": 3}, num_actions=2, core="mlp", mlp_hidden=[8],
                       embed_dim=8, action_dist="tanh_gaussian")
    torch.manual_seed(0)
    model = ActorCritic(cfg)
    with torch.no_grad():
        model.policy_head.bias.copy_(torch.tensor([3.0, -1.0, 0.5, 0.5]))  # means 3, -1; log stds 0.5
    obs = {"a": torch.zeros(64, 3)}
    action, logprob, *_ = model.get_action_and_value(obs, model.initial_state(64), torch.zeros(64))
    assert action.abs().max() < 1 and torch.isfinite(logprob).all()
    greedy, *_ = model.get_action_and_value(obs, model.initial_state(64), torch.zeros(64), greedy=True)
    torch.testing.assert_close(greedy[0], torch.tanh(torch.tensor([3.0, -1.0])), atol=1e-3, rtol=0)


def test_exploration_noise_and_random_actions_stay_in_range_at_their_rates():
    from types import SimpleNamespace  # noqa: PLC0415

    def explore(actions, **sac):
        trainer = SimpleNamespace(sac=SacConfig(**sac), rng=np.random.default_rng(0))
        return SacTrainer.explore(trainer, actions)

    actor = np.full((4000, 20), 0.95, dtype=np.float32)
    np.testing.assert_array_equal(explore(actor), actor)  # the defaults: SAC's own sampling only
    noisy = explore(actor, action_noise=0.2)
    assert noisy.max() <= 1.0 and (noisy == 1.0).mean() == pytest.approx(0.40, abs=0.02)  # P(N(0, 0.2) > 0.05)
    inside = noisy[noisy < 1.0] - 0.95
    assert inside.min() < -0.5 and 0.15 < np.std(explore(np.zeros((4000, 20)), action_noise=0.2)) < 0.25
    mixed = explore(actor, random_eps=0.3)
    random_rows = (mixed != actor).any(axis=1)
    assert random_rows.mean() == pytest.approx(0.3, abs=0.03)
    assert mixed.min() >= -1.0 and mixed.max() <= 1.0 and mixed[random_rows].mean() == pytest.approx(0.0, abs=0.02)
    np.testing.assert_array_equal(mixed[~random_rows], actor[~random_rows])  # the others are the actor's


def test_same_seed_gives_the_same_first_updates(tmp_path):
    weights = []
    for run in ("a", "b"):
        trainer = SacTrainer(tiny_sac(tmp_path / run))
        trainer._credit = 0.0
        try:
            for _ in range(4):
                trainer.step({})
        finally:
            trainer.env.close()
            trainer.tracker.close()
        assert trainer.optimizer_steps == 3  # 8 warm-up transitions (2 steps), then one update per step
        weights.append(torch.cat([p.detach().flatten() for p in trainer.learner.critic.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_sac_trains_resumes_and_its_checkpoint_plays_the_full_task(tmp_path, capsys):
    out = tmp_path / "sac"
    assert train_cli.main([*TINY_SAC, "--set", "env.success_threshold=0.2", "--steps", "40", "--out", str(out)]) == 0
    ckpt = load_policy_checkpoint(out / "checkpoint.pt")
    assert ckpt["frames"] == 40 and ckpt["algo"] == "sac" and ckpt["optimizer_steps"] > 0
    assert ckpt["env_config"]["goals"] == "sequence" and ckpt["train_env_config"]["goals"] == "single"
    # a tighter training tolerance; the checkpoint (and so evaluate-policy) plays the task's 0.4 rad
    assert ckpt["train_env_config"]["success_threshold"] == 0.2 and ckpt["env_config"]["success_threshold"] == 0.4
    assert ckpt["env_config"]["rotation_reward"] == "progress"  # evaluation reports the task's own return
    assert train_cli.main(["--steps", "80", "--out", str(out), "--resume"]) == 0
    resumed = load_policy_checkpoint(out / "checkpoint.pt")
    assert resumed["frames"] == 80 and resumed["config"]["sac"]["batch_size"] == 8
    # the restored critics kept learning from where they were, after the buffer refilled (warm-up: 8 transitions)
    assert resumed["optimizer_steps"] > ckpt["optimizer_steps"]
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)
    assert evaluate_cli.main(["--checkpoint", str(out / "checkpoint.pt"), "--episodes", "2"]) == 0
    assert "successes" in capsys.readouterr().out
    model = build_policy(resumed)
    assert model.cfg.action_dist == "tanh_gaussian"


@pytest.mark.parametrize("extra, fragments", [
    (["--obs", "pixels"], ["--algo sac", "--obs state"]),
    (["--set", "sac.buffer_size=0"], ["buffer_size must be >= 1"]),
    (["--set", "sac.batch_size=0"], ["batch_size must be >= 1"]),
    (["--set", "sac.random_eps=1.5"], ["random_eps must be in [0, 1]"]),
    (["--set", "sac.action_noise=-0.1"], ["action_noise must be >= 0"]),
    (["--set", "env.goal_repr=rotvec"], ["env.goal_repr=matrix"]),
    (["--set", "env.rotation_reward=progress"], ["env.rotation_reward=none"]),
    (["--set", "env.action_type=discrete"], ["continuous actions"]),
    (["--set", "core=lstm"], ["core: mlp"]),
])
def test_sac_refuses_what_it_cannot_do_in_one_line(tmp_path, capsys, extra, fragments):
    assert train_cli.main([*TINY_SAC, "--steps", "8", "--out", str(tmp_path / "x"), *extra]) == 2
    one_error_line(capsys.readouterr().err, *fragments)
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def sac_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("sac-teacher") / "run"
    assert train_cli.main([*TINY_SAC, "--steps", "24", "--out", str(out)]) == 0
    return out / "checkpoint.pt"


def test_a_student_clones_a_squashed_gaussian_teacher(sac_teacher, tmp_path):
    sets = ["--set", "num_envs=4", "--set", "minibatches=2", "--set", "rollout=10", "--set", "core=mlp",
            "--set", "embed_dim=16", "--set", "mlp_hidden=[16]", "--set", "eval_episodes=2",
            "--set", "env.goal_timeout=5", "--set", "env.max_successes=2", "--set", "env.action_type=continuous",
            "--set", "env.action_mode=absolute", "--set", "env.action_average=0.3", "--set", "env.goal_repr=matrix",
            "--set", "env.goal_frame=hand"]
    out = tmp_path / "student"
    assert train_cli.main(["--task", "hand-block", "--algo", "bc", "--teacher", str(sac_teacher), "--steps", "40",
                           "--out", str(out), *sets]) == 0
    student = load_policy_checkpoint(out / "checkpoint.pt")
    assert student["policy_config"]["action_dist"] == "tanh_gaussian"


@pytest.mark.parametrize("extra, fragments", [
    (["--algo", "bc+ppo"], ["squashed (tanh) Gaussian", "--algo bc"]),
    (["--algo", "bc", "--set", "env.action_average=1.0"], ["env.action_average=0.3"]),
    (["--algo", "bc", "--set", "env.action_mode=relative", "--set", "env.action_average=1.0"],
     ["env.action_mode=absolute"]),
])
def test_a_student_that_cannot_clone_the_teachers_actions_is_refused(sac_teacher, tmp_path, capsys, extra, fragments):
    sets = ["--set", "num_envs=4", "--set", "minibatches=2", "--set", "rollout=10", "--set", "core=mlp",
            "--set", "env.action_type=continuous", "--set", "env.action_mode=absolute",
            "--set", "env.action_average=0.3", "--set", "env.goal_repr=matrix", "--set", "env.goal_frame=hand"]
    code = train_cli.main(["--task", "hand-block", "--teacher", str(sac_teacher), "--steps", "40",
                           "--out", str(tmp_path / "s"), *sets, *extra])
    assert code == 2
    one_error_line(capsys.readouterr().err, *fragments)


# -- PPO's fixes: truncation bootstrapped, the goal clock, timeouts that resample ------------------------
def test_gae_bootstraps_a_truncated_episode_from_its_final_observation():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the first episode is cut off by its time limit after step 1
    bootstrap = torch.tensor([[0.0], [4.0], [0.0]])  # the value of the observation it was cut off at
    adv, _ = compute_gae(rewards, values, dones, torch.tensor([2.0]), gamma=0.9, lam=0.8, bootstrap=bootstrap)
    # t=1: 2 + 0.9 * 4 - 1 = 4.6 (not 1.0, as a termination); t=0: 1 + 0.9 * 1 - 0.5 + 0.72 * 4.6
    assert torch.allclose(adv[:, 0], torch.tensor([1.4 + 0.72 * 4.6, 4.6, 3.3]))


def test_collector_records_the_value_of_each_truncated_episodes_final_observation():
    cfg = EnvConfig(task="hand-block", action_type="continuous", action_mode="relative", goal_timeout=3,
                    goal_clock=True, obs_noise=0.0)
    env = BlockReorientEnv(cfg, 2)
    policy_cfg = policy_config_for(env, "state", state_keys("hand-block"), core="mlp", mlp_hidden=[8], embed_dim=8)
    assert "goal_clock" in policy_cfg.value_inputs and "goal_clock" not in policy_cfg.policy_inputs
    torch.manual_seed(0)
    model = ActorCritic(policy_cfg)
    collector = Collector(env, model, None, rollout=4, chunk=2, device=torch.device("cpu"), seed=0,
                          bootstrap_truncated=True)
    finals = []
    step = env.step

    def spy(actions):
        out = step(actions)
        finals.append(out[4].get("final_obs"))
        return out

    env.step = spy
    rollout, _ = collector.collect(EpisodeStats())
    t = 2  # the goal clock cuts every episode after 3 steps (nothing is reached or dropped holding still)
    assert rollout.dones[t].all() and not rollout.bootstrap[[0, 1, 3]].any()
    final = {k: torch.from_numpy(v) for k, v in finals[t].items()}
    np.testing.assert_allclose(finals[t]["goal_clock"], 1.0)  # it ended when the clock ran out
    with torch.no_grad():
        _, _, _, value, _, _ = model.get_action_and_value(final, model.initial_state(2), torch.zeros(2))
    torch.testing.assert_close(rollout.bootstrap[t], value)


def test_a_timed_out_goal_is_replaced_and_the_episode_goes_on_until_its_step_limit():
    cfg = EnvConfig(task="hand-block", action_type="continuous", action_mode="relative", goal_timeout=2,
                    timeout="resample", max_episode_steps=5, goal_clock=True)
    env = BlockReorientEnv(cfg, 1)
    obs, _ = env.reset(seed=0)
    goals, clocks = [env.goal.copy()], [float(obs["goal_clock"][0, 0])]
    for t in range(5):
        obs, _, terminated, truncated, info = env.step(np.zeros((1, env.nu)))
        goals.append(info["step_goal"].copy())
        clocks.append(float(obs["goal_clock"][0, 0]))
        assert truncated[0] == (t == 4) and not terminated[0]
    assert not np.allclose(goals[1], goals[3])  # the goal of steps 1-2 timed out and was replaced
    assert clocks[:3] == [0.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="max_episode_steps"):
        EnvConfig(timeout="resample")


def test_sac_with_relabelling_learns_to_reach_goals_on_a_point():
    """The learner end to end on a task it must solve: a point in the square [-1, 1]^2 moved by up to 0.2 per step
    towards a uniformly random goal, a sparse -1/0 reward within 0.1 (HER's), 20-step episodes. From no success
    at all (random goals are almost never reached by chance) to most goals reached in 700 updates.

    The point and its goals are observed 10 units from the origin, so the inputs' normalization matters: an actor
    trained on inputs normalized otherwise than when it acts (as the update once did, normalizing twice) sees
    every input clipped to -5 in training and does not learn."""
    torch.manual_seed(0)
    n, horizon, dim = 8, 20, 2
    inputs = {"observation": dim, "desired_goal": dim}
    actor = ActorCritic(PolicyConfig(policy_inputs=inputs, value_inputs=inputs, num_actions=dim, embed_dim=64,
                                     core="mlp", mlp_hidden=[64], action_dist="tanh_gaussian", normalize_obs=True))
    learner = SacLearner(actor, SacConfig(batch_size=256, critic_hidden=[64, 64]), 1e-3, 0.95, torch.device("cpu"))
    buf = HerBuffer(100_000, n, {"observation": dim}, dim, dim, 4.0, seed=0)
    rng = np.random.default_rng(0)
    reward = lambda a, g, _t: -(np.linalg.norm(a - g, axis=1) > 0.1).astype(np.float32)  # noqa: E731
    offset = 10.0  # what the learner sees: coordinates shifted away from the origin
    goal_obs = lambda _o, g: {"desired_goal": (g + offset).astype(np.float32)}  # noqa: E731

    def policy(x, g, greedy):
        with torch.no_grad():
            p = actor.policy_params({"observation": torch.tensor(x + offset).float(),
                                     "desired_goal": torch.tensor(g + offset).float()})
        return torch.tanh(p[..., 0] if greedy else p[..., 0] + p[..., 1].exp() * torch.randn_like(p[..., 0])).numpy()

    def success_rate(episodes=200):
        x, g = rng.uniform(-1, 1, (episodes, dim)), rng.uniform(-1, 1, (episodes, dim))
        for _ in range(horizon):
            x = np.clip(x + 0.2 * policy(x, g, True), -1, 1)
        return float((np.linalg.norm(x - g, axis=1) < 0.1).mean())

    before = success_rate()
    x, g = rng.uniform(-1, 1, (n, dim)), rng.uniform(-1, 1, (n, dim))
    for step in range(1, 801):
        actor.observe({"observation": torch.tensor(x + offset).float(), "desired_goal": torch.tensor(g + offset).float()})
        a = rng.uniform(-1, 1, (n, dim)) if step <= 100 else policy(x, g, False)
        x2 = np.clip(x + 0.2 * a, -1, 1)
        done = np.full(n, step % horizon == 0)
        buf.add({"observation": (x + offset).astype(np.float32)}, a, {"observation": (x2 + offset).astype(np.float32)}, x2, g,
                np.zeros(n, bool), done)
        x = rng.uniform(-1, 1, (n, dim)) if done[0] else x2
        g = rng.uniform(-1, 1, (n, dim)) if done[0] else g
        if step > 100:
            learner.update(buf.sample(256, reward, goal_obs))
    assert before < 0.1 and success_rate() > 0.8
