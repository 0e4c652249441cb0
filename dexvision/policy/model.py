"""The policy and value networks: embed-and-add, an LSTM (or MLP) core each, action heads.

As in the Rubik's cube work (section 6.2) and the end-to-end report: every input is
mapped by its own linear layer (an "embedding mapping") to a 512-d space, the
embeddings are summed and passed through a ReLU, then an LSTM, then the heads. The
policy and value networks each have an LSTM; by default they also have separate
embedding mappings, and `shared_embeddings=True` makes the value network reuse the
policy's mappings for the inputs they share. The value network sees the policy's
inputs plus the full state (asymmetric actor-critic).

A pixel policy's `images` pass through the vision sub-model: the train-vision
PoseNet up to its penultimate layer (the encoder applied to each camera, the
features concatenated, the head's hidden layer); its output is the input `vision`.

Two departures are options, for policies that must learn from fewer samples (the
hand teacher, as Isaac Gym's and MuJoCo Playground's in-hand policies do): `core="mlp"`
replaces each LSTM by a feed-forward stack (ELU), and `action_dist="gaussian"` gives
each actuator a Normal distribution (a mean from the head, a learned state-independent
log standard deviation) instead of categorical bins; the environment then takes
continuous actions. `normalize_obs` standardizes every vector input by running
moments gathered while collecting (`observe`), clipped to +-5; they are buffers, so
they travel with the weights in checkpoints.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

from dexvision.config import check_choice
from dexvision.vision.model import PoseNet, PoseNetConfig, penultimate_features


@dataclasses.dataclass
class PolicyConfig:
    policy_inputs: dict[str, int]  # input name -> size (`vision` is the vision sub-model's output)
    value_inputs: dict[str, int]
    num_actions: int  # actuators
    action_bins: int = 11
    embed_dim: int = 512
    lstm_hidden: int = 256
    shared_embeddings: bool = False
    vision: dict | None = None  # the PoseNetConfig of the vision sub-model (pixel policies)
    core: str = "lstm"  # lstm or mlp (feed-forward: no memory across steps)
    mlp_hidden: list[int] = dataclasses.field(default_factory=lambda: [512, 256])
    # categorical (action_bins per actuator), gaussian (continuous; a learned state-independent std) or
    # tanh_gaussian (continuous: a Normal whose draw is squashed by tanh into [-1, 1], mean and std from the
    # head, as soft actor-critic's policy)
    action_dist: str = "categorical"
    init_log_std: float = -0.7  # gaussian: the initial log standard deviation of every actuator's action
    normalize_obs: bool = False

    def __post_init__(self):
        check_core(self.core, self.mlp_hidden)
        check_choice("action_dist", self.action_dist, ACTION_DISTS)

    @property
    def uses_vision(self) -> bool:
        return self.vision is not None

    @property
    def core_width(self) -> int:
        return self.lstm_hidden if self.core == "lstm" else self.mlp_hidden[-1]


CORES = ("lstm", "mlp")


def check_core(core: str, mlp_hidden: list[int]) -> None:
    """A known core; an MLP core's layer widths positive (train-policy's config and the model's)."""
    check_choice("core", core, CORES)
    if core == "mlp" and (not mlp_hidden or min(mlp_hidden) < 1):
        raise ValueError(f"mlp_hidden must list positive layer widths, got {mlp_hidden}")
ACTION_DISTS = ("categorical", "gaussian", "tanh_gaussian")
LOG_STD_BOUNDS = (-5.0, 2.0)  # tanh_gaussian: the head's log standard deviations are clamped to this
OBS_CLIP = 5.0  # normalized inputs are clipped to +-this


class VisionSubModel(nn.Module):
    """PoseNet minus its last layer: (B, K, 3, H, W) images -> (B, penultimate_features) features (a keypoint
    head's hidden layer is per camera: the cameras' side by side)."""

    def __init__(self, cfg: PoseNetConfig):
        super().__init__()
        self.pose_net = PoseNet(cfg)
        self.pose_net.head[-1] = nn.Identity()  # the pose output layer is not part of the sub-model
        self.num_features = self.pose_net.penultimate_features

    def train(self, mode: bool = True) -> VisionSubModel:
        """Batch-norm layers stay in eval mode: their statistics come from pretraining (or start
        neutral). A policy's minibatches hold one environment's consecutive frames, and acting
        normalizes over the environments of one step: neither is a sample of the image distribution."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pose_net.penultimate(images)

    def load_pretrained(self, pose_state: dict[str, torch.Tensor]) -> list[str]:
        """Copy a trained PoseNet's weights up to the penultimate layer; returns the names copied."""
        own = self.pose_net.state_dict()
        missing = [k for k in own if k not in pose_state]
        if missing:
            raise ValueError(f"the vision checkpoint lacks {len(missing)} weights of the sub-model, e.g. {missing[0]}")
        copied = {k: pose_state[k] for k in own}
        for k, v in copied.items():
            if v.shape != own[k].shape:
                raise ValueError(f"vision weight {k} has shape {tuple(v.shape)}, the sub-model needs {tuple(own[k].shape)}")
        self.pose_net.load_state_dict(copied)
        return list(copied)


