"""dexvision.policy: GAE, the embed-and-add model, PPO and BC iterations, the commands (the environments:
test_policy_envs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, one_error_line, vision_checkpoint
from dexvision.config import load_config
from dexvision.policy import evaluate as evaluate_cli
from dexvision.policy import train as train_cli
from dexvision.policy.checkpoint import env_config_of, load_for_resume, load_policy_checkpoint, save_policy
from dexvision.policy.evaluate import evaluate_checkpoint
from dexvision.policy.loop import EpisodeStats
from dexvision.policy.model import ActorCritic, PolicyConfig
from dexvision.policy.ppo import NoiseScale, bc_loss, compute_gae
from dexvision.policy.train import PolicyTrainer, TrainPolicyConfig
from dexvision.sim.rotations import axis_angle_to_quat, quat_to_rotvec


def tiny_config(**overrides) -> TrainPolicyConfig:
    sets = ["num_envs=4", "minibatches=2", "rollout=10", "lstm_hidden=32", "embed_dim=32", "eval_episodes=2",
            "env.max_successes=2", "env.goal_timeout=5", "image_size=32", "vision_head_hidden=32",
            "render_workers=0"]
    return load_config(TrainPolicyConfig, None, sets + [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


# -- math -----------------------------------------------------------------------------------
def test_gae_hand_computed():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the first episode ends with step 1
    adv, ret = compute_gae(rewards, values, dones, torch.tensor([2.0]), gamma=0.9, lam=0.8)
    # t=2: 3 + 0.9*2 - 1.5 = 3.3;  t=1: 2 - 1 = 1 (no bootstrap);  t=0: 1 + 0.9*1 - 0.5 + 0.9*0.8*1 = 2.12
    assert torch.allclose(adv[:, 0], torch.tensor([2.12, 1.0, 3.3]))
    assert torch.allclose(ret[:, 0], torch.tensor([2.62, 2.0, 4.8]))


def test_episode_stats_count_successes_returns_and_drops_of_finished_episodes():
    stats = EpisodeStats(window=3)
    done = np.array([True, False, True])
    for dropped in ([True, False, False], [False, False, False]):
        stats.add({"done_mask": done, "episode_successes": np.array([2, 9, 4]), "episode_return": np.array([1.0, 9, 3]),
                   "dropped": np.array(dropped)})
    m = stats.metrics()  # the last 3 finished episodes: (4, no drop), (2, no drop), (4, no drop); one drop fell out
    assert m["charts/episodes"] == 4 and m["charts/drop_rate"] == 0.0
    assert m["charts/successes_per_episode"] == pytest.approx(10 / 3) and m["charts/median_successes"] == 4
    assert stats.take_finished() == [2, 4, 2, 4] and stats.take_finished() == []


def test_noise_scale_recovers_a_known_ratio():
    g2, trace = 4.0, 800.0  # |G|^2 and tr(Sigma): B_simple = 200
    noise = NoiseScale()
    value = noise.update(g2 + trace / 64, g2 + trace / 256, 64, 256)
    assert value == pytest.approx(200.0)


def test_reward_scaler_brings_discounted_returns_to_unit_scale():
    from dexvision.policy.ppo import RewardScaler

    gen = torch.Generator().manual_seed(0)
    scaler = RewardScaler(num_envs=8, gamma=0.9)
    rewards = 30.0 + 10.0 * torch.randn(400, 8, generator=gen)
    dones = torch.zeros(400, 8)
    dones[199] = 1.0
    scaled = scaler(rewards, dones)
    returns, ret = [], torch.zeros(8)
    for t in range(400):
        ret = ret * 0.9 + scaled[t]
        returns.append(ret.clone())
        ret = ret * (1 - dones[t])
    assert 0.5 < torch.stack(returns).std() < 1.5  # raw discounted returns: ~300
    state = scaler.state_dict()
    other = RewardScaler(8, 0.9)
    other.load_state_dict(state)
    assert other.var == scaler.var


def test_rotvec_of_a_known_rotation():
    q = axis_angle_to_quat(np.array([0.0, 0.0, 1.0]), 0.7)
    assert np.allclose(quat_to_rotvec(q), [0.0, 0.0, 0.7])
    assert np.allclose(quat_to_rotvec(np.array([1.0, 0, 0, 0])), 0.0)


# -- model ----------------------------------------------------------------------------------
def _model(shared: bool) -> ActorCritic:
    torch.manual_seed(0)
    cfg = PolicyConfig(policy_inputs={"a": 3, "b": 4}, value_inputs={"a": 3, "b": 4, "c": 5}, num_actions=2,
                       action_bins=5, embed_dim=16, lstm_hidden=8, shared_embeddings=shared)
    return ActorCritic(cfg)


def test_embed_and_add_with_shared_and_separate_embeddings():
    shared, separate = _model(True), _model(False)
    assert shared.value_embedding.layers["a"] is shared.policy_embedding.layers["a"]
    # the state input only the value network sees gets its own mapping, shared or not
    assert "c" not in shared.policy_embedding.layers and shared.value_embedding.layers["c"].in_features == 5
    assert separate.value_embedding.layers["a"] is not separate.policy_embedding.layers["a"]
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    assert n_separate - n_shared == (16 * 3 + 16) + (16 * 4 + 16)  # the value network's own a and b
    obs = {"a": torch.randn(5, 6, 3), "b": torch.randn(5, 6, 4), "c": torch.randn(5, 6, 5)}
    starts = torch.zeros(5, 6)
    for model in (shared, separate):
        logits, values, state = model(obs, model.initial_state(6), starts)
        assert logits.shape == (5, 6, 2, 5) and values.shape == (5, 6) and state.shape == (4, 6, 8)
        # the value loss reaches the policy's embedding only when it is shared
        model.zero_grad()
        values.sum().backward()
        grad = model.policy_embedding.layers["a"].weight.grad
        reached = grad is not None and grad.abs().sum() > 0
        assert reached == model.cfg.shared_embeddings


def test_a_calm_start_favours_the_middle_bin():
    model = _model(False)
    obs = {"a": torch.randn(5, 6, 3), "b": torch.randn(5, 6, 4), "c": torch.randn(5, 6, 5)}
    uniform = torch.softmax(model(obs, model.initial_state(6), torch.zeros(5, 6))[0], -1)
    assert torch.allclose(uniform, torch.full_like(uniform, 0.2), atol=0.02)
    model.favour_middle_bin(0.6)
    probs = torch.softmax(model(obs, model.initial_state(6), torch.zeros(5, 6))[0], -1)
    assert torch.allclose(probs[..., 2], torch.tensor(0.6), atol=0.02)  # 5 bins: the middle is bin 2
    assert torch.allclose(probs[..., [0, 1, 3, 4]], torch.tensor(0.1), atol=0.02)
    with pytest.raises(ValueError, match="init_hold_prob must be in"):
        TrainPolicyConfig(init_hold_prob=1.0)


def test_lstm_state_is_reset_at_episode_starts():
    model = _model(False)
    obs = {k: torch.randn(1, 3, n) for k, n in {"a": 3, "b": 4, "c": 5}.items()}
    warm = torch.randn(4, 3, 8)
    fresh, _, _ = model(obs, model.initial_state(3), torch.zeros(1, 3))
    reset, _, _ = model(obs, warm, torch.ones(1, 3))
    carried, _, _ = model(obs, warm, torch.zeros(1, 3))
    assert torch.allclose(fresh, reset) and not torch.allclose(fresh, carried)


@pytest.mark.parametrize("kwargs, message", [
    ({"task": "hand-block"}, "was trained on hand-block renders; this policy's task is gimbal-block"),
    ({"cameras": 2}, "was trained on 2 cameras; the environment renders 3"),
    ({"size": 64}, "was trained on 64 px images; the environment renders 32 px (set --image-size 64)"),
    ({"size": 64, "task": None}, "was trained on 64 px images"),
])
def test_a_vision_checkpoint_for_other_images_is_refused(teacher, tmp_path, capsys, kwargs, message):
    vision_checkpoint(tmp_path / "vision.pt", **kwargs)
    code = train_cli.main(["--obs", "pixels", "--algo", "bc", "--teacher", str(teacher), "--init-vision",
                           str(tmp_path / "vision.pt"), "--image-size", "32", "--out", str(tmp_path / "run"), *TINY])
    assert code == 2
    one_error_line(capsys.readouterr().err, message)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_vision_sub_model_receives_the_encoders_weights(tmp_path):
    pose = vision_checkpoint(tmp_path / "vision.pt")
    trainer = PolicyTrainer(tiny_config(obs="pixels", init_vision=str(tmp_path / "vision.pt"),
                                        out=str(tmp_path / "run")))
    try:
        sub = trainer.model.vision.pose_net.state_dict()
        expected = {k: v for k, v in pose.state_dict().items() if not k.startswith("head.2.")}
        assert set(sub) == set(expected)  # everything up to the penultimate layer, nothing else
        for name, tensor in expected.items():
            assert torch.equal(sub[name], tensor), name
        images = torch.randint(0, 255, (2, 3, 3, 32, 32), dtype=torch.uint8)
        with torch.no_grad():
            hidden = pose.head[1](pose.head[0](pose.features(images)))
            assert torch.allclose(trainer.model.vision(images), hidden)
    finally:
        trainer.env.close()
        trainer.tracker.close()


def test_a_keypoint_heads_encoder_starts_a_student(tmp_path):
    """--init-vision from a keypoint checkpoint: the sub-model is the encoder and the keypoint head's hidden layer,
    each camera's side by side, and the student trains on it."""
    pose = vision_checkpoint(tmp_path / "vision.pt", head="keypoints")
    trainer = PolicyTrainer(tiny_config(obs="pixels", init_vision=str(tmp_path / "vision.pt"),
                                        out=str(tmp_path / "run")))
    try:
        images = torch.randint(0, 255, (2, 3, 3, 32, 32), dtype=torch.uint8)
        with torch.no_grad():
            per_camera = pose.head[1](pose.head[0](pose.features(images).view(2, 3, -1)))  # (2, 3 cameras, 32)
            assert torch.allclose(trainer.model.vision(images), per_camera.flatten(1))
        assert trainer.model.vision.num_features == 3 * 32
        before = _params(trainer.model)
        trainer.iterate()
        after = trainer.model.state_dict()
        assert not torch.equal(before["policy_head.weight"], after["policy_head.weight"])
        assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    finally:
        trainer.env.close()
        trainer.tracker.close()


