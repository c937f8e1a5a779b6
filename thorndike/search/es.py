"""Evolution strategies (004, "Evolution strategies"; Salimans et al. 2017, "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning").

Notes: smooth the return with Gaussian noise of scale sigma, J(theta) = E_eps[F(theta + sigma eps)], and climb its
gradient, estimated from a population of perturbations with no backpropagation:

    grad J(theta) = 1 / sigma E_eps[F(theta + sigma eps) eps]  ~  g = 1 / (P sigma) sum_i F_i eps_i

with, as in the paper:

- **antithetic sampling**: P / 2 noise vectors eps_j ~ N(0, I) and their negatives -eps_j, so the P perturbations
  come in mirrored pairs (the even part of F cancels out of g, lowering its variance);
- **centred-rank fitness shaping**: F_i is not the return but its rank among the P returns mapped linearly onto
  [-0.5, 0.5] (the worst -0.5, the best +0.5), which makes g invariant to any increasing transformation of the
  return and robust to outliers (:func:`centred_ranks`; tied returns share their average rank);
- **weight decay**: the step descends -g + weight_decay * theta (the paper's L2 coefficient);
- **Adam** on that descent direction: ``torch.optim.Adam`` on the mean weights theta held as a Parameter, so the
  optimiser's moments are a checkpoint component.

Decided here: theta starts at zero weights. Many runs at once, as hill climbing: ``n_runs`` independent searches,
each with its own theta (rows of one ``[R, n]`` Parameter; Adam is element-wise, so one optimiser over all rows is
R independent optimisers); all runs' perturbations are one population of ``n_runs * population`` candidates played by
one :func:`~thorndike.core.population.evaluate_population` call on ``n_runs * population * k`` env copies (candidate
``r * population + i`` is run r's i-th perturbation; i < P / 2 are +eps, the rest their mirrors). Steps count per
run: an iteration of T lockstep steps (its longest episode) adds T * population * k to ``global_step``.
``policy()`` acts with theta (the search distribution's mean), never a perturbation.

Measured on CartPole-v1 (defaults: linear policy, P = 20, sigma 0.1, Adam learning rate 0.1, weight decay 0.005,
k = 1; max_episode_steps 500; solved = greedy evaluation of theta, mean of 20 episodes >= 475, checked after every
iteration, budget 250 000 steps per seed, 2-10 s each): 7 of seeds 0-9 solved, at 173 820, -, -, 72 880, 174 300,
107 040, 120 800, 179 900, - and 93 740 steps; seeds 1, 2 and 8 reached greedy means of 450, 357 and 360 by 250 000.
(The paper's P = 50, learning rate 0.05 solved none of seeds 0-9 within 150 000 steps: too few Adam steps.)
ES is slower than parameter-space CEM here (all 10 within 150 000): its steps are small and fixed in size, where
CEM jumps straight to the elites' mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import torch
from torch import Tensor, nn

from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core.population import PopulationPolicy, evaluate_population
from thorndike.tabular.base import run_of_row

__all__ = ["ES", "ESConfig", "MeanWeights", "antithetic_noise", "centred_ranks", "es_gradient"]


@dataclass
class ESConfig:
    """Evolution strategies' hyperparameters: the population, the noise, the optimiser, the policy, the runs."""

    population: int = describe("perturbations per iteration (per run): P / 2 noise vectors and their negatives; even",
                               20)
    sigma: float = describe("std of the Gaussian perturbations theta + sigma * eps", 0.1)
    learning_rate: float = describe("Adam's step size", 0.1)
    weight_decay: float = describe("L2 coefficient: the step descends -g + weight_decay * theta", 0.005)
    episodes_per_candidate: int = describe("episodes each perturbation is judged on, by their mean return", 1)
    policy: str = describe("linear (obs -> logits or means, with bias) or mlp (one tanh hidden layer)", "linear")
    hidden_size: int = describe("the mlp policy's hidden units", 16)
    deterministic: bool = describe("perturbations act greedily (argmax of the logits) instead of sampling softmax",
                                   True)
    max_episode_steps: int = describe("an episode still running after this many steps is cut there", 1000)
    n_runs: int = describe("independent searches at once (each with its own theta and Adam moments)", 1)

    def __post_init__(self) -> None:
        check(self.population >= 2 and self.population % 2 == 0, "population", self.population,
              "even and >= 2 (antithetic pairs)")
        check(self.sigma > 0, "sigma", self.sigma, "> 0")
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        check(self.episodes_per_candidate >= 1, "episodes_per_candidate", self.episodes_per_candidate, ">= 1")
        check(self.policy in ("linear", "mlp"), "policy", self.policy, "linear or mlp")
        check(self.hidden_size >= 1, "hidden_size", self.hidden_size, ">= 1")
        check(self.max_episode_steps >= 1, "max_episode_steps", self.max_episode_steps, ">= 1")
        check(self.n_runs >= 1, "n_runs", self.n_runs, ">= 1")


# ---- the math of one iteration (pure functions, tested by hand) ---------------------------------------------------


