"""The configuration of `train-policy`: one dataclass, loaded from YAML and overridden by flags."""

from __future__ import annotations

import dataclasses

from dexvision.config import bounds, check_bounds, check_choice
from dexvision.envs.curriculum import CurriculumConfig
from dexvision.envs.task import OBS_MODES, EnvConfig
from dexvision.policy.model import check_core
from dexvision.policy.ppo import LossConfig
from dexvision.policy.sac import SacConfig
from dexvision.sim.scenes import check_task

ALGOS = ("ppo", "bc", "bc+ppo", "sac", "dagger")


@dataclasses.dataclass
class DaggerConfig:
    """Distillation of the planner (algo dagger, dexvision.policy.dagger)."""

    mix: float = 1.0  # the probability, at the start, that the planner's own action is played
    mix_frames: int = 20_000  # frames over which that probability falls linearly to 0
    action_noise: float = 0.0  # std of the Gaussian noise on the network's actions while collecting
    updates: int = 64  # optimizer steps on the aggregate after each rollout
    batch_size: int = 256
    # true: the network's own greedy command goes to the planner as a proposal at every step (the planner
    # config's `proposal` says how: the start of its plan, its first knot, or candidates around it; its
    # `proposal` cost pulls towards it), so that the labels at a state agree with each other and with the
    # network. The labels of a planner that follows only its own plan do not average (BENCHMARKS.md, "Why the
    # planner's labels do not average").
    guide: bool = False
    # train on the newest `window` labels only (0: all of them). Guided labels improve the network of their day:
    # old ones pull a better network back towards its past
    window: int = 0

    def __post_init__(self):
        if not 0 <= self.mix <= 1:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")
        if self.mix_frames < 0 or self.action_noise < 0 or self.updates < 1 or self.batch_size < 1 or self.window < 0:
            raise ValueError("need mix_frames >= 0, action_noise >= 0, updates >= 1, batch_size >= 1 and window >= 0")