# -- training -------------------------------------------------------------------------------
def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed_and_finite(before: dict, model) -> None:
    after = model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "policy_head.weight" in changed and "policy_lstm.weight_ih" in changed


def test_one_ppo_iteration_changes_the_parameters(tmp_path):
    trainer = PolicyTrainer(tiny_config(out=str(tmp_path / "ppo")))
    before = _params(trainer.model)
    metrics = trainer.iterate()
    _changed_and_finite(before, trainer.model)
    assert trainer.frames == 40 and metrics["charts/optimizer_steps"] == 4  # 2 epochs x 2 minibatches
    assert all(np.isfinite(v) for v in metrics.values())
    trainer.tracker.close()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    assert train_cli.main(["--steps", "80", "--out", str(out), *TINY]) == 0
    return out / "checkpoint.pt"


def test_train_policy_writes_a_checkpoint_and_metrics(teacher):
    ckpt = load_policy_checkpoint(teacher)
    assert ckpt["task"] == "gimbal-block" and ckpt["obs"] == "state" and ckpt["frames"] == 80
    result = json.loads((teacher.parent / "metrics.json").read_text())
    assert result["frames"] == 80 and result["evaluation"]["episodes"] == 2
    shares = result["time_shares"]  # a state policy: no encoder
    assert set(shares) == {"collect", "env", "update"} and 0 < shares["env"] < shares["collect"] < 1
    lines = [json.loads(x) for x in (teacher.parent / "metrics.jsonl").read_text().splitlines()]
    trained = [x for x in lines if "losses/policy" in x]
    assert trained and all({"losses/value", "losses/entropy", "charts/mean_reward"} <= set(x) for x in trained)
    assert all("perf/env_fraction" in x and "perf/vision_fraction" not in x for x in trained)
    assert "eval/median_successes" in lines[-1] and lines[-1]["step"] == 80