def _linear(n_in: int, n_out: int, gain: float) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class Embedding(nn.Module):
    """Sum of per-input linear embeddings, then a ReLU."""

    def __init__(self, layers: dict[str, nn.Linear]):
        super().__init__()
        self.layers = nn.ModuleDict(layers)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.relu(sum(layer(inputs[name]) for name, layer in self.layers.items()))


def _mlp(n_in: int, widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [_linear(n_in, width, math.sqrt(2.0)), nn.ELU()]
        n_in = width
    return nn.Sequential(*layers)


class RunningMoments(nn.Module):
    """Mean and variance of each named input over everything `update` has seen (Chan et al.'s merge)."""

    def __init__(self, dims: dict[str, int]):
        super().__init__()
        self.names = list(dims)
        for name, n in dims.items():
            self.register_buffer(f"{name}_mean", torch.zeros(n))
            self.register_buffer(f"{name}_var", torch.ones(n))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, inputs: dict[str, torch.Tensor]) -> None:
        """Add a batch (B, n) of each input."""
        batch = inputs[self.names[0]].shape[0]
        total = self.count + batch
        for name in self.names:
            x = inputs[name].float().reshape(batch, -1)
            mean, var = getattr(self, f"{name}_mean"), getattr(self, f"{name}_var")
            b_mean, b_var = x.mean(0), x.var(0, unbiased=False)
            delta = b_mean - mean
            old, new = float(self.count / total), batch / float(total)
            var.copy_(var * old + b_var * new + delta.square() * old * new)
            mean.add_(delta * new)
        self.count.copy_(total)

    def forward(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mean, var = getattr(self, f"{name}_mean"), getattr(self, f"{name}_var")
        return ((x - mean) / torch.sqrt(var + 1e-8)).clamp(-OBS_CLIP, OBS_CLIP)


class ActorCritic(nn.Module):
    """Policy (actor) and value (critic) networks over sequences: inputs are (T, B, ...)."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.vision = VisionSubModel(PoseNetConfig(**cfg.vision)) if cfg.uses_vision else None
        pi_layers = {k: _linear(n, d, 1.0) for k, n in cfg.policy_inputs.items()}
        if cfg.shared_embeddings:
            v_layers = {k: pi_layers.get(k) or _linear(n, d, 1.0) for k, n in cfg.value_inputs.items()}
        else:
            v_layers = {k: _linear(n, d, 1.0) for k, n in cfg.value_inputs.items()}
        self.policy_embedding = Embedding(pi_layers)
        self.value_embedding = Embedding(v_layers)
        if cfg.core == "lstm":
            self.policy_lstm = nn.LSTMCell(d, cfg.lstm_hidden)
            self.value_lstm = nn.LSTMCell(d, cfg.lstm_hidden)
        else:
            self.policy_mlp = _mlp(d, cfg.mlp_hidden)
            self.value_mlp = _mlp(d, cfg.mlp_hidden)
        gaussian = cfg.action_dist == "gaussian"
        per_actuator = {"gaussian": 1, "tanh_gaussian": 2}.get(cfg.action_dist, cfg.action_bins)
        self.policy_head = _linear(cfg.core_width, cfg.num_actions * per_actuator, 0.01)
        self.value_head = _linear(cfg.core_width, 1, 1.0)
        if gaussian:
            self.log_std = nn.Parameter(torch.full((cfg.num_actions,), float(cfg.init_log_std)))
        self.obs_moments = None
        if cfg.normalize_obs:
            dims = {k: n for k, n in {**cfg.policy_inputs, **cfg.value_inputs}.items() if k != "vision"}
            self.obs_moments = RunningMoments(dims)

    def distribution(self, params: torch.Tensor) -> Distribution:
        """The action distribution of head outputs `params` (..., actuators, bins) or, gaussian,
        (..., actuators, 2) = mean and log standard deviation; log_prob and entropy are per actuator.
        tanh_gaussian: the Normal before the squash (a KL between two such policies is the KL of the squashed
        ones: tanh is a bijection)."""
        if self.cfg.action_dist in ("gaussian", "tanh_gaussian"):
            return Normal(params[..., 0], params[..., 1].exp())
        return Categorical(logits=params)

    def observe(self, obs: dict[str, torch.Tensor]) -> None:
        """Training collection: add one step's (B, ...) observations to the input moments."""
        if self.obs_moments is not None:
            self.obs_moments.update(obs)

    def favour_middle_bin(self, prob: float) -> None:
        """Set the policy head's biases so that, while its weights are still near zero, each actuator picks
        its middle bin with probability `prob` and the other bins evenly."""
        if self.cfg.action_dist != "categorical":
            raise ValueError("a calm start (init_hold_prob) needs categorical actions")
        bins = self.cfg.action_bins
        bias = math.log(prob * (bins - 1) / (1.0 - prob))
        with torch.no_grad():
            view = self.policy_head.bias.view(self.cfg.num_actions, bins)
            view.zero_()
            view[:, bins // 2] = bias

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Zero LSTM state for `batch` sequences: (4, B, hidden) = policy h, c, value h, c."""
        return torch.zeros(4, batch, self.cfg.lstm_hidden, device=device)

    def vision_features(self, images: torch.Tensor) -> torch.Tensor:
        """(T, B, K, 3, H, W) images -> (T, B, F) vision sub-model output."""
        t, b = images.shape[:2]
        return self.vision(images.flatten(0, 1)).view(t, b, -1)

    def _inputs(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Vector inputs as float; `vision` computed from `images` unless given (then used as is)."""
        inputs = {k: v.float() for k, v in obs.items() if k != "images"}
        if self.obs_moments is not None:
            inputs = {k: self.obs_moments(k, v) if k in self.obs_moments.names else v for k, v in inputs.items()}
        if self.vision is not None and "vision" not in inputs:
            inputs["vision"] = self.vision_features(obs["images"])
        return inputs

    def forward(self, obs: dict[str, torch.Tensor], state: torch.Tensor, starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action distribution parameters (T, B, actions, bins or 2), values (T, B), final state) for T
        steps of B sequences. `starts[t, b]` is 1 where step t begins a new episode: the LSTM state is zeroed
        there (an MLP core has no state: it is passed through unchanged).
        """
        inputs = self._inputs(obs)
        pi_x = self.policy_embedding(inputs)
        v_x = self.value_embedding(inputs)
        if self.cfg.core == "mlp":
            pi_h, v_h = self.policy_mlp(pi_x), self.value_mlp(v_x)
        else:
            pi_h, v_h, state = self._run_lstm(pi_x, v_x, state, starts)
        values = self.value_head(v_h).squeeze(-1)
        return self._head(pi_h), values, state

    def _head(self, pi_h: torch.Tensor) -> torch.Tensor:
        """The action distribution's parameters from the policy core's output (..., width)."""
        out = self.policy_head(pi_h)
        if self.cfg.action_dist == "gaussian":
            return torch.stack([out, self.log_std.expand_as(out)], -1)
        if self.cfg.action_dist == "tanh_gaussian":
            mean, log_std = out.chunk(2, -1)
            return torch.stack([mean, log_std.clamp(*LOG_STD_BOUNDS)], -1)
        return out.view(*out.shape[:-1], self.cfg.num_actions, self.cfg.action_bins)

    def policy_params(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The policy branch alone on (B, ...) inputs of an MLP core: (B, actuators, 2 or bins) parameters
        (what an off-policy learner needs: no value network, no sequence)."""
        if self.cfg.core != "mlp" or self.vision is not None:
            raise ValueError("policy_params needs an MLP core on vector inputs")
        return self._head(self.policy_mlp(self.policy_embedding(self._inputs(obs))))

    def _run_lstm(self, pi_x: torch.Tensor, v_x: torch.Tensor, state: torch.Tensor, starts: torch.Tensor):
        """Both LSTMs over (T, B, ...) inputs; an environment's state is cleared where `starts` marks a new
        episode. Runs torch's fused LSTM over each stretch of steps in which no environment starts one
        (3.5x faster than a loop of LSTMCell steps over 10 steps, backward included)."""
        ph, pc, vh, vc = state
        t_len = pi_x.shape[0]
        cuts = [0] + (torch.nonzero(starts[1:].any(dim=-1)).flatten() + 1).tolist() + [t_len]
        pi_out, v_out = [], []
        for a, b in zip(cuts[:-1], cuts[1:]):
            keep = (1.0 - starts[a].float()).unsqueeze(-1)
            out, ph, pc = _fused_lstm(self.policy_lstm, pi_x[a:b], ph * keep, pc * keep, self.training)
            pi_out.append(out)
            out, vh, vc = _fused_lstm(self.value_lstm, v_x[a:b], vh * keep, vc * keep, self.training)
            v_out.append(out)
        return torch.cat(pi_out), torch.cat(v_out), torch.stack([ph, pc, vh, vc])

    def get_action_and_value(self, obs: dict[str, torch.Tensor], state: torch.Tensor, starts: torch.Tensor,
                             action: torch.Tensor | None = None, greedy: bool = False,
                             generator: torch.Generator | None = None):
        """One step (inputs (B, ...)): action, its log-probability, entropy, value, distribution parameters,
        new state. Sampled actions draw from `generator` (a CPU generator), so a seeded run repeats its actions;
        greedy ones are the most likely bin or the Gaussian's mean."""
        params, values, state = self.forward({k: v.unsqueeze(0) for k, v in obs.items()}, state, starts.unsqueeze(0))
        params = params[0]
        dist = self.distribution(params)
        if self.cfg.action_dist == "tanh_gaussian":
            if action is None:
                pre = params[..., 0] if greedy else sample_gaussian(params, generator)
            else:
                pre = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
            action = torch.tanh(pre)
            logprob = (dist.log_prob(pre) - torch.log1p(-action.square() + 1e-6)).sum(-1)
            return action, logprob, dist.entropy().sum(-1), values[0], params, state
        if action is None:
            if self.cfg.action_dist == "gaussian":
                action = params[..., 0] if greedy else sample_gaussian(params, generator)
            else:
                action = params.argmax(-1) if greedy else sample_categorical(params, generator)
        return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), values[0], params, state


def _fused_lstm(cell: nn.LSTMCell, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, train: bool):
    """`cell` applied over the steps of x (T, B, in) from (h, c) by torch's fused LSTM kernel, with the
    cell's own weights: (outputs (T, B, hidden), last h, last c)."""
    weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    out, h, c = torch.lstm(x, (h.unsqueeze(0), c.unsqueeze(0)), weights, True, 1, 0.0, train, False, False)
    return out, h[0], c[0]


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of `logits` (..., bins) by the Gumbel-max trick, from an explicit generator."""
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float32).to(logits.device)
    gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
    return (logits.detach() + gumbel).argmax(-1)


def sample_gaussian(params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per actuator from (..., actuators, 2) = (mean, log std), from an explicit generator."""
    noise = torch.randn(params.shape[:-1], generator=generator, dtype=torch.float32).to(params.device)
    return params[..., 0] + params[..., 1].exp() * noise


def policy_config_for(env, obs: str, teacher_keys: tuple[str, ...], vision: PoseNetConfig | None = None,
                      **kwargs) -> PolicyConfig:
    """The PolicyConfig for an environment: state policies see `teacher_keys`, pixel ones images + proprio + goal."""
    dims = env.obs_dims()
    state = {k: dims[k] for k in teacher_keys}
    if obs == "state":
        policy_inputs = dict(state)
    else:
        if vision is None:
            raise ValueError("a pixel policy needs a vision sub-model config")
        policy_inputs = {"vision": penultimate_features(vision), "proprio": dims["proprio"], "goal": dims["goal"]}
    value_inputs = {**policy_inputs, **state}
    from dexvision.envs.task import VALUE_ONLY_KEYS  # noqa: PLC0415 - (envs imports nothing of this module)

    value_inputs.update({k: dims[k] for k in VALUE_ONLY_KEYS if k in dims})  # the goal clock, when observed
    dist = kwargs.pop("action_dist", None) or ("gaussian" if env.cfg.action_type == "continuous" else "categorical")
    return PolicyConfig(policy_inputs=policy_inputs, value_inputs=value_inputs, num_actions=env.nu,
                        action_bins=env.cfg.action_bins, action_dist=dist,
                        vision=dataclasses.asdict(vision) if vision is not None else None, **kwargs)
