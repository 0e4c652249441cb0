"""The fast-learning options of dexvision.policy: continuous (Gaussian) actions, an MLP core, input
normalization, the adaptive learning rate, and cloning a Gaussian teacher."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from conftest import one_error_line, vision_checkpoint
from dexvision.config import load_config
from dexvision.policy import train as train_cli
from dexvision.policy.checkpoint import build_policy, load_policy_checkpoint
from dexvision.envs.task import BlockReorientEnv, EnvConfig, state_keys
from dexvision.policy.model import ActorCritic, PolicyConfig, RunningMoments
from dexvision.policy.ppo import bc_loss, ppo_loss, LossConfig
from dexvision.policy.train import PolicyTrainer, TrainPolicyConfig
from dexvision.envs.workers import EnvWorkers
from dexvision.sim.rotations import axis_angle_to_quat, quat_angle, quat_multiply
from dexvision.sim.scenes import BLOCK_HALF_SIZE, BLOCK_REST_POINT

FAST = ["core=mlp", "mlp_hidden=[32, 16]", "normalize_obs=true", "env.action_type=continuous",
        "env.action_mode=relative", "kl_target=0.01", "loss.entropy_coef=0.0"]


def tiny_continuous(tmp_path, *extra: str) -> TrainPolicyConfig:
    sets = ["num_envs=4", "minibatches=2", "rollout=10", "embed_dim=32", "eval_episodes=2", "env.max_successes=2",
            "env.goal_timeout=5", f"out={json.dumps(str(tmp_path))}", *FAST, *extra]
    return load_config(TrainPolicyConfig, None, sets)


def gaussian_model(**kw) -> ActorCritic:
    cfg = PolicyConfig(policy_inputs={"a": 3}, value_inputs={"a": 3, "b": 2}, num_actions=4, core="mlp",
                       mlp_hidden=[16, 8], embed_dim=16, action_dist="gaussian", **kw)
    torch.manual_seed(0)
    return ActorCritic(cfg)


def test_continuous_actions_are_clipped_and_move_commands_by_at_most_a_step():
    env = BlockReorientEnv(EnvConfig(task="hand-block", action_type="continuous", action_mode="relative",
                                     relative_step=0.1, obs_noise=0.0), 3)
    env.reset(seed=0)
    assert env.single_action_space.shape == (env.nu,) and env.single_action_space.dtype == np.float32
    low, span = env._ctrl_low, env._ctrl_span
    start = env.targets.copy()
    actions = np.zeros((3, env.nu), np.float32)  # 0 holds
    actions[0] = 0.5  # half a step up
    actions[2] = -7.0  # clipped to a whole step down
    env.step(actions)
    np.testing.assert_allclose(env.targets[0], np.minimum(start[0] + 0.05 * span, low + span))
    np.testing.assert_allclose(env.targets[1], start[1])
    np.testing.assert_allclose(env.targets[2], np.maximum(start[2] - 0.1 * span, low))


def test_continuous_env_workers_match_one_process():
    cfg = EnvConfig(task="hand-block", action_type="continuous", action_mode="relative", goal_timeout=3)
    actions = np.random.default_rng(1).uniform(-1, 1, (6, 3, 20)).astype(np.float32)

    def roll(env):
        obs, _ = env.reset(seed=4)
        out = [obs["joint_pos"].copy()]
        for a in actions:
            obs, reward, *_ = env.step(a)
            out += [obs["joint_pos"].copy(), reward.copy()]
        return out

    expected = roll(BlockReorientEnv(cfg, 3))
    env = EnvWorkers(cfg, 3, 2)
    try:
        got = roll(env)
    finally:
        env.close()
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))


def test_gaussian_policy_samples_around_its_mean_and_is_greedy_at_it():
    model = gaussian_model(init_log_std=math.log(0.5))
    obs = {"a": torch.randn(4000, 3), "b": torch.randn(4000, 2)}
    state, starts = model.initial_state(4000), torch.ones(4000)
    gen = torch.Generator().manual_seed(3)
    action, logprob, entropy, _, params, new_state = model.get_action_and_value(obs, state, starts, generator=gen)
    mean = params[..., 0]
    assert action.shape == (4000, 4) and torch.equal(new_state, state)  # an MLP core keeps no memory
    assert (action - mean).std().item() == pytest.approx(0.5, rel=0.05)
    expected = Normal(mean, 0.5).log_prob(action).sum(-1)
    torch.testing.assert_close(logprob, expected)
    torch.testing.assert_close(entropy, torch.full((4000,), 4 * (0.5 + 0.5 * math.log(2 * math.pi) + math.log(0.5))))
    greedy, *_ = model.get_action_and_value(obs, state, starts, greedy=True)
    torch.testing.assert_close(greedy, mean)


def test_running_moments_match_the_whole_batch_and_normalize_inputs():
    moments = RunningMoments({"x": 2})
    data = torch.randn(300, 2) * torch.tensor([3.0, 0.1]) + torch.tensor([5.0, -1.0])
    for part in data.split(100):
        moments.update({"x": part})
    torch.testing.assert_close(moments.x_mean, data.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(moments.x_var, data.var(0, unbiased=False), atol=1e-3, rtol=1e-3)
    z = moments("x", data)
    assert z.mean(0).abs().max() < 1e-3 and (z.std(0) - 1).abs().max() < 0.01
    assert moments("x", torch.tensor([[1e6, -1e6]])).tolist() == [[5.0, -5.0]]  # clipped


def test_gaussian_ppo_loss_prefers_actions_with_positive_advantage():
    model = gaussian_model()
    obs = {"a": torch.randn(1, 8, 3), "b": torch.randn(1, 8, 2)}
    params, values, _ = model(obs, model.initial_state(8), torch.ones(1, 8))
    dist = model.distribution(params)
    actions = params[..., 0].detach() + 0.3
    batch = {"actions": actions, "logprobs": dist.log_prob(actions).sum(-1).detach(),
             "advantages": torch.linspace(-1, 1, 8).view(1, 8), "returns": torch.zeros(1, 8)}
    loss = ppo_loss(params, values, batch, LossConfig(), dist_fn=model.distribution)
    loss["policy"].backward()
    # the gradient moves the mean of high-advantage rows towards their action (+0.3): d loss / d mean < 0
    grad = model.policy_head.bias.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert loss["approx_kl"].item() == pytest.approx(0.0, abs=1e-6)


def test_gaussian_cloning_loss_is_the_kl_between_the_policies():
    model = gaussian_model()
    obs = {"a": torch.randn(2, 5, 3), "b": torch.randn(2, 5, 2)}
    params, values, _ = model(obs, model.initial_state(5), torch.ones(2, 5))
    same = bc_loss(params, values, {"teacher_logits": params.detach(), "teacher_values": values.detach()},
                   LossConfig(), dist_fn=model.distribution)
    assert same["kl"].item() == pytest.approx(0.0, abs=1e-6)
    shifted = params.detach().clone()
    shifted[..., 0] += 0.5  # teacher means 0.5 away, same std: KL = 0.5^2 / (2 sigma^2) per actuator
    sigma = math.exp(model.cfg.init_log_std)
    moved = bc_loss(params, values, {"teacher_logits": shifted, "teacher_values": values.detach()}, LossConfig(),
                    dist_fn=model.distribution)
    assert moved["kl"].item() == pytest.approx(4 * 0.25 / (2 * sigma**2), rel=1e-4)


def test_adaptive_learning_rate_follows_the_kl(tmp_path):
    trainer = PolicyTrainer(tiny_continuous(tmp_path / "run", "task=hand-block", "env_workers=1"))
    try:
        lr = trainer.optimizer.param_groups[0]["lr"]
        trainer._adapt_lr(1.0)  # far above 2 x 0.01
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr / 1.5)
        trainer._adapt_lr(0.001)  # below half the target
        trainer._adapt_lr(0.001)
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr * 1.5)
        trainer._adapt_lr(0.01)  # on target: unchanged
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr * 1.5)
        metrics = trainer.iterate()
        assert metrics["charts/learning_rate"] > 0 and all(np.isfinite(v) for v in metrics.values())
        assert trainer.model.obs_moments.count.item() == pytest.approx(40, abs=0.01)  # 10 steps x 4 envs
        trainer.checkpoint()
    finally:
        trainer.env.close()
        trainer.tracker.close()
    ckpt = load_policy_checkpoint(tmp_path / "run" / "checkpoint.pt")
    rebuilt = build_policy(ckpt)  # the moments travel with the weights
    assert torch.equal(rebuilt.obs_moments.joint_pos_mean, trainer.model.obs_moments.joint_pos_mean)
    assert ckpt["learning_rates"] == [trainer.optimizer.param_groups[0]["lr"]]


def test_a_gaussian_teacher_is_cloned_and_a_categorical_student_refused(tmp_path, capsys):
    teacher_dir = tmp_path / "teacher"
    flags = ["--set", "num_envs=4", "--set", "minibatches=2", "--set", "rollout=10", "--set", "embed_dim=32",
             "--set", "eval_episodes=2", "--set", "env.max_successes=2", "--set", "env.goal_timeout=5"]
    fast = [x for s in FAST for x in ("--set", s)]
    assert train_cli.main(["--steps", "40", "--out", str(teacher_dir), *flags, *fast]) == 0
    teacher = str(teacher_dir / "checkpoint.pt")
    # a state student cloned from it (the same continuous actions): the KL falls
    assert train_cli.main(["--algo", "bc", "--teacher", teacher, "--steps", "40", "--out", str(tmp_path / "s"),
                           *flags, *fast]) == 0
    metrics = [json.loads(line) for line in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert any("losses/kl" in m and np.isfinite(m["losses/kl"]) for m in metrics)
    capsys.readouterr()
    code = train_cli.main(["--algo", "bc", "--teacher", teacher, "--steps", "40", "--out", str(tmp_path / "c"),
                           *flags])
    assert code == 2
    one_error_line(capsys.readouterr().err, "env.action_type=continuous")


def test_fast_options_reject_bad_values(tmp_path, capsys):
    for setting, message in [("core=transformer", "core must be one of lstm, mlp"),
                             ("env.action_type=analog", "action_type must be one of discrete, continuous"),
                             ("kl_target=-1", "kl_target must be >= 0"),
                             ("env.progress_reward=-1", "progress_reward, position_penalty and action_penalty must be >= 0"),
                             ("env.action_penalty=-0.1", "action_penalty must be >= 0"),
                             ("env.rotation_reward=log", "rotation_reward must be one of progress, inverse")]:
        code = train_cli.main(["--steps", "40", "--out", str(tmp_path / "x"), "--set", setting])
        assert code == 2
        one_error_line(capsys.readouterr().err, message)
    code = train_cli.main(["--steps", "40", "--out", str(tmp_path / "y"), "--set", "env.action_type=continuous",
                           "--set", "init_hold_prob=0.5"])
    assert code == 2
    one_error_line(capsys.readouterr().err, "init_hold_prob needs env.action_type discrete")


def test_progress_reward_weights_the_decrease_of_the_rotation_distance():
    def rewards(weight: float) -> np.ndarray:
        cfg = EnvConfig(task="hand-block", action_type="continuous", action_mode="relative", success_threshold=0.01,
                        progress_reward=weight)
        env = BlockReorientEnv(cfg, 2)
        env.reset(seed=3)
        out = [env.step(np.full((2, env.nu), 0.3, np.float32))[1] for _ in range(5)]
        return np.array(out)

    base, heavy = rewards(1.0), rewards(5.0)
    assert np.abs(base).max() > 0  # the block moved relative to its goal
    np.testing.assert_allclose(heavy, 5.0 * base, rtol=1e-5, atol=1e-7)


def test_inverse_rotation_reward_and_position_penalty_follow_the_block():
    """Isaac Gym's ShadowHand terms: 1 / (distance + eps) each step, minus a weight x the block's distance
    from its rest point; recomputed here from the poses the environment reports."""
    cfg = EnvConfig(task="hand-block", action_type="continuous", action_mode="relative", success_threshold=0.01,
                    rotation_reward="inverse", rotation_eps=0.2, position_penalty=3.0, success_reward=0.0)
    env = BlockReorientEnv(cfg, 2)
    env.reset(seed=3)
    for _ in range(4):
        _, reward, terminated, truncated, _ = env.step(np.full((2, env.nu), 0.3, np.float32))
        assert not (terminated | truncated).any()
        pos, quat = env._poses()
        dist = quat_angle(quat, env.goal)
        expected = 1.0 / (dist + 0.2) - 3.0 * np.linalg.norm(pos - BLOCK_REST_POINT, axis=1)
        np.testing.assert_allclose(reward, expected, rtol=1e-5)
        assert (reward < 1.0 / 0.2).all() and (reward > 1.0 / (np.pi + 0.2) - 3.0).all()


def test_the_action_penalty_charges_the_mean_squared_command_in_force():
    """A penalty of c costs c x the commands' mean square every step (in [-1, 1] units), the same steps as
    without it otherwise."""
    def rewards(penalty: float, command: float) -> np.ndarray:
        env = BlockReorientEnv(EnvConfig(task="gimbal-block", action_type="continuous", action_penalty=penalty), 2)
        env.reset(seed=3)
        out = np.array([env.step(np.full((2, env.nu), command, np.float32))[1] for _ in range(3)])
        env.close()
        return out

    np.testing.assert_allclose(rewards(0.5, 0.6), rewards(0.0, 0.6) - 0.5 * 0.36, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rewards(0.5, 0.0), rewards(0.0, 0.0), atol=1e-7)  # standing still is free


def test_fingertip_positions_join_the_hand_state_only_when_asked(tmp_path):
    env = BlockReorientEnv(EnvConfig(task="hand-block", obs_noise=0.0, fingertips=True), 1)
    obs, _ = env.reset(seed=0)
    pos, _ = env._poses()
    tips = env.datas[0].site_xpos[env._tips]
    np.testing.assert_allclose(obs["fingertip_pos"].reshape(5, 3), (tips - pos[0]) / (2 * BLOCK_HALF_SIZE), rtol=1e-5)
    # in the hand, every fingertip is within a hand's length (0.25 m) of the block
    assert (np.linalg.norm(tips - pos[0], axis=1) < 0.25).all()
    assert "fingertip_pos" not in state_keys("hand-block") and "fingertip_pos" in state_keys("hand-block", True)
    assert "fingertip_pos" not in BlockReorientEnv(EnvConfig(task="gimbal-block"), 1).obs_dims()
    plain_obs, _ = BlockReorientEnv(EnvConfig(task="hand-block", obs_noise=0.0), 1).reset(seed=0)
    assert "fingertip_pos" not in plain_obs  # not computed when the state leaves it out
    cfg = tiny_continuous(tmp_path, "task=hand-block", "env.fingertips=true")
    trainer = PolicyTrainer(cfg)
    try:
        assert trainer.policy_cfg.policy_inputs["fingertip_pos"] == 15
        trainer.iterate()
    finally:
        trainer.env.close()
        trainer.tracker.close()


@pytest.mark.slow
def test_hand_pixel_student_clones_a_hand_teacher_with_env_workers(tmp_path):
    """One BC iteration of the shipped hand student config at tiny sizes, its environments stepped and
    rendered by two env worker processes, cloning a (tiny) hand teacher of the shipped teacher config."""
    tiny = ["num_envs=4", "minibatches=2", "rollout=8", "chunk=8", "embed_dim=32", "eval_episodes=2",
            "env.goal_timeout=5", "env.max_successes=2"]
    teacher_cfg = load_config(TrainPolicyConfig, "configs/policy/hand-teacher-ppo.yaml",
                              tiny + ["mlp_hidden=[32]", "env_workers=1", f"out={json.dumps(str(tmp_path / 't'))}"])
    teacher = PolicyTrainer(teacher_cfg)
    try:
        teacher.iterate()
        teacher.checkpoint()
    finally:
        teacher.env.close()
        teacher.tracker.close()
    vision_checkpoint(tmp_path / "vision.pt", task="hand-block")
    student_cfg = load_config(TrainPolicyConfig, "configs/policy/hand-student-bc.yaml", tiny + [
        "lstm_hidden=32", "image_size=32", "vision_head_hidden=32", "feature_epochs=1", "env_workers=2",
        f"init_vision={json.dumps(str(tmp_path / 'vision.pt'))}",
        f"teacher={json.dumps(str(tmp_path / 't' / 'checkpoint.pt'))}", f"out={json.dumps(str(tmp_path / 's'))}"])
    student = PolicyTrainer(student_cfg)
    try:
        assert student.env_workers == 2 and student.model.cfg.action_dist == "gaussian"
        metrics = student.iterate()
        assert metrics["charts/phase_is_bc"] == 1.0 and np.isfinite(metrics["losses/kl"])
        assert student.collector.obs["images"].shape == (4, 3, 3, 32, 32)
        assert student.collector.obs["images"].float().std() > 0  # rendered, not blank
    finally:
        student.env.close()
        student.tracker.close()


@pytest.mark.parametrize("render_workers", [0, 1])
def test_student_images_are_the_dataset_renderers_for_the_same_state_and_draw(render_workers):
    """What a pixel student sees is what render-shards would write for the same state and randomization
    draw: the same Renderer (reference geometry and look), in this process or in a render worker."""
    from dexvision.render.renderer import RenderConfig, Renderer  # noqa: PLC0415
    from dexvision.sim.scenes import load_scene  # noqa: PLC0415

    cfg = EnvConfig(task="hand-block", render=RenderConfig(image_size=32))
    env = BlockReorientEnv(cfg, 2, obs="pixels", render_workers=render_workers)
    try:
        obs, _ = env.reset(seed=2)
        renderer = Renderer(load_scene("hand-block"), cfg.render)
        for i in range(2):
            expected = np.stack(renderer.render(env.datas[i].qpos.copy(), env.render_params[i])).transpose(0, 3, 1, 2)
            assert np.array_equal(obs["images"][i], expected)
        assert not np.array_equal(obs["images"][0], obs["images"][1])  # two episodes, two draws
    finally:
        env.close()


def test_trainers_count_denormal_floats_as_zero(tmp_path):
    """Denormals slowed a random-init student's updates 3x (Adam's moments filled with them): every
    trainer's scaffold turns on flush-to-zero, so arithmetic below float32's normal range gives 0."""
    from dexvision.trainer import Scaffold  # noqa: PLC0415

    torch.set_flush_denormal(False)
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    assert (tiny * 1.0).item() != 0.0
    Scaffold(tmp_path / "run")
    assert (tiny * 1.0).item() == 0.0
    assert (torch.tensor([1e-30]) * 1.0).item() == pytest.approx(1e-30)  # normal numbers are untouched


def test_the_goal_in_the_hands_frame_turns_the_block_onto_its_goal(tmp_path):
    obs = {}
    for frame in ("block", "hand"):
        env = BlockReorientEnv(EnvConfig(task="hand-block", obs_noise=0.0, goal_frame=frame), 2)
        obs[frame], _ = env.reset(seed=3)
        _, quat = env._poses()
        goal = env.goal.copy()
    block_rot = obs["hand"]["block_rot"].reshape(2, 3, 3)
    for i in range(2):
        hand, own = obs["hand"]["relative_rotvec"][i], obs["block"]["relative_rotvec"][i]
        # the same rotation, stated in the hand's frame: the block's frame rotated by the block's orientation
        np.testing.assert_allclose(hand, block_rot[i] @ own, atol=1e-5)
        # applied in the hand's frame (on the left), it takes the block onto its goal
        angle = np.linalg.norm(hand)
        turn = axis_angle_to_quat(hand / angle, angle)
        assert quat_angle(quat_multiply(turn, quat[i]), goal[i]) < 1e-4
        assert angle == pytest.approx(quat_angle(quat[i], goal[i]), abs=1e-5)
    with pytest.raises(ValueError, match="goal_frame must be one of block, hand"):
        EnvConfig(goal_frame="palm")


@pytest.mark.parametrize("field", ["goal_frame=hand", "fingertips=true"])
def test_a_teacher_whose_state_inputs_differ_is_refused(tmp_path, capsys, field):
    cfg = tiny_continuous(tmp_path / "teacher", "task=hand-block", f"env.{field}", "env_workers=1")
    trainer = PolicyTrainer(cfg)
    try:
        trainer.checkpoint()
    finally:
        trainer.env.close()
        trainer.tracker.close()
    name, value = field.split("=")
    code = train_cli.main(["--task", "hand-block", "--obs", "pixels", "--algo", "bc", "--teacher",
                           str(tmp_path / "teacher" / "checkpoint.pt"), "--out", str(tmp_path / "student"),
                           *[a for s in FAST for a in ("--set", s)]])
    assert code == 2
    one_error_line(capsys.readouterr().err, f"was trained with env.{name}={'True' if value == 'true' else value}")
