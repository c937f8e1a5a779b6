"""REINFORCE: the Monte Carlo policy gradient, with reward-to-go, baselines and return normalisation.

Notes: 004 (REINFORCE pseudocode L886-L1031; "collect m trajectories", the estimate

    g_hat = 1/m sum_{i=1..m} sum_{t=0..H} grad log pi_theta(a_t^(i) | s_t^(i)) R(tau^(i))

L931; noise reduction with many trajectories, rewards normalised as R <- (R - mu) / sigma with all-equal returns
giving 0 L1115-L1118; credit assignment with the future rewards only, L1156-L1159 and its quiz L1161-L1238),
003 lecture 6 (L747-L789: the policy gradient theorem, REINFORCE, a baseline b(s_t) leaves the gradient unbiased
because E[grad log pi(a|s) b(s)] = 0 and lowers its variance), 000 lecture 3 (temporal decomposition, value-function
baselines), 001 unit 4.

Each iteration plays m = ``n_episodes`` whole episodes at once, one per env copy, cut at ``max_episode_steps`` (the
notes' horizon H), then weighs every step's grad log pi(a_t | s_t) by

- ``returns="total"``: the episode's whole return R(tau) = sum_t gamma^t r_t (the notes' first estimator), or
- ``returns="reward_to_go"``: G_t = sum_{k >= t} gamma^(k - t) r_k, the rewards that followed the action;

minus a baseline (``"none"``; ``"mean"``, the batch's mean weight, a constant; ``"value"``, a learned V(s_t) fitted
to G_t by ``value_steps`` Adam steps of squared error after each policy step), and, with ``normalize``, standardised
over the batch's steps (population std; all equal gives 0). The loss whose gradient is -g_hat is

    L(theta) = -1/m sum_i sum_t log pi_theta(a_t | s_t) A_t          (A_t: the weights, no gradient through them)

(a sum over time and a mean over episodes, as g_hat is; the 004 code's ``-(log_probs * returns).mean()`` divides by
the number of steps instead, which only rescales the learning rate). Steps count as in the cross-entropy methods:
an iteration of T lockstep steps (its longest episode) adds T * m to ``global_step``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.agent import Agent
from thorndike.config import check, check_limits, check_network, describe
from thorndike.core.actor_critic import ACTIVATIONS, ActorCritic
from thorndike.core.episodes import Sessions, play_sessions
from thorndike.core.networks import adam
from thorndike.core.resources import require_memory
from thorndike.core.returns import normalize, reward_to_go
from thorndike.core.spaces import storage_spec

__all__ = ["REINFORCE", "REINFORCEConfig", "episode_weights"]

RETURNS = ("total", "reward_to_go")
BASELINES = ("none", "mean", "value")


@dataclass
class REINFORCEConfig:
    """REINFORCE's hyperparameters: m episodes per update, the estimator's weights, the policy and its baseline."""

    n_episodes: int = describe("episodes m per update, played at once on m env copies", 16)
    returns: str = describe("what weighs grad log pi(a_t|s_t): total (the episode's return R(tau)) or reward_to_go "
                            "(G_t, the rewards from t on)", "reward_to_go")
    baseline: str = describe("subtracted from the weights: none, mean (the batch's mean weight) or value (a learned "
                             "V(s_t), fitted to G_t)", "value")
    normalize: bool = describe("standardise the weights over the batch: (A - mu) / sigma, all equal -> 0", True)
    gamma: float = describe("discount factor", 0.99)
    lr: float = describe("Adam learning rate of the policy", 1e-2)
    value_lr: float = describe("Adam learning rate of V (baseline value)", 1e-2)
    value_steps: int = describe("full-batch Adam steps on V's squared error per update (baseline value)", 5,
                                at_most=1000)
    ent_coef: float = describe("entropy bonus coefficient (0: the notes' estimator)", 0.0)
    max_episode_steps: int = describe("the horizon H: an episode still running after this many steps is cut", 500)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the policy and of V", (64,))
    activation: str = describe("hidden activation: tanh or relu", "tanh")
    log_std_init: float = describe("initial log std of the Gaussian policy (continuous actions)", 0.0)

    def __post_init__(self) -> None:
        check_limits(self)
        check(self.n_episodes >= 1, "n_episodes", self.n_episodes, ">= 1")
        check(self.returns in RETURNS, "returns", self.returns, " or ".join(RETURNS))
        check(self.baseline in BASELINES, "baseline", self.baseline, ", ".join(BASELINES))
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.value_lr > 0, "value_lr", self.value_lr, "> 0")
        check(self.value_steps >= 1, "value_steps", self.value_steps, ">= 1")
        check(self.ent_coef >= 0, "ent_coef", self.ent_coef, ">= 0")
        check(self.max_episode_steps >= 1, "max_episode_steps", self.max_episode_steps, ">= 1")
        check_network(self, ACTIVATIONS)


def episode_weights(rewards: Tensor, active: Tensor, gamma: float, returns: str = "reward_to_go",
                    baseline: Tensor | float | None = None, normalize_weights: bool = False,
                    to_go: Tensor | None = None) -> Tensor:
    """The weight A_t of grad log pi(a_t | s_t) for every step ``[T, N]`` of N whole episodes (0 where not active).

    ``rewards`` ``[T, N]`` are 0 after an episode ended (as :class:`~thorndike.core.episodes.Sessions` keeps them).
    ``returns="total"``: R(tau) = sum_t gamma^t r_t at every step of the episode; ``"reward_to_go"``: G_t. Then the
    ``baseline`` (a number, or ``[T, N]`` values b(s_t)) is subtracted, and with ``normalize_weights`` the active
    weights are standardised together (population std; all equal gives 0, 004 L1118). ``to_go``: G_t of these
    rewards when the caller has it already (a loop over the steps: worth computing once per batch).
    """
    if to_go is None:
        to_go = reward_to_go(rewards, gamma)  # G_t; the zeros after an episode's end add nothing to its G_t
    weights = to_go if returns == "reward_to_go" else to_go[:1].expand_as(to_go)
    if baseline is not None:
        weights = weights - baseline
    if normalize_weights:
        weights = torch.zeros_like(weights).masked_scatter(active, normalize(weights[active]))
    return torch.where(active, weights, 0.0)


class REINFORCE(Agent):
    """REINFORCE: m whole episodes per update, grad log pi weighted by returns (reward-to-go) minus a baseline."""

    name = "reinforce"
    Config = REINFORCEConfig
    action_spaces = (gym.spaces.Discrete, gym.spaces.Box)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_episodes, sized_by={"n_episodes": config.n_episodes})
        obs_shape, obs_dtype = storage_spec(envs.observation_space)
        # an iteration keeps the observations, actions, rewards and masks of its m episodes, [H, m] each
        per_step = torch.Size(obs_shape).numel() * obs_dtype.itemsize + 8 + 8 + 1
        require_memory("the episodes of an iteration", config.max_episode_steps * config.n_episodes * per_step,
                       self.device, {"max_episode_steps": config.max_episode_steps, "n_episodes": config.n_episodes})
        # pi is the actor (with its log std for Box actions), V the critic: each has its own Adam and learning rate
        self.model = ActorCritic(envs.observation_space, envs.action_space, config.hidden_sizes, config.activation,
                                 config.log_std_init).to(self.device)
        critic = set(self.model.critic.parameters())
        self.policy_optimizer = adam([p for p in self.model.parameters() if p not in critic], lr=config.lr,
                                     device=self.device)
        self.value_optimizer = adam(self.model.critic.parameters(), lr=config.value_lr, device=self.device)
        self.components = {"model": self.model, "policy_optimizer": self.policy_optimizer,
                           "value_optimizer": self.value_optimizer}

    # ---- collect -> targets -> update -> log ----------------------------------------------------------------

    @torch.no_grad()
    def sample_actions(self, obs: Tensor) -> Tensor:
        """a ~ pi(. | s) for every copy."""
        return self.model.distribution(obs).sample(self.generator)

    def collect(self) -> Sessions:
        """Reset every copy and play one whole episode in each with the current policy, all in lockstep."""
        space = self.envs.single_observation_space  # Discrete states are checked to lie in range
        sessions, self.obs = play_sessions(self.envs, self.sample_actions, self.config.max_episode_steps,
                                           self.config.gamma, first_step=self.global_step,
                                           step_size=self.config.n_episodes, where=f"iteration {self.iteration + 1}",
                                           n_states=int(space.n) if isinstance(space, gym.spaces.Discrete) else None)
        return sessions

    def targets(self, sessions: Sessions) -> tuple[Tensor, Tensor]:
        """The weights A_t ``[T, m]`` of the policy step and V's regression targets G_t ``[T, m]``."""
        config = self.config
        to_go = reward_to_go(sessions.rewards, config.gamma)  # G_t once: the weights and V's targets start from it
        baseline: Tensor | float | None = None
        if config.baseline == "value":
            with torch.no_grad():
                baseline = self.values(sessions.states).double()
        elif config.baseline == "mean":
            raw = episode_weights(sessions.rewards, sessions.active, config.gamma, config.returns, to_go=to_go)
            baseline = raw[sessions.active].mean()
        weights = episode_weights(sessions.rewards, sessions.active, config.gamma, config.returns, baseline,
                                  config.normalize, to_go=to_go)
        return weights, to_go

    def values(self, states: Tensor) -> Tensor:
        """V(s) for a ``[T, m, ...]`` batch of states -> ``[T, m]``."""
        return self.model.value(states.flatten(0, 1)).view(states.shape[:2])

    def update(self, sessions: Sessions, weights: Tensor, value_targets: Tensor) -> dict[str, float]:
        """One policy step on -1/m sum log pi(a_t | s_t) A_t (minus the entropy bonus), then V's regression steps."""
        config = self.config
        active = sessions.active
        dist = self.model.distribution(sessions.states[active])
        log_probs = dist.log_prob(sessions.actions[active])
        policy_loss = -(log_probs * weights[active].to(log_probs.dtype)).sum() / config.n_episodes
        entropy = dist.entropy().mean()
        loss = policy_loss - config.ent_coef * entropy if config.ent_coef > 0 else policy_loss
        self.policy_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.policy_optimizer.step()
        stats = {"policy_loss": policy_loss.detach(), "entropy": entropy.detach()}
        if config.baseline == "value":
            states, targets = sessions.states[active], value_targets[active].float()
            for _ in range(config.value_steps):
                value_loss = (self.model.value(states) - targets).square().mean()
                self.value_optimizer.zero_grad(set_to_none=True)
                value_loss.backward()
                self.value_optimizer.step()
            stats["value_loss"] = value_loss.detach()
        values = torch.stack(list(stats.values()))
        self.check_finite("loss", values)
        return dict(zip(stats, values.tolist(), strict=True))  # one host sync per iteration

    def learn(self, total_steps: int) -> REINFORCE:
        """Iterate until ``total_steps`` env steps (all copies' lockstep steps) or the run's ``stop_return``."""
        with self.session(total_steps) as run:
            while run.running():
                sessions = self.collect()
                weights, value_targets = self.targets(sessions)
                stats = self.update(sessions, weights, value_targets)
                self.global_step += sessions.steps * self.config.n_episodes
                self.ledger.record(sessions.as_finished_episodes(), self.global_step)
                run.log({"return_mean": float(sessions.returns.mean()),
                         "episode_length": float(sessions.lengths.double().mean()), **stats})
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """The most probable action (deterministic) or a sample of pi(. | s)."""
        obs = obs.to(self.device)
        return self.model.greedy(obs) if deterministic else self.model.distribution(obs).sample(generator)
