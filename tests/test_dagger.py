"""Distilling the planner by DAgger (train-policy --algo dagger): the aggregate grows, survives --resume, and
the distilled checkpoint is an ordinary state teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import one_error_line
from dexvision.policy import evaluate, train

# a gimbal-block distillation that takes seconds: 2 environments, 8 steps a rollout, a planner of 8 samples
TINY_DAGGER = ["--task", "gimbal-block", "--algo", "dagger", "--planner", "configs/planner/gimbal.yaml",
               "--set", "core=mlp", "--set", "env.action_type=continuous", "--set", "num_envs=2", "--set", "rollout=8",
               "--set", "dagger.updates=4", "--set", "dagger.batch_size=16", "--set", "dagger.mix_frames=16",
               "--set", "eval_episodes=1", "--set", "env.max_successes=2", "--set", "env.goal_timeout=10",
               "--set", "checkpoint_every=1", "--set", "mlp_hidden=[32]", "--set", "embed_dim=32"]


@pytest.fixture(scope="module")
def dagger_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("dagger") / "run"
    assert train.main([*TINY_DAGGER, "--steps", "32", "--out", str(run)]) == 0
    return run


def test_the_aggregate_survives_resume(dagger_run):
    first = np.load(dagger_run / "aggregate.npz")
    labels = first["labels"].copy()
    assert labels.shape == (32, 3) and np.abs(labels).max() <= 1.0
    assert train.main(["--out", str(dagger_run), "--resume", "--steps", "48"]) == 0
    after = np.load(dagger_run / "aggregate.npz")
    assert after["labels"].shape == (48, 3)
    np.testing.assert_array_equal(after["labels"][:32], labels)  # the labels before the interruption are kept


def test_a_distilled_checkpoint_is_a_teacher(dagger_run, tmp_path):
    ckpt = str(dagger_run / "checkpoint.pt")
    assert evaluate.main(["--checkpoint", ckpt, "--episodes", "1"]) == 0
    student = ["--task", "gimbal-block", "--algo", "bc", "--teacher", ckpt, "--steps", "40", "--out",
               str(tmp_path / "student"), "--set", "env.action_type=continuous", "--set", "num_envs=4",
               "--set", "minibatches=2", "--set", "rollout=10", "--set", "lstm_hidden=32", "--set", "embed_dim=32",
               "--set", "eval_episodes=1", "--set", "env.max_successes=2", "--set", "env.goal_timeout=5"]
    assert train.main(student) == 0


def test_a_discrete_distillation_learns_the_labels_bins(tmp_path):
    """With discrete actions the network learns the labels' bins by cross-entropy (its greedy action is their
    most frequent bin; 4x chance here), and its checkpoint is a discrete teacher like a PPO one."""
    from dexvision.planning.planner import command_bins  # noqa: PLC0415
    from dexvision.policy.checkpoint import load_policy_checkpoint  # noqa: PLC0415
    from dexvision.policy.model import ActorCritic, PolicyConfig  # noqa: PLC0415

    run = tmp_path / "run"
    i = TINY_DAGGER.index("env.action_type=continuous")
    tiny = TINY_DAGGER[:i - 1] + TINY_DAGGER[i + 1:]  # the gimbal's own discrete actions
    assert train.main([*tiny, "--steps", "32", "--set", "dagger.updates=100", "--set", "lr=0.003",
                       "--out", str(run)]) == 0
    ckpt = load_policy_checkpoint(run / "checkpoint.pt")
    cfg = PolicyConfig(**ckpt["policy_config"])
    assert cfg.action_dist == "categorical" and cfg.action_bins == 11
    model = ActorCritic(cfg)
    model.load_state_dict(ckpt["model"])
    data = np.load(run / "aggregate.npz")
    obs = {k: torch.from_numpy(data[f"obs_{k}"]) for k in cfg.policy_inputs}
    with torch.no_grad():
        greedy = model.policy_params(obs).argmax(-1).numpy()
    bins = command_bins(data["labels"], 11)
    agree = (greedy == bins).mean()
    # against a network that plays each actuator's most frequent label bin whatever the state
    constant = np.mean([np.bincount(b, minlength=11).max() / len(b) for b in bins.T])
    assert agree > constant + 0.1, f"greedy bins match {agree:.0%} of the labels' (a constant: {constant:.0%})"
    student = ["--task", "gimbal-block", "--algo", "bc", "--teacher", str(run / "checkpoint.pt"), "--steps", "40",
               "--out", str(tmp_path / "student"), "--set", "num_envs=4", "--set", "minibatches=2", "--set",
               "rollout=10", "--set", "lstm_hidden=32", "--set", "embed_dim=32", "--set", "eval_episodes=1",
               "--set", "env.max_successes=2", "--set", "env.goal_timeout=5"]
    assert train.main(student) == 0  # a discrete state teacher, as a PPO one is


def test_command_bins_play_the_nearest_bin_of_the_command():
    from dexvision.envs.task import BlockReorientEnv, EnvConfig  # noqa: PLC0415
    from dexvision.planning.planner import command_bins  # noqa: PLC0415

    continuous = BlockReorientEnv(EnvConfig(task="gimbal-block", action_type="continuous"), 2)
    discrete = BlockReorientEnv(EnvConfig(task="gimbal-block"), 2)
    commands = np.random.default_rng(0).uniform(-1.2, 1.2, (2, continuous.nu))
    continuous.reset(seed=0)
    discrete.reset(seed=0)
    continuous.step(commands)
    discrete.step(command_bins(commands, discrete.cfg.action_bins))
    half_bin = (continuous._ctrl_span / (discrete.cfg.action_bins - 1)) / 2
    assert (np.abs(continuous.targets - discrete.targets) <= half_bin + 1e-9).all()
    continuous.close()
    discrete.close()


def test_a_guided_distillation_labels_refinements_of_the_networks_actions(tmp_path, monkeypatch):
    """dagger.guide: every label is the planner's refinement of the network's greedy action (the planner gets it
    as its guide), and dagger.window trains on the newest labels only."""
    from dexvision.planning.planner import Planner  # noqa: PLC0415
    from dexvision.policy.dagger import Aggregate  # noqa: PLC0415

    guides = []
    act = Planner.act

    def recording(self, env=None, guide=None):
        guides.append(guide)
        return act(self, env, guide)

    monkeypatch.setattr(Planner, "act", recording)
    assert train.main([*TINY_DAGGER, "--steps", "16", "--set", "dagger.guide=true", "--set", "dagger.window=8",
                       "--out", str(tmp_path / "run")]) == 0
    assert len(guides) == 8 and all(g is not None and g.shape == (2, 3) and np.abs(g).max() <= 1.0 for g in guides)

    aggregate = Aggregate({"x": 1}, 1)
    aggregate.add({"x": np.arange(10.0)[:, None]}, np.arange(10.0)[:, None])
    obs, labels = aggregate.sample(200, np.random.default_rng(0), window=3)
    assert set(labels[:, 0]) == {7.0, 8.0, 9.0} and np.array_equal(obs["x"], labels)


def test_resume_without_its_aggregate_is_refused(dagger_run, tmp_path, capsys):
    import shutil  # noqa: PLC0415

    copy = tmp_path / "copy"
    shutil.copytree(dagger_run, copy)
    (copy / "aggregate.npz").unlink()
    assert train.main(["--out", str(copy), "--resume", "--steps", "64"]) == 2
    one_error_line(capsys.readouterr().err, "aggregate.npz is missing")


@pytest.mark.parametrize("sets, expected", [
    (["--algo", "dagger"], "--algo dagger needs --planner"),
    (["--algo", "ppo", "--planner", "configs/planner/hand.yaml"], "--planner labels states for --algo dagger only"),
    (["--algo", "dagger", "--planner", "configs/planner/hand.yaml"], "needs core: mlp"),
    (["--algo", "dagger", "--planner", "configs/planner/gimbal.yaml", "--set", "core=mlp", "--set",
      "env.action_mode=relative"], "clones the planner's absolute commands"),
    (["--algo", "dagger", "--planner", "configs/planner/gimbal.yaml", "--set", "core=mlp", "--set",
      "dagger.action_noise=0.1"], "with env.action_type=discrete set it to 0"),
    (["--algo", "dagger", "--planner", "configs/planner/gimbal.yaml", "--obs", "pixels", "--set", "core=mlp"],
     "needs --obs state"),
    (["--algo", "dagger", "--planner", "no/such.yaml", "--set", "core=mlp", "--set", "env.action_type=continuous"],
     "config file not found: no/such.yaml"),
    (["--algo", "ppo", "--set", "dagger.updates=3"], "dagger.updates is used by --algo dagger only"),
    (["--algo", "dagger", "--planner", "configs/planner/gimbal.yaml", "--set", "core=mlp", "--set",
      "dagger.window=-1"], "window >= 0"),
    (["--algo", "dagger", "--planner", "configs/planner/hand.yaml", "--set", "core=mlp", "--set",
      "env.action_type=continuous"], "plans hand-block (its env.task) and this run's task is gimbal-block"),
    (["--algo", "dagger", "--planner", "configs/planner/gimbal.yaml", "--set", "core=mlp", "--set",
      "env.control_period=0.08"], "knots 8 and replan_every 1 must be at most the horizon's 4 control steps"),
])
def test_bad_dagger_runs_end_in_one_line(sets, expected, tmp_path, capsys):
    assert train.main(["--task", "gimbal-block", *sets, "--out", str(tmp_path / "run")]) == 2
    one_error_line(capsys.readouterr().err, expected)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