def test_one_bc_iteration_from_pixels_changes_the_parameters(teacher, tmp_path):
    vision_checkpoint(tmp_path / "vision.pt")
    trainer = PolicyTrainer(tiny_config(obs="pixels", algo="bc", teacher=str(teacher),
                                        init_vision=str(tmp_path / "vision.pt"), out=str(tmp_path / "bc")))
    try:
        before = _params(trainer.model)
        metrics = trainer.iterate()
        _changed_and_finite(before, trainer.model)
        assert metrics["charts/phase_is_bc"] == 1.0 and metrics["losses/kl"] > 0
        changed_vision = [k for k in before if k.startswith("vision.") and not torch.equal(
            before[k], trainer.model.state_dict()[k])]
        assert changed_vision  # cloning trains the vision sub-model too
        # where the iteration's time went: stepping (and rendering) plus the encoder fit inside collection
        shares = metrics["perf/env_fraction"], metrics["perf/vision_fraction"]
        assert all(0 < s < 1 for s in shares) and sum(shares) < metrics["perf/collect_fraction"] < 1
        assert trainer.time_shares()["vision"] == pytest.approx(metrics["perf/vision_fraction"])
    finally:
        trainer.env.close()
        trainer.tracker.close()


def test_cloning_replays_earlier_rollouts_in_its_feature_epochs(teacher, tmp_path, monkeypatch):
    """bc_replay: the feature epochs draw from the newest rollout and the ones kept before it (features and
    teacher labels, no images); the end-to-end epochs see the newest alone; optimizer steps are unchanged."""
    vision_checkpoint(tmp_path / "vision.pt")
    trainer = PolicyTrainer(tiny_config(obs="pixels", algo="bc", teacher=str(teacher), feature_epochs=10,
                                        bc_replay=3, init_vision=str(tmp_path / "vision.pt"), out=str(tmp_path / "r")))
    try:
        kept = []
        for _ in range(3):
            metrics = trainer.iterate()
            kept.append(len(trainer.replay))
            assert metrics["charts/optimizer_steps"] / trainer.iteration == 24  # (2 + 10 epochs) x 2 minibatches
        assert kept == [1, 2, 2]  # the newest plus 2 earlier ones
        assert all("images" not in r.obs and "vision" in r.obs for r in trainer.replay)
        oldest = trainer.replay[-1]
        oldest.teacher_values.fill_(1234.0)  # marks the oldest rollout's environments
        oldest.obs["goal"].fill_(1234.0)  # ... in an observation too: labels and inputs must stay paired
        seen = []

        def recording_loss(logits, values, batch, cfg, dist_fn):
            marked_label = batch["teacher_values"] == 1234.0
            marked_input = (batch["obs"]["goal"] == 1234.0).all(-1)
            assert torch.equal(marked_label, marked_input)
            seen.append(("images" in batch["obs"], bool(marked_label.any())))
            return bc_loss(logits, values, batch, cfg, dist_fn=dist_fn)

        monkeypatch.setattr(train_cli, "bc_loss", recording_loss)
        trainer.iterate()
        assert len(seen) == 24
        end_to_end, cached = seen[:4], seen[4:]
        assert all(images and not replayed for images, replayed in end_to_end)
        assert not any(images for images, _ in cached) and any(replayed for _, replayed in cached)
    finally:
        trainer.env.close()
        trainer.tracker.close()