@dataclasses.dataclass
class TrainPolicyConfig:
    task: str = "gimbal-block"
    obs: str = "state"
    algo: str = "ppo"
    steps: int = 1_000_000  # environment frames to collect, over all processes
    bc_steps: int = 0  # bc+ppo: frames of cloning before PPO takes over (0: half of steps)
    num_envs: int = 64  # per process
    rollout: int = 40  # steps per environment per iteration (a multiple of chunk)
    chunk: int = 10  # LSTM back-propagation length; the state is carried across chunks
    epochs: int = 2  # pixels: end-to-end epochs through the vision sub-model; 0 keeps it frozen as initialized
    feature_epochs: int = 0  # pixels: extra epochs on the vision features of the rollout (vision not updated)
    # Behavioural cloning from pixels: the feature epochs draw their minibatches from this many rollouts
    # (the newest and the ones before it, with the features and teacher labels they were collected with:
    # DAgger's aggregated data set) instead of the newest alone; 0 or 1: the newest only. Same optimizer
    # steps and minibatch size either way. Not kept in checkpoints: a resumed run refills it. PPO (algo ppo,
    # and bc+ppo once cloning is over) trains on the newest rollout only, whatever this says.
    bc_replay: int = 0
    minibatches: int = 4  # per epoch, split by environment
    lr: float = 3e-4
    vision_lr_scale: float = 0.1  # the vision sub-model learns at lr * this (fine-tuning a pretrained encoder)
    gamma: float = 0.98
    gae_lambda: float = 0.95
    max_grad_norm: float = 0.5
    normalize_rewards: bool = True  # PPO: rewards / running std of the discounted return (value targets ~ 1)
    # PPO: an episode cut off by a time limit (the goal clock, max_successes, max_episode_steps) bootstraps its
    # return from the value of the observation it ended on, kept through the autoreset (info["final_obs"]); off,
    # a truncation counts as the end of all reward (state policies only: final observations have no images)
    bootstrap_truncated: bool = False
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    embed_dim: int = 512
    lstm_hidden: int = 256
    shared_embeddings: bool = False
    core: str = "lstm"  # the policy's and value function's core: lstm (as in the original) or mlp
    mlp_hidden: list[int] = dataclasses.field(default_factory=lambda: [512, 256])  # core: mlp
    normalize_obs: bool = False  # standardize vector inputs by running moments gathered while collecting
    init_log_std: float = -0.7  # env.action_type continuous: the Gaussian policy's initial log std
    # PPO: halve-ish the learning rate when an iteration's mean KL exceeds 2x this, raise it when below
    # half (rl_games' adaptive schedule, as Isaac Gym's in-hand tasks use); 0: a constant learning rate
    kl_target: float = 0.0
    # The initial policy's probability of each actuator's middle bin (relative actions: hold the command);
    # 0 leaves the initial policy uniform. A calm start: a uniform policy over relative bins moves every
    # finger at random each step.
    init_hold_prob: float = 0.0
    vision_arch: str = "impala"  # pixel policies without --init-vision
    image_size: int = 64
    vision_head_hidden: int = 512
    teacher: str = ""  # state policy checkpoint (bc, bc+ppo)
    init_vision: str = ""  # train-vision checkpoint whose weights start the vision sub-model
    render_workers: int = -1  # pixel observations: rendering processes (-1: one per core, 0: in process)
    env_workers: int = -1  # processes stepping the environments (-1: one per core for hand-block state)
    seed: int = 0
    out: str = ""
    wandb: bool = False
    checkpoint_every: int = 25  # iterations
    log_every_s: float = 10.0
    eval_every_min: float = 0.0  # greedy evaluation during training (0: only at the end)
    eval_episodes: int = 10
    time_limit_min: float = 0.0  # stop (evaluate, checkpoint) after this long; 0: no limit
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    curriculum: CurriculumConfig = dataclasses.field(default_factory=CurriculumConfig)
    sac: SacConfig = dataclasses.field(default_factory=SacConfig)  # algo sac (dexvision.policy.offpolicy)
    planner: str = ""  # algo dagger: the planner config (configs/planner/hand.yaml) whose actions label the states
    dagger: DaggerConfig = dataclasses.field(default_factory=DaggerConfig)  # algo dagger

    def __post_init__(self):
        check_choice("obs", self.obs, OBS_MODES)
        check_choice("algo", self.algo, ALGOS)
        for name in ("steps", "num_envs", "rollout", "chunk", "minibatches", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.feature_epochs < 0:
            raise ValueError(f"epochs and feature_epochs must be >= 0, got {self.epochs} and {self.feature_epochs}")
        if self.epochs == 0 and (self.obs != "pixels" or self.feature_epochs < 1):
            raise ValueError("epochs 0 (a frozen vision sub-model) needs pixel observations and feature_epochs >= 1; "
                             "other policies need epochs >= 1")
        if self.epochs == 0 and not self.init_vision:
            raise ValueError("epochs 0 keeps the vision sub-model frozen: it needs --init-vision (a random encoder "
                             "that never trains cannot learn to see); use epochs >= 1 without one")
        if self.rollout % self.chunk and self.algo not in ("sac", "dagger"):  # (sac: rollout is the steps per logged iteration)
            raise ValueError(f"rollout ({self.rollout}) must be a multiple of chunk ({self.chunk})")
        if self.num_envs % self.minibatches and self.algo not in ("sac", "dagger"):
            raise ValueError(f"num_envs ({self.num_envs}) must be divisible by minibatches ({self.minibatches})")
        if self.algo in ("bc", "bc+ppo") and not self.teacher:
            raise ValueError(f"--algo {self.algo} needs --teacher (a state policy checkpoint)")
        # a value the chosen mode would ignore is refused: the user meant something that would not happen
        if self.teacher and self.algo not in ("bc", "bc+ppo"):
            raise ValueError(f"--teacher is used by --algo bc and bc+ppo only, not {self.algo}: drop it, "
                             "or choose --algo bc")
        if self.init_vision and self.obs != "pixels":
            raise ValueError("--init-vision starts a pixel policy's vision sub-model: it needs --obs pixels")
        if self.bc_steps and self.algo != "bc+ppo":
            raise ValueError(f"bc_steps is used by --algo bc+ppo only, not {self.algo}")
        if self.algo != "sac" and self.sac != SacConfig():
            changed = [f.name for f in dataclasses.fields(SacConfig) if getattr(self.sac, f.name) != getattr(SacConfig(), f.name)]
            raise ValueError(f"sac.{changed[0]} is used by --algo sac only, not {self.algo}")
        if self.algo == "dagger" and not self.planner:
            raise ValueError("--algo dagger needs --planner (a planner config, e.g. configs/planner/hand.yaml)")
        if self.planner and self.algo != "dagger":
            raise ValueError(f"--planner labels states for --algo dagger only, not {self.algo}")
        if self.algo != "dagger" and self.dagger != DaggerConfig():
            changed = [f.name for f in dataclasses.fields(DaggerConfig)
                       if getattr(self.dagger, f.name) != getattr(DaggerConfig(), f.name)]
            raise ValueError(f"dagger.{changed[0]} is used by --algo dagger only, not {self.algo}")
        if self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {self.eval_episodes}")
        if self.algo == "bc+ppo" and self.bc_steps >= self.steps:
            raise ValueError(f"bc_steps ({self.bc_steps}) must be below steps ({self.steps}) for bc+ppo")
        if not 0 <= self.init_hold_prob < 1:
            raise ValueError(f"init_hold_prob must be in [0, 1), got {self.init_hold_prob}")
        if self.init_hold_prob and self.env.action_type != "discrete":
            raise ValueError("init_hold_prob needs env.action_type discrete (it favours the middle bin)")
        check_core(self.core, self.mlp_hidden)
        if self.bc_replay < 0:
            raise ValueError(f"bc_replay must be >= 0, got {self.bc_replay}")
        if self.bc_replay > 1 and (self.obs != "pixels" or self.feature_epochs < 1):  # (PPO just ignores it)
            raise ValueError("bc_replay needs behavioural cloning from pixels with feature_epochs >= 1 "
                             "(it feeds the feature epochs)")
        if self.bootstrap_truncated and self.obs != "state":
            raise ValueError("bootstrap_truncated needs --obs state (a final observation holds no images)")
        if self.kl_target < 0:
            raise ValueError(f"kl_target must be >= 0, got {self.kl_target}")
        if self.lr <= 0 or not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError("need lr > 0, 0 < gamma <= 1 and 0 <= gae_lambda <= 1")
        check_task(self.task)  # a ValueError: one line naming the field
        check_bounds(self, bounds("seed", "image_size", "render_workers", "env_workers", "time_limit_min", "eval_every_min",
                                  "log_every_s"))
        # the environments' config the trainer derives (the task and image size put into env): its own checks
        # run here, before anything starts
        dataclasses.replace(self.env, task=self.task,
                            render=dataclasses.replace(self.env.render, image_size=self.image_size))
