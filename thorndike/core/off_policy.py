"""The schedule of an off-policy loop, and target-network updates.

Notes: DQN's loop (001 L83-L90): act epsilon-greedily, store the transition, learn from a sampled minibatch, and
reset the target network to the online one every C steps; Polyak averaging theta' <- tau theta + (1 - tau) theta'
for DDPG/TD3/SAC (004). The off-policy algorithms share when things happen, not how, so this is a small component
the algorithm composes, not a base class.

Counting. Everything is counted in env steps (transitions: one vectorised step of ``n_envs`` copies is ``n_envs``
env steps), so that a config means the same replay ratio (``gradient_steps / train_freq`` gradient steps per
transition) for any ``n_envs``. :class:`OffPolicySchedule` keeps no state: what is due after a vectorised step is a
function of the env steps before it (the run's ``global_step``, which checkpoints already hold), so a resumed run
updates at exactly the steps an uninterrupted one does.

The DQN family (DQN, C51, QR-DQN, Rainbow) differ in their networks, targets and losses, not in their loop: each
composes an :class:`OffPolicyLoop` (the replay buffer, the schedule, the checks on env data, storing a step,
sampling a minibatch, a clipped optimiser step, target updates and the ``learn`` loop of log rows) and configures
it with the fields of :class:`ReplayConfig`. The off-policy actor-critics (DDPG, TD3, SAC, discrete SAC) compose the
same loop with the fields of :class:`ActorCriticReplayConfig`: Box actions are drawn uniformly in [-1, 1] during the
warm-up (the algorithm's action units, scaled to the space's bounds only on the way to the env), and they update
their targets themselves (TD3's are delayed), so their loop has no target network of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import Tensor, nn

from thorndike.config import check, check_limits, check_network, describe
from thorndike.core.capture import GradientStep, capture
from thorndike.core.diagnostics import StepChecks
from thorndike.core.encoders import make_encoder
from thorndike.core.replay import PrioritizedReplayBuffer, ReplayBuffer
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.core.schedules import Linear, Schedule, make_schedule
from thorndike.core.spaces import is_image
from thorndike.envs.wrappers import resolve_wrappers

__all__ = ["ActorCriticReplayConfig", "Counter", "Due", "EpsilonGreedyConfig", "OffPolicyLoop", "OffPolicySchedule",
           "ReplayConfig", "RowStats", "hard_update", "joint_step", "online_and_target", "optimizer_step",
           "q_network_weights", "soft_update", "stacked_frames"]

AUTO_BUFFER_BYTES = 256 * 2**20  # buffer_in_checkpoint="auto" keeps buffers up to this size in checkpoints


@dataclass(frozen=True)
class Due:
    """What a vectorised step makes due: this many gradient steps, then this many target updates."""

    gradient_steps: int
    target_updates: int


def _multiples(interval: int, after: int, upto: int) -> int:
    """How many multiples of ``interval`` lie in (after, upto]."""
    return upto // interval - after // interval if upto > after else 0


class OffPolicySchedule:
    """When to act at random, how much to explore, when to update, when to update the target network.

    - the first ``learning_starts`` env steps act uniformly at random (:meth:`random_actions`) and learn nothing;
    - after them, one update of ``gradient_steps`` gradient steps per ``train_freq`` env steps;
    - a target-network update every ``target_update_interval`` env steps (1 with a soft update: one per step);
    - epsilon (:meth:`epsilon`) is a schedule of the env steps so far (a number is a constant).
    """

    def __init__(
        self,
        n_envs: int,
        learning_starts: int = 0,
        train_freq: int = 1,
        gradient_steps: int = 1,
        target_update_interval: int = 1,
        epsilon: float | Schedule = 0.0,
    ) -> None:
        for name, value, least in (("n_envs", n_envs, 1), ("learning_starts", learning_starts, 0),
                                   ("train_freq", train_freq, 1), ("gradient_steps", gradient_steps, 0),
                                   ("target_update_interval", target_update_interval, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        self.n_envs, self.learning_starts = n_envs, learning_starts
        self.train_freq, self.gradient_steps = train_freq, gradient_steps
        self.target_update_interval = target_update_interval
        self.epsilon_schedule = make_schedule(epsilon)

    def random_actions(self, env_steps: int) -> bool:
        """Whether the vectorised step taken after ``env_steps`` env steps is a warm-up step (uniform actions)."""
        return env_steps < self.learning_starts

    def epsilon(self, env_steps: int) -> float:
        """The exploration rate for the step taken after ``env_steps`` env steps."""
        return self.epsilon_schedule(env_steps)

    def due(self, env_steps: int) -> Due:
        """What falls due with the vectorised step taken after ``env_steps`` env steps (it brings ``n_envs`` more).

        Updates count from ``learning_starts``: the train_freq-th, 2*train_freq-th, ... env step past it.
        """
        before = max(env_steps - self.learning_starts, 0)
        after = env_steps + self.n_envs - self.learning_starts
        updates = _multiples(self.train_freq, before, after)
        return Due(updates * self.gradient_steps, _multiples(self.target_update_interval, before, after))


def _pairs(target: nn.Module, source: nn.Module, what: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    targets = list(getattr(target, what)())
    sources = list(getattr(source, what)())
    if len(targets) != len(sources) or any(t.shape != s.shape for t, s in zip(targets, sources, strict=True)):
        raise ValueError(f"target and source {what} differ: {[tuple(t.shape) for t in targets]} vs "
                         f"{[tuple(s.shape) for s in sources]}")
    return targets, sources


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """theta' <- theta: copy every parameter and buffer of ``source`` into ``target``, in place."""
    for what in ("parameters", "buffers"):
        targets, sources = _pairs(target, source, what)
        if targets:
            torch._foreach_copy_(targets, sources)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging theta' <- theta' + tau (theta - theta') of the parameters, in place (one fused op).

    Buffers (normaliser statistics, counts) are copied, not averaged: they are statistics of the data, not
    weights, and integer counts cannot be interpolated.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")
    targets, sources = _pairs(target, source, "parameters")
    if targets:
        torch._foreach_lerp_(targets, sources, tau)
    buffers, source_buffers = _pairs(target, source, "buffers")
    if buffers:
        torch._foreach_copy_(buffers, source_buffers)


class Counter:
    """A count kept in checkpoints (a component): TD3's critic updates, so the delayed updates of a resumed run fall
    where an uninterrupted run's do. A Python int: reading it costs no host synchronisation."""

    def __init__(self) -> None:
        self.count = 0

    def state_dict(self) -> dict[str, int]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.count = int(state["count"])


class RowStats:
    """Per-step statistics kept as device tensors and averaged once per log row (one host read per column per row,
    none per step). The columns are named up front, so every row has them (NaN before the first update)."""

    def __init__(self, *names: str) -> None:
        self.values: dict[str, list[Tensor]] = {name: [] for name in names}

    def add(self, **values: Tensor) -> None:
        for name, value in values.items():
            self.values[name].append(value.detach())

    def means(self) -> dict[str, float]:
        """The mean of each column since the last call (NaN for a column with no value in this row), then clear."""
        out = {name: float(torch.stack(v).float().mean()) if v else math.nan for name, v in self.values.items()}
        self.values = {name: [] for name in self.values}
        return out


def optimizer_step(optimizer: torch.optim.Optimizer, loss: Tensor) -> Tensor:
    """zero_grad, backward, step; returns the loss, detached (for the log, read once per row)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def joint_step(steps: Sequence[tuple[torch.optim.Optimizer, Tensor]]) -> list[Tensor]:
    """Several optimisers' steps on their losses with one backward pass through the sum of the losses; returns the
    losses, detached.

    Exact only when no loss reaches another optimiser's parameters (SAC's actor loss sees alpha detached, its
    temperature loss log pi detached): then the sum's gradient on each optimiser's parameters is its own loss's.
    One backward instead of one per loss saves the autograd engine's fixed cost, which decides at small sizes.
    """
    for optimizer, _ in steps:
        optimizer.zero_grad(set_to_none=True)
    sum(loss for _, loss in steps).backward()
    for optimizer, _ in steps:
        optimizer.step()
    return [loss.detach() for _, loss in steps]


# ---- the DQN family's shared loop ------------------------------------------------------------------------------


def check_replay_fields(config: Any, allow_no_hidden: bool = False) -> None:
    """Check the fields both replay configs (:class:`ReplayConfig`, :class:`ActorCriticReplayConfig`) have: the
    limits, the copies, the buffer and its batches, the schedule, tau, the network and the log and checkpoint
    options (each config checks its own fields besides). ``allow_no_hidden``: ``hidden_sizes`` may be empty (the
    Q-networks: the output layer right after the encoder, the Nature DQN's head on its CNN)."""
    check_limits(config)
    check(config.n_envs >= 1, "n_envs", config.n_envs, ">= 1")
    check(config.buffer_size >= 1, "buffer_size", config.buffer_size, ">= 1")
    check(config.learning_starts >= 0, "learning_starts", config.learning_starts, ">= 0")
    check(1 <= config.batch_size <= config.buffer_size, "batch_size", config.batch_size,
          f">= 1 and <= buffer_size = {config.buffer_size}")
    check(config.lr > 0, "lr", config.lr, "> 0")
    check(0 < config.gamma <= 1, "gamma", config.gamma, "in (0, 1]")
    check(config.train_freq >= 1, "train_freq", config.train_freq, ">= 1")
    check(config.gradient_steps >= 0, "gradient_steps", config.gradient_steps, ">= 0")
    check(0 < config.tau <= 1, "tau", config.tau, "in (0, 1]")
    check_network(config, allow_empty=allow_no_hidden)
    check(config.log_every >= 1, "log_every", config.log_every, ">= 1")
    check(config.buffer_in_checkpoint in ("auto", "always", "never"), "buffer_in_checkpoint",
          config.buffer_in_checkpoint, "auto, always or never")


@dataclass
class ReplayConfig:
    """The fields every replay-based value learner shares (Stable-Baselines3's names where it has them)."""

    n_envs: int = describe("parallel environment copies", 1)
    buffer_size: int = describe("replay buffer capacity (transitions)", 100_000)
    learning_starts: int = describe("env steps of uniform random actions before learning starts", 1000)
    batch_size: int = describe("transitions per gradient step", 64)
    lr: float = describe("Adam learning rate", 1e-3)
    gamma: float = describe("discount factor", 0.99)
    train_freq: int = describe("env steps between updates", 4)
    gradient_steps: int = describe("gradient steps per update", 1, at_most=10_000)
    target_update_interval: int = describe("env steps between target-network updates", 1000)
    tau: float = describe("target update: 1 copies theta (hard), below 1 moves theta^- by tau toward theta (soft)",
                          1.0)
    n_step: int = describe("n of the n-step returns (1: one-step targets)", 1, at_most=1000)
    prioritized: bool = describe("prioritised replay", False)
    per_alpha: float = describe("prioritised replay: P(i) proportional to p_i^alpha", 0.6)
    per_beta: float = describe("prioritised replay: beta of the importance weights when learning starts (it "
                               "rises linearly to 1 over per_beta_steps env steps)", 0.4)
    per_beta_steps: int = describe("prioritised replay: env steps over which beta reaches 1", 100_000)
    per_eps: float = describe("prioritised replay: p_i = |delta_i| (the per-sample loss for the distributional "
                                  "learners) + per_eps", 1e-6)
    max_grad_norm: float | None = describe("clip the gradient's global norm to this (None: off)", 10.0)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the Q-network after the encoder (none: the "
                                             "output layer right after it)", (64, 64))
    log_every: int = describe("env steps between log rows (an iteration: checkpoints and evaluations fall at its "
                              "ends)", 1000)
    buffer_in_checkpoint: str = describe("keep the replay buffer in checkpoints: auto (when it is at most 256 MiB), "
                                         "always or never", "auto")

    def __post_init__(self) -> None:
        check_replay_fields(self, allow_no_hidden=True)
        check(self.target_update_interval >= 1, "target_update_interval", self.target_update_interval, ">= 1")
        check(self.n_step >= 1, "n_step", self.n_step, ">= 1")
        check(0 <= self.per_alpha <= 1, "per_alpha", self.per_alpha, "in [0, 1]")
        check(0 <= self.per_beta <= 1, "per_beta", self.per_beta, "in [0, 1]")
        check(self.per_beta_steps >= 0, "per_beta_steps", self.per_beta_steps, ">= 0")
        check(self.per_eps > 0, "per_eps", self.per_eps, "> 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm,
              "> 0 or None")


@dataclass
class EpsilonGreedyConfig(ReplayConfig):
    """:class:`ReplayConfig` and the epsilon-greedy exploration of DQN, C51 and QR-DQN."""

    epsilon_start: float = describe("epsilon of epsilon-greedy at step 0 (the warm-up acts uniformly anyway)", 1.0)
    epsilon_end: float = describe("epsilon from step learning_starts + epsilon_steps on", 0.05)
    epsilon_steps: int = describe("epsilon falls linearly from start to end over the first learning_starts + "
                                  "epsilon_steps env steps", 10_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("epsilon_start", "epsilon_end"):
            check(0 <= getattr(self, name) <= 1, name, getattr(self, name), "in [0, 1]")
        check(self.epsilon_steps >= 0, "epsilon_steps", self.epsilon_steps, ">= 0")

    def epsilon_schedule(self) -> Schedule:
        """Epsilon falls linearly from epsilon_start (at step 0; the warm-up acts uniformly anyway) to epsilon_end at
        step learning_starts + epsilon_steps."""
        return Linear(self.epsilon_start, self.epsilon_end, self.learning_starts + self.epsilon_steps)


@dataclass
class ActorCriticReplayConfig:
    """The fields the off-policy actor-critics (DDPG, TD3, SAC, discrete SAC) share (Stable-Baselines3's names and
    defaults where it has them; one learning rate for actor, critics and temperature, as there).

    What :class:`OffPolicyLoop` also reads is fixed here as class constants, not config fields: one-step uniform
    replay, no gradient clipping, and no loop target updates (the agents update their targets themselves)."""

    n_step: ClassVar[int] = 1
    prioritized: ClassVar[bool] = False
    max_grad_norm: ClassVar[float | None] = None
    target_update_interval: ClassVar[int] = 1

    n_envs: int = describe("parallel environment copies", 1)
    buffer_size: int = describe("replay buffer capacity (transitions)", 1_000_000)
    learning_starts: int = describe("env steps of uniform random actions before learning starts", 100)
    batch_size: int = describe("transitions per gradient step", 256)
    lr: float = describe("Adam learning rate (actor, critics and the temperature)", 3e-4)
    gamma: float = describe("discount factor", 0.99)
    train_freq: int = describe("env steps between updates", 1)
    gradient_steps: int = describe("gradient steps per update", 1, at_most=10_000)
    tau: float = describe("Polyak rate of the target networks: theta' <- theta' + tau (theta - theta')", 0.005)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the actor and of each critic", (256, 256))
    log_every: int = describe("env steps between log rows (an iteration: checkpoints and evaluations fall at its "
                              "ends)", 1000)
    buffer_in_checkpoint: str = describe("keep the replay buffer in checkpoints: auto (when it is at most 256 MiB), "
                                         "always or never", "auto")

    def __post_init__(self) -> None:
        check_replay_fields(self)


def q_network_weights(in_features: int, hidden_sizes: Sequence[int], n_actions: int, n_atoms: int = 1,
                      dueling: bool = False, noisy: bool = False) -> int:
    """The number of weights of :func:`thorndike.core.q_heads.q_network`'s layers after the encoder, counted before
    building it, for :func:`require_memory`."""
    def dense(sizes: Sequence[int]) -> int:
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    if dueling and not hidden_sizes:  # each stream one linear layer on the encoder's features
        count = dense([in_features, n_atoms]) + dense([in_features, n_actions * n_atoms])
    elif dueling:  # the last hidden layer is each stream's own: V has n_atoms outputs, A n_actions * n_atoms
        shared = [in_features, *hidden_sizes[:-1]]
        count = dense(shared) + dense([shared[-1], hidden_sizes[-1], n_atoms]) + \
            dense([shared[-1], hidden_sizes[-1], n_actions * n_atoms])
    else:
        count = dense([in_features, *hidden_sizes, n_actions * n_atoms])
    return 2 * count if noisy else count  # a noisy layer learns mu and sigma


def stacked_frames(setup: Any, space: gym.Space) -> int:
    """S when the observations are stacks of S uint8 frames made by the env's last wrapper (the ``atari`` preset or
    ``frame_stack``, on either backend), so that the replay buffer stores each frame once (Atari's 100k transitions:
    0.7 GB instead of 5.6 GB); else 0 (whole observations). The wrapper, not the shape, decides: a [3, H, W] RGB
    image is not a stack of frames."""
    if setup is None or not is_image(space) or len(space.shape) != 3:
        return 0
    wrappers = resolve_wrappers(setup.wrappers)
    return int(space.shape[0]) if wrappers and getattr(wrappers[-1][1], "thorndike_frame_stack", False) else 0


def online_and_target(make: Callable[[], nn.Module], device: torch.device | str) -> tuple[nn.Module, nn.Module]:
    """Two networks from ``make`` on ``device``: the online one, and its target copy (the same weights, buffers
    included; no gradient: it changes only by target updates)."""
    online, target = make().to(device), make().to(device)
    hard_update(target, online)
    target.requires_grad_(False)
    return online, target


class OffPolicyLoop:
    """The loop a replay-based learner composes: it owns the replay buffer, the schedule and the checks on env data,
    and does what is the same for DQN, C51, QR-DQN, Rainbow and the off-policy actor-critics (storing a step,
    sampling a minibatch with its importance weights, a clipped optimiser step, target updates, the ``learn`` loop and
    its log rows). The agent keeps what differs: how it acts, its targets and its losses.

    ``config`` is a :class:`ReplayConfig` or an :class:`ActorCriticReplayConfig`; the latter fixes n-step returns,
    prioritised replay, gradient clipping and the target interval off as class constants (not fields). ``target``
    None: the agent updates its target networks itself (the actor-critics do, in their gradient steps), and the
    loop's target updates do nothing.
    """

    def __init__(self, agent: Any, envs: gym.vector.VectorEnv, config: ReplayConfig | ActorCriticReplayConfig,
                 online: nn.Module, target: nn.Module | None, optimizer: torch.optim.Optimizer,
                 epsilon: float | Schedule = 0.0) -> None:
        self.agent, self.config = agent, config
        self.online, self.target, self.optimizer = online, target, optimizer
        self._online_parameters = list(online.parameters())  # listed once: the module walk costs ~10 us a step
        rows = math.ceil(config.buffer_size / config.n_envs) * config.n_envs  # whole rows of n_envs transitions
        buffer_args = dict(capacity=rows, observation=envs.observation_space, action=envs.action_space,
                           n_envs=config.n_envs, device=agent.device, n_step=config.n_step,
                           gamma=config.gamma, frame_stack=stacked_frames(agent.env_setup, envs.observation_space))
        self.buffer = (PrioritizedReplayBuffer(**buffer_args, alpha=config.per_alpha, eps=config.per_eps)
                       if config.prioritized else ReplayBuffer(**buffer_args))
        self.schedule = OffPolicySchedule(
            config.n_envs, config.learning_starts, config.train_freq, config.gradient_steps,
            1 if config.tau < 1 else config.target_update_interval, epsilon)
        space = envs.observation_space
        self.checks = StepChecks(int(space.n) if isinstance(space, gym.spaces.Discrete) else None)
        self.action_space = envs.action_space
        self.discrete = isinstance(envs.action_space, gym.spaces.Discrete)
        if self.discrete:
            self.n_actions = int(envs.action_space.n)

    @staticmethod
    def require_networks(agent: Any, envs: gym.vector.VectorEnv, config: ReplayConfig, n_atoms: int = 1,
                         dueling: bool = False, noisy: bool = False) -> None:
        """Refuse, before allocating, networks (online and target, gradients, Adam's moments) that will not fit."""
        n_params = q_network_weights(make_encoder(envs.observation_space).out_features, config.hidden_sizes,
                                     int(envs.action_space.n), n_atoms, dueling, noisy)
        require_memory("the Q-network's weights (online and target), gradients and Adam moments",
                       tensor_bytes(5 * n_params), agent.device, {"hidden_sizes": tuple(config.hidden_sizes)},
                       f"{n_params:,} weights x 5 copies")

    def components(self) -> dict[str, Any]:
        """The buffer, when ``buffer_in_checkpoint`` keeps it (with it, resume is exact)."""
        keep = self.config.buffer_in_checkpoint
        if keep == "always" or (keep == "auto" and self.buffer.nbytes <= AUTO_BUFFER_BYTES):
            return {"buffer": self.buffer}
        return {}

    # ---- collect ----------------------------------------------------------------------------------------------

    def uniform_actions(self, n: int, generator: torch.Generator | None) -> Tensor:
        """``n`` uniform actions: Discrete indices, or Box actions uniform in [-1, 1] (the algorithm's units)."""
        if self.discrete:
            return torch.randint(self.n_actions, (n,), generator=generator, device=self.agent.device)
        shape = (n, *self.action_space.shape)
        return torch.rand(shape, generator=generator, device=self.agent.device) * 2.0 - 1.0

    def epsilon_greedy(self, greedy: Callable[[], Tensor], n: int, epsilon: float,
                       generator: torch.Generator | None) -> Tensor:
        """Each row the greedy action, or with probability epsilon a uniform one."""
        uniform = self.uniform_actions(n, generator)
        explore = torch.rand(n, generator=generator, device=self.agent.device) < epsilon
        return torch.where(explore, uniform, greedy())

    def greedy_or_epsilon(self, greedy: Tensor, deterministic: bool, epsilon: float,
                          generator: torch.Generator | None) -> Tensor:
        """An agent's ``policy``: the greedy actions (deterministic), or epsilon-greedy around them."""
        return greedy if deterministic else self.epsilon_greedy(lambda: greedy, len(greedy), epsilon, generator)

    def epsilon_column(self) -> dict[str, float]:
        """The log's epsilon column (for :meth:`learn`'s ``log``)."""
        return {"epsilon": self.schedule.epsilon(self.agent.global_step)}

    def act_epsilon_greedy(self, obs: Tensor, greedy: Callable[[Tensor], Tensor]) -> Tensor:
        """Uniform actions during the warm-up, then epsilon-greedy with the schedule's epsilon; ``greedy`` maps the
        observations to argmax actions (called only after the warm-up)."""
        agent = self.agent
        if self.schedule.random_actions(agent.global_step):
            return self.uniform_actions(obs.shape[0], agent.generator)
        return self.epsilon_greedy(lambda: greedy(obs), obs.shape[0], self.schedule.epsilon(agent.global_step),
                                   agent.generator)

    def store(self, actions: Tensor, env_actions: Tensor | None = None) -> dict[str, Tensor]:
        """Step every copy with ``actions`` (or ``env_actions``, when what the env takes differs from what is stored:
        the actor-critics store [-1, 1] and step with actions scaled to the bounds) and store the transitions
        (s' = the true next observation). Returns the step's ``info`` (episode ends, for per-copy noise states).

        What the env returned is checked once per chunk of steps and at the end of each iteration (before the
        loss is: a NaN from the env is named by step and copy, not found later as a NaN loss); until then, states
        out of range and NaN are mapped to harmless ones so that no encoder fails on them first."""
        agent = self.agent
        obs, step = agent.obs, agent.global_step + self.config.n_envs
        next_obs, rewards, terminated, truncated, info = agent.interaction.step(
            actions if env_actions is None else env_actions, step)
        if self.checks.add(step, observation=next_obs, final_observation=info["final_obs"], reward=rewards):
            self.checks.check(f"iteration {agent.iteration + 1}")
        agent.obs = self.checks.safe(next_obs)
        self.buffer.add(obs, actions, rewards, self.checks.safe(info["final_obs"]), terminated, truncated)
        return info

    # ---- update -----------------------------------------------------------------------------------------------

    def sample(self) -> tuple[dict[str, Tensor], Tensor | None]:
        """A minibatch and its importance weights (None without prioritised replay; beta rises from learning
        starts)."""
        config, agent = self.config, self.agent
        if not config.prioritized:
            return self.buffer.sample(config.batch_size, agent.generator), None
        beta = Linear(config.per_beta, 1.0, config.per_beta_steps)(max(agent.global_step - config.learning_starts, 0))
        batch = self.buffer.sample(config.batch_size, agent.generator, beta)
        return batch, batch["weights"].float()

    @staticmethod
    def bootstrap_discounts(batch: dict[str, Tensor]) -> Tensor:
        """gamma^m (1 - terminated): no bootstrap after a termination, from the true last s' after a truncation."""
        return torch.where(batch["terminated"], 0.0, batch["discounts"].float())

    def descend(self, per_sample: Tensor, weights: Tensor | None, batch: dict[str, Tensor],
                priorities: Tensor | None = None) -> Tensor:
        """One optimiser step on the mean of the (importance-weighted) per-sample losses, the gradient clipped;
        with prioritised replay the sampled priorities become ``priorities`` (default: the per-sample losses).
        Returns the loss, detached."""
        loss = (per_sample * weights).mean() if weights is not None else per_sample.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self._online_parameters, self.config.max_grad_norm)
        self.optimizer.step()
        if self.config.prioritized:
            self.buffer.update_priorities(batch["indices"], (per_sample if priorities is None else priorities).detach())
        return loss.detach()

    def captured_descent(self, per_sample_loss: Callable[[dict[str, Tensor]], tuple[Tensor, Tensor]],
                         name: str) -> Callable[[dict[str, Tensor], Tensor | None], Tensor]:
        """:meth:`descend` as one captured program (:mod:`thorndike.core.capture`): ``per_sample_loss(batch) ->
        (per-sample losses, priorities)``, the loss's gradient, the clip and Adam's update in one call of the
        returned ``descent(batch, weights) -> loss`` (detached); with prioritised replay the sampled priorities are
        updated after it, outside the program. For the online network's single optimiser."""
        step = GradientStep({"online": self.online}, self.optimizer, self.config.max_grad_norm)

        def loss(batch: dict[str, Tensor], weights: Tensor | None) -> tuple[Tensor, Tensor]:
            per_sample, priorities = per_sample_loss(batch)
            loss = (per_sample * weights).mean() if weights is not None else per_sample.mean()
            return loss, priorities.detach()

        program = capture(lambda batch, weights: step(loss, batch, weights), [step], self.agent.device, name)

        def descent(batch: dict[str, Tensor], weights: Tensor | None) -> Tensor:
            loss, priorities = program(batch, weights)
            if self.config.prioritized:
                self.buffer.update_priorities(batch["indices"], priorities)
            return loss

        return descent

    def update_target(self) -> None:
        """theta^- <- theta (tau = 1), or theta^- <- theta^- + tau (theta - theta^-); nothing without a target (the
        agent updates its own)."""
        if self.target is None:
            return
        if self.config.tau < 1:
            soft_update(self.target, self.online, self.config.tau)
        else:
            hard_update(self.target, self.online)

    # ---- the loop ---------------------------------------------------------------------------------------------

    def learn(self, total_steps: int, collect_step: Callable[[], None], gradient_step: Callable[[], Tensor],
              log: Callable[[], dict[str, float]] | None = None) -> None:
        """Until ``total_steps`` env steps (counting all copies) or the run's ``stop_return``: collect a vectorised
        step, then the gradient steps and target updates it makes due; a log row (the mean loss, the gradient steps
        and ``log()``) every ``log_every`` env steps (rounded up to whole vectorised steps)."""
        agent, config = self.agent, self.config
        steps_per_row = max(1, math.ceil(config.log_every / config.n_envs))
        with agent.session(total_steps) as run:
            while run.running():
                losses: list[Tensor] = []
                for _ in range(steps_per_row):
                    collect_step()
                    due = self.schedule.due(agent.global_step)
                    agent.global_step += config.n_envs
                    for _ in range(due.gradient_steps):
                        losses.append(gradient_step())
                    for _ in range(due.target_updates):
                        self.update_target()
                    if agent.global_step >= total_steps:
                        break
                self.checks.check(f"iteration {agent.iteration + 1}")
                loss = torch.stack(losses).mean() if losses else torch.tensor(math.nan)
                if losses:
                    agent.check_finite("loss", loss)
                run.log({"loss": float(loss), **(log() if log is not None else {}), "gradient_steps": len(losses)})