def test_epochs_zero_keeps_the_vision_sub_model_frozen(teacher, tmp_path):
    """epochs 0: only the feature epochs train; the pretrained vision weights stay exactly as loaded."""
    vision_checkpoint(tmp_path / "vision.pt")
    trainer = PolicyTrainer(tiny_config(obs="pixels", algo="bc", teacher=str(teacher), epochs=0, feature_epochs=3,
                                        init_vision=str(tmp_path / "vision.pt"), out=str(tmp_path / "f")))
    try:
        vision = {k: v.clone() for k, v in trainer.model.vision.state_dict().items()}
        rest = {k: v.clone() for k, v in trainer.model.state_dict().items() if not k.startswith("vision.")}
        metrics = trainer.iterate()
        assert metrics["charts/optimizer_steps"] == 6  # 3 feature epochs x 2 minibatches, none end to end
        after = trainer.model.state_dict()
        assert all(torch.equal(v, after["vision." + k]) for k, v in vision.items())
        assert any(not torch.equal(v, after[k]) for k, v in rest.items() if v.is_floating_point())
    finally:
        trainer.env.close()
        trainer.tracker.close()


PIXEL_BC = ["--obs", "pixels", "--algo", "bc", "--teacher", "t.pt"]


@pytest.mark.parametrize("sets, message", [
    ([*TINY, "--set", "bc_replay=4"], "bc_replay needs behavioural cloning from pixels"),
    ([*PIXEL_BC, "--set", "bc_replay=4"], "bc_replay needs behavioural cloning from pixels"),  # no feature epochs
    ([*TINY, "--set", "epochs=0"], "epochs 0 (a frozen vision sub-model) needs pixel observations"),
    ([*PIXEL_BC, "--set", "epochs=0"], "epochs 0 (a frozen vision sub-model) needs pixel observations"),
    ([*PIXEL_BC, "--set", "epochs=0", "--set", "feature_epochs=2"],
     "epochs 0 keeps the vision sub-model frozen: it needs --init-vision"),
])
def test_cloning_options_are_refused_where_they_cannot_apply(tmp_path, capsys, sets, message):
    code = train_cli.main(["--steps", "40", "--out", str(tmp_path / "x"), *sets])
    assert code == 2
    one_error_line(capsys.readouterr().err, message)
    assert not (tmp_path / "x").exists()


