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

Measured on CartPole-v1 (defaults: linear policy, P = 10, sigma 0.2, Adam learning rate 0.1, weight decay 0.005,
k = 1; max_episode_steps 500; solved = greedy evaluation of theta, mean of 20 episodes >= 475, checked after every
iteration, budget 250 000 steps per seed): 9 of seeds 0-9 solved, at 76 290, 131 500, 56 340, 222 470, 157 370,
40 470, 74 440, -, 64 510 and 46 520 steps (seed 7 did not within 250 000). Earlier settings did worse: P = 20,
sigma 0.1 solved 7 of 10 within 250 000, and the paper's P = 50, learning rate 0.05 none within 150 000 (too few
Adam steps).
ES is slower than parameter-space CEM here (all 10 within 150 000): its steps are small and fixed in size, where
CEM jumps straight to the elites' mean. With ``benchmarks/search_learning.py`` (checked every 50 episodes, budget
2500 episodes) all 10 solved, seed 7 at 1200 episodes (383 060 steps), the others within 900 episodes.

Measured with ``benchmarks/search_learning.py`` and the tuned values in ``thorndike/configs/es.yaml`` (solved =
greedy evaluation of theta, mean of 20 episodes from random starts; seeds 0-9; learning wall time on 2 CPU cores
shared with other jobs):

- Pendulum-v1 (>= -200; MLP of 16 units, P = 100, k = 2, sigma 0.2, learning rate 0.05; checked every 5000
  episodes, budget 150 000 episodes = 750 iterations): all 10 solved, at 60 000, 80 000, 60 000, 40 000, 35 000,
  100 000, 50 000, 85 000, 60 000 and 75 000 episodes (median 60 000), all 10 still at or above -200 at the budget
  (-146 to -193); 41-44 s of learning per seed. With P = 50 (budget 100 000) 8 solved but only 6 stayed there
  (seeds 1 and 8 fell back to -218 and -241 after solving, seed 6 stuck at -343, seed 9 ended at -205); P = 50 with
  learning rate 0.03 solved the first 7 seeds it was run on and kept them (stopped there, 75-167 s each). Over 10
  runs of one agent: sigma 0.3 solved 1 within 100 000 episodes; observations scaled onto [-1, 1] 1, a 32-unit MLP
  1, k = 4 3 within 60 000; P = 20, k = 1, sigma 0.1 reached -200 in 7 within 30 000 but kept it in only 4.
- MountainCarContinuous-v0 (>= 90; linear policy on observations scaled onto [-1, 1], ``obs_scaling`` bounds, P = 50,
  sigma 0.5, learning rate 0.1; checked every 50 episodes): all 10 solved within 500 episodes (250-500, median 300;
  an iteration counts P x 999 steps while any perturbation misses the flag) and all at 95.1-96.2 after 1000
  episodes; 4-13 s of learning per seed. On raw observations no setting tried solved any of 10 runs (16- and
  64-unit MLPs, P 100-500, sigma 0.5-2, learning rates 0.05-1): random perturbations reach the flag 1-4 % of the
  time (the velocity, within +-0.07, barely moves the action), most others push hard for all 999 steps (median
  return -75 to -90), and theta wandered without ever reaching the flag itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thorndike.config import check, describe
from thorndike.search.base import PopulationConfig, PopulationSearch

__all__ = ["ES", "ESConfig", "MeanWeights", "antithetic_noise", "centred_ranks", "es_gradient"]


@dataclass
class ESConfig(PopulationConfig):
    """Evolution strategies' hyperparameters: the population, the noise, the optimiser, the policy, the runs."""

    population: int = describe("perturbations per iteration (per run): P / 2 noise vectors and their negatives; even",
                               10)
    sigma: float = describe("std of the Gaussian perturbations theta + sigma * eps", 0.2)
    learning_rate: float = describe("Adam's step size", 0.1)
    weight_decay: float = describe("L2 coefficient: the step descends -g + weight_decay * theta", 0.005)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.population >= 2 and self.population % 2 == 0, "population", self.population,
              "even and >= 2 (antithetic pairs)")
        check(self.sigma > 0, "sigma", self.sigma, "> 0")
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")


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


class ES(PopulationSearch):
    """OpenAI-style evolution strategies: antithetic Gaussian perturbations, centred ranks, Adam on the estimate."""

    name = "es"
    Config = ESConfig

    def build(self) -> None:
        super().build()  # the envs and the batched policy
        config = self.config
        self.mean = MeanWeights(self.population.initial_weights(config.n_runs, self.device))
        self.optimizer = torch.optim.Adam(self.mean.parameters(), lr=config.learning_rate)
        self.components = {"mean": self.mean, "optimizer": self.optimizer}

    def candidates_per_run(self) -> int:
        return self.config.population

    def acting_weights(self) -> Tensor:
        """Each run's theta, the mean weights."""
        return self.mean.theta.detach()

    # ---- collect -> targets -> update -> log --------------------------------------------------------------------

    def learn(self, total_steps: int) -> ES:
        """Iterate until every run has taken ``total_steps`` env steps (counted per run; see the module docstring)."""
        config, theta = self.config, self.mean.theta
        R, P = config.n_runs, config.population
        with self.session(total_steps) as run:
            while run.running():
                eps = antithetic_noise(R, P, theta.shape[1], self.generator, self.device)  # collect
                f = self.play(theta.detach().unsqueeze(1) + config.sigma * eps)
                fitness = centred_ranks(f)  # targets: shaped fitness, then the gradient estimate
                g = es_gradient(fitness, eps, config.sigma)
                self.optimizer.zero_grad(set_to_none=False)
                theta.grad = -g + config.weight_decay * theta.detach()  # update: Adam descends -g + wd theta
                self.optimizer.step()
                run.log({
                    "candidate_return_mean": float(f.mean()),
                    "candidate_return_max": float(f.max(1).values.mean()),
                    "grad_norm": float(g.norm(dim=1).mean()),
                    "theta_norm": float(theta.detach().norm(dim=1).mean()),
                })
        return self