def centred_ranks(x: Tensor) -> Tensor:
    """Centred ranks along the last dimension: rank 0 (smallest) .. P - 1 (largest) mapped to rank / (P - 1) - 0.5,
    in [-0.5, 0.5] and summing to 0.

    Ties get their average rank: rank_i = #{j: x_j < x_i} + (#{j: x_j == x_i} - 1) / 2, so tied values get the same
    fitness and the ranks still sum to P (P - 1) / 2. ``x`` ``[..., P]`` with P >= 2 -> float64 ``[..., P]``.
    Compares all pairs (P^2 per row, no loop).
    """
    p = x.shape[-1]
    if p < 2:
        raise ValueError(f"centred ranks need at least 2 values, got {p}")
    xi, xj = x.unsqueeze(-1), x.unsqueeze(-2)
    below = (xj < xi).sum(-1).double()
    equal = (xj == xi).sum(-1).double()
    return (below + (equal - 1) / 2) / (p - 1) - 0.5


def antithetic_noise(n_runs: int, population: int, n: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> Tensor:
    """``[R, P, n]``: P / 2 noise vectors eps ~ N(0, I) followed by their negatives (row i + P / 2 is -row i)."""
    eps = torch.randn((n_runs, population // 2, n), generator=generator, device=device)
    return torch.cat([eps, -eps], dim=1)


def es_gradient(fitness: Tensor, eps: Tensor, sigma: float) -> Tensor:
    """g = 1 / (P sigma) sum_i F_i eps_i: ``fitness`` ``[..., P]``, ``eps`` ``[..., P, n]`` -> ``[..., n]`` (the dtype
    of ``eps``)."""
    p = fitness.shape[-1]
    return torch.einsum("...p,...pn->...n", fitness.to(eps.dtype), eps) / (p * sigma)


# ---- state kept across iterations (checkpoint components) --------------------------------------------------------


class MeanWeights(nn.Module):
    """Each run's search mean theta ``[R, n]`` as one Parameter, the thing Adam steps."""

    def __init__(self, theta: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta)


# ---- the agent ---------------------------------------------------------------------------------------------------


class ES(Agent):
    """OpenAI-style evolution strategies: antithetic Gaussian perturbations, centred ranks, Adam on the estimate."""

    name = "es"
    Config = ESConfig
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete, gym.spaces.Box)
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)

    def build(self) -> None:
        config = self.config
        self.connect_env(self.n_env_copies())  # perturbation p plays copies p * k .. p * k + k - 1
        envs = self.envs
        hidden = config.hidden_size if config.policy == "mlp" else 0
        self.population = PopulationPolicy(envs.single_observation_space, envs.single_action_space, hidden)
        self.mean = MeanWeights(self.population.initial_weights(config.n_runs, self.device))
        self.optimizer = torch.optim.Adam(self.mean.parameters(), lr=config.learning_rate)
        self.components = {"mean": self.mean, "optimizer": self.optimizer}

    def n_env_copies(self) -> int:
        """population * episodes_per_candidate env copies per run."""
        config = self.config
        return config.n_runs * config.population * config.episodes_per_candidate

    # ---- collect -> targets -> update -> log --------------------------------------------------------------------

    def learn(self, total_steps: int) -> ES:
        """Iterate until every run has taken ``total_steps`` env steps (counted per run; see the module docstring)."""
        config, theta = self.config, self.mean.theta
        R, P, k = config.n_runs, config.population, config.episodes_per_candidate
        with self.session(total_steps) as run:
            while run.running():
                eps = antithetic_noise(R, P, theta.shape[1], self.generator, self.device)  # collect
                candidates = theta.detach().unsqueeze(1) + config.sigma * eps
                returns, lengths = evaluate_population(self.envs, self.population, candidates.reshape(R * P, -1), k,
                                                       config.max_episode_steps, self.generator, config.deterministic)
                f = returns.mean(1).view(R, P)
                fitness = centred_ranks(f)  # targets: shaped fitness, then the gradient estimate
                g = es_gradient(fitness, eps, config.sigma)
                self.optimizer.zero_grad(set_to_none=False)
                theta.grad = -g + config.weight_decay * theta.detach()  # update: Adam descends -g + wd theta
                self.optimizer.step()
                self.global_step += int(lengths.max()) * P * k
                self.ledger.record({"done": torch.ones_like(lengths.view(-1), dtype=torch.bool),
                                    "episode_return": returns.view(-1), "episode_length": lengths.view(-1)},
                                   self.global_step)
                run.log({
                    "candidate_return_mean": float(f.mean()),
                    "candidate_return_max": float(f.max(1).values.mean()),
                    "grad_norm": float(g.norm(dim=1).mean()),
                    "theta_norm": float(theta.detach().norm(dim=1).mean()),
                })
        return self

    # ---- acting -------------------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """Row ``b`` acts with run ``b % n_runs``'s theta, the mean weights."""
        obs = obs.to(self.device)
        weights = self.mean.theta.detach()[run_of_row(len(obs), self.config.n_runs, self.device)]
        actions = self.population.act(weights, obs.unsqueeze(1), deterministic, generator)
        return actions.squeeze(1)