def test_bc_then_ppo_switches_phase(teacher, tmp_path):
    trainer = PolicyTrainer(tiny_config(algo="bc+ppo", teacher=str(teacher), steps=80, out=str(tmp_path / "bp")))
    phases = [trainer.iterate()["charts/phase_is_bc"] for _ in range(2)]
    assert phases == [1.0, 0.0]
    trainer.tracker.close()


def test_resume_continues_with_the_runs_own_config(teacher, tmp_path):
    out = tmp_path / "resumed"
    assert train_cli.main(["--steps", "40", "--out", str(out), *TINY]) == 0
    # only --steps is given again: the tiny settings come from the checkpoint
    assert train_cli.main(["--steps", "120", "--out", str(out), "--resume"]) == 0
    ckpt = load_policy_checkpoint(out / "checkpoint.pt")
    assert ckpt["frames"] == 120 and ckpt["config"]["num_envs"] == 4 and ckpt["config"]["steps"] == 120
    frames = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert frames == sorted(frames) and frames[-1] == 120  # nothing logged twice


def test_sequences_start_from_the_lstm_state_they_were_collected_with(tmp_path):
    """Re-running the model over a minibatch's chunks reproduces the log-probabilities of collection."""
    from dexvision.policy.ppo import minibatch

    trainer = PolicyTrainer(tiny_config(out=str(tmp_path / "seq"), rollout=20, chunk=5))
    trainer.collector.collect(trainer.stats)  # a first rollout: the LSTM state is no longer zero
    rollout, _ = trainer.collector.collect(trainer.stats)
    batch = minibatch(rollout, {}, torch.tensor([2, 0]), 5)
    with torch.no_grad():
        logits, values, _ = trainer.model(batch["obs"], batch["state"], batch["starts"])
    logprob = torch.distributions.Categorical(logits=logits).log_prob(batch["actions"]).sum(-1)
    assert torch.allclose(logprob, batch["logprobs"], atol=1e-5)
    trainer.tracker.close()


def test_evaluate_policy_prints_and_writes_the_summary(teacher, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate_cli.main(["--checkpoint", str(teacher), "--episodes", "3", "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["episodes"] == 3 and len(summary["successes"]) == 3
    assert summary["median_successes"] == float(np.median(summary["successes"]))
    assert "median" in capsys.readouterr().out


def test_bad_inputs_end_in_one_line(teacher, tmp_path, capsys):
    other_task = tmp_path / "hand-teacher.pt"
    save_policy(other_task, {"task": "hand-block", "obs": "state"})
    code = train_cli.main(["--obs", "pixels", "--algo", "bc", "--teacher", str(other_task), "--out",
                           str(tmp_path / "a"), *TINY])
    assert code == 2
    one_error_line(capsys.readouterr().err, "is a hand-block policy, not a gimbal-block one")
    code = train_cli.main(["--obs", "pixels", "--algo", "bc", "--teacher", str(teacher), "--init-vision",
                           str(teacher), "--out", str(tmp_path / "b"), *TINY])
    assert code == 2
    one_error_line(capsys.readouterr().err, "is a dexvision-policy checkpoint, not a dexvision-vision checkpoint")
    code = train_cli.main(["--algo", "bc", "--teacher", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "c"),
                           *TINY])
    assert code == 2
    one_error_line(capsys.readouterr().err, "checkpoint not found")
    assert train_cli.main(["--steps", "lots", "--out", str(tmp_path / "d")]) == 2
    one_error_line(capsys.readouterr().err, "--steps must be a positive count")
    assert train_cli.main(["--algo", "bc", "--out", str(tmp_path / "e")]) == 2
    one_error_line(capsys.readouterr().err, "needs --teacher")


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "ddp"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "dexvision.policy.train",
                          "--steps", "160", "--out", str(out), *TINY], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((out / "metrics.json").read_text())
    assert result["world_size"] == 2 and result["frames"] == 160  # 2 ranks x 4 envs x 10 steps x 2 iterations


def test_hand_teacher_iteration_records_the_physics_profile(tmp_path):
    cfg = load_config(TrainPolicyConfig, "configs/policy/hand-teacher-ppo.yaml",
                      ["num_envs=4", "minibatches=2", "rollout=8", "embed_dim=32", "mlp_hidden=[32]", "env_workers=2",
                       f"out={json.dumps(str(tmp_path / 'hand'))}", "eval_episodes=2", "env.goal_timeout=5"])
    trainer = PolicyTrainer(cfg)
    try:
        assert trainer.env_workers == 2 and trainer.env.substeps == 4  # 40 ms of 10 ms steps
        metrics = trainer.iterate()
        assert metrics["charts/goal_max_angle"] == pytest.approx(0.6)
        trainer.checkpoint()
    finally:
        trainer.env.close()
        trainer.tracker.close()
    ckpt = load_policy_checkpoint(tmp_path / "hand" / "checkpoint.pt")
    assert ckpt["physics"] == "fast" and ckpt["env_config"]["physics"] == "fast"
    assert ckpt["curriculum"]["max_angle"] == pytest.approx(0.6)
    # evaluate-policy runs it on the full task under the reference physics
    summary = evaluate_checkpoint(tmp_path / "hand" / "checkpoint.pt", 2, physics="reference", progress=False)
    assert summary["physics"] == "reference" and summary["trained_physics"] == "fast" and summary["episodes"] == 2


def test_hand_inputs_are_checked_before_workers_start(teacher, tmp_path, capsys):
    assert train_cli.main(["--env-workers", "0", "--out", str(tmp_path / "a"), *TINY]) == 2
    one_error_line(capsys.readouterr().err, "--env-workers must be >= 1")
    assert train_cli.main(["--physics", "nonsense", "--out", str(tmp_path / "b"), *TINY]) == 2
    one_error_line(capsys.readouterr().err, "unknown physics profile 'nonsense'")
    assert evaluate_cli.main(["--checkpoint", str(teacher), "--physics", "nonsense"]) == 2
    one_error_line(capsys.readouterr().err, "unknown physics profile 'nonsense' (valid: reference, fast)")
    assert evaluate_cli.main(["--checkpoint", str(teacher), "--env-workers", "0"]) == 2
    one_error_line(capsys.readouterr().err, "--env-workers must be >= 1")
    code = train_cli.main(["--task", "hand-block", "--algo", "bc", "--teacher", str(teacher), "--out",
                           str(tmp_path / "c"), *TINY])
    assert code == 2
    one_error_line(capsys.readouterr().err, "is a gimbal-block policy, not a hand-block one")


def test_a_seeded_run_repeats_itself_on_cpu(tmp_path):
    def one_iteration(seed: int, name: str) -> dict:
        trainer = PolicyTrainer(tiny_config(seed=seed, out=str(tmp_path / name)))
        try:
            trainer.iterate()
            return _params(trainer.model)
        finally:
            trainer.env.close()
            trainer.tracker.close()

    a, b, c = one_iteration(5, "a"), one_iteration(5, "b"), one_iteration(6, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_importing_the_packages_leaves_the_environment_alone():
    code = ("import os\n"
            "before = dict(os.environ)\n"
            "import dexvision.render, dexvision.render.renderer, dexvision.datasets.render_shards\n"
            "import dexvision.policy.train, dexvision.vision.train\n"
            "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYOPENGL_PLATFORM", "MUJOCO_GL")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_checkpoints_from_before_physics_profiles_resume_on_the_reference_physics(tmp_path):
    old = tmp_path / "old.pt"
    env = {"task": "gimbal-block", "substeps": 20, "action_bins": 11}
    save_policy(old, {"task": "gimbal-block", "obs": "state", "env_config": env,
                      "config": {"task": "gimbal-block", "env": env}})
    assert load_for_resume(old)["config"]["env"] == {"task": "gimbal-block", "control_period": 0.04,
                                                      "physics": "reference", "action_bins": 11}
    cfg = env_config_of(load_policy_checkpoint(old))
    assert cfg.physics == "reference" and cfg.control_period == pytest.approx(0.04)


def test_a_teacher_whose_actions_mean_something_else_is_refused(teacher, tmp_path, capsys):
    code = train_cli.main(["--algo", "bc", "--teacher", str(teacher), "--set", "env.action_mode=relative",
                           "--out", str(tmp_path / "bc"), *TINY])
    assert code == 2
    one_error_line(capsys.readouterr().err, "was trained with env.action_mode=absolute; this run has relative")


def test_lstm_over_a_chunk_equals_stepping_the_cells_with_episode_resets():
    """The fused LSTM runs over the stretches between episode starts: the same outputs and final state as
    stepping each LSTMCell, clearing an environment's state where its episode starts."""
    torch.manual_seed(0)
    model = ActorCritic(PolicyConfig(policy_inputs={"a": 5}, value_inputs={"a": 5, "b": 3}, num_actions=4,
                                     embed_dim=16, lstm_hidden=8))
    steps, envs = 12, 3
    pi_x, v_x, state = torch.randn(steps, envs, 16), torch.randn(steps, envs, 16), torch.randn(4, envs, 8)
    starts = torch.zeros(steps, envs, dtype=torch.bool)
    starts[0, 1] = starts[4, 0] = starts[9, 2] = starts[9, 0] = starts[11, 1] = True
    ph, pc, vh, vc = state
    pi_ref, v_ref = [], []
    for t in range(steps):
        keep = (1.0 - starts[t].float()).unsqueeze(-1)
        ph, pc = model.policy_lstm(pi_x[t], (ph * keep, pc * keep))
        vh, vc = model.value_lstm(v_x[t], (vh * keep, vc * keep))
        pi_ref.append(ph)
        v_ref.append(vh)
    pi_out, v_out, final = model._run_lstm(pi_x, v_x, state, starts)
    torch.testing.assert_close(pi_out, torch.stack(pi_ref), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(v_out, torch.stack(v_ref), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(final, torch.stack([ph, pc, vh, vc]), atol=1e-6, rtol=1e-5)
    one = model._run_lstm(pi_x[:1], v_x[:1], state, starts[:1])  # one step, as collection runs it
    torch.testing.assert_close(one[0][0], pi_out[0])
