"""The cross-entropy method in parameter space (003 lecture 1, "CEM"; 004, black-box optimisation).

Notes: keep a distribution over policy weights, sample a population from it, keep the best few, and refit the
distribution to them. Here the distribution is a diagonal Gaussian N(mu, diag(sigma^2)) over the flat weight vector
theta of a :class:`~thorndike.core.population.PopulationPolicy`. Each iteration of each run:

    theta_i = mu + sigma * eps_i,  eps_i ~ N(0, I),  i = 1..P            (P = ``population``)
    F_i = mean return of theta_i over k episodes                          (k = ``episodes_per_candidate``)
    E = the n_elite = ceil(elite_frac * P) samples of highest F_i
    mu_fit = mean(E),  sigma_fit = std(E)                                 (per weight; the maximum-likelihood fit)
    mu    <- (1 - alpha) mu    + alpha mu_fit                             (smoothing, ``alpha``; 1: no memory)
    sigma <- sqrt(((1 - alpha) sigma + alpha sigma_fit)^2 + Z_t)          (extra noise on the variance)
    Z_t = extra_noise * max(0, 1 - t / extra_noise_iterations)            (t = 0, 1, ... iterations done)

The extra variance Z_t (Szita and Lorincz 2006, "Learning Tetris using the noisy cross-entropy method") keeps the
Gaussian from collapsing onto the first lucky elites; it decays linearly from ``extra_noise`` to 0 over
``extra_noise_iterations`` iterations and is 0 afterwards.

Decided here:

- mu starts at zero weights, sigma at ``sigma_init`` for every weight.
- The elite fit is the population std (divide by n_elite, the Gaussian's maximum-likelihood estimate), so n_elite = 1
  gives sigma_fit = 0 and only the smoothing and the extra noise keep the search going. Elites are chosen by a
  stable descending sort: among samples tied at the cut the lowest index is kept.
- **Acting.** ``policy()`` acts with mu, the distribution's mean, not the best sample seen so far. The best sample's
  F is one (or k) lucky episodes, the same trap as hill climbing's G_best; mu is the average of many good samples and
  is what the search converges to. The best-so-far weights and their F are still kept (``best_theta``,
  ``best_return``) and logged.
- Many runs at once, as hill climbing: ``n_runs`` independent searches, each with its own mu and sigma; all runs'
  samples are one population of ``n_runs * population`` candidates, played by one
  :func:`~thorndike.core.population.evaluate_population` call on ``n_runs * population * k`` env copies (candidate
  ``r * population + i`` is run r's i-th sample). Steps count per run: an iteration of T lockstep steps (its longest
  episode) adds T * population * k to ``global_step``.

Measured on CartPole-v1 (defaults: linear policy, P = 50, elite_frac 0.2, sigma_init 1, alpha 1, extra_noise 0.1
over 10 iterations, k = 1; max_episode_steps 500; solved = greedy evaluation of mu, mean of 20 episodes >= 475,
checked after every iteration, budget 150 000 steps per seed, about 1 s each): all 10 of seeds 0-9 solved, at
93 100, 63 150, 83 350, 115 400, 84 100, 79 200, 134 600, 71 150, 80 550 and 74 300 steps (4-8 iterations: an
iteration of P = 50 samples costs up to 25 000 steps once they balance the pole).

Measured with ``benchmarks/search_learning.py`` and the tuned values in ``thorndike/configs/param_cem.yaml`` (solved
= greedy evaluation of mu, mean of 20 episodes from random starts; seeds 0-9; learning wall time on 2 CPU cores shared
with other jobs):

- Pendulum-v1 (>= -200; MLP of 16 units, k = 5, extra variance 0.2 that does not decay within the budget, checked
  every 5000 episodes, budget 150 000 episodes = 600 iterations): all 10 solved, at 30 000, 10 000, 25 000, 30 000,
  145 000, 90 000, 25 000, 30 000, 75 000 and 40 000 episodes (median 30 000), and all 10 still at or above -200
  at the budget (-125 to -189); 34-36 s of learning per seed. The defaults' schedule (extra variance 0.1 decaying
  over 10 iterations; with k = 3) collapsed the Gaussian before a swing-up was found (-770 to -970 after 60 000
  episodes, 3 of 3 runs); a constant 0.05, 0.1, 0.2 solved 5, 5, 6 of 10 runs within 30 000 episodes; 0.4 did
  worse than 0.2, and so did 0.2 decaying over 400 iterations.
- MountainCarContinuous-v0 (>= 90; MLP of 16 units on observations scaled onto [-1, 1], ``obs_scaling`` bounds):
  all 10 solved within 300 episodes (one to six iterations, median two; an iteration counts P x 999 steps while
  any sample misses the flag), all 10 at 93.0-93.8 after 1000 episodes; 8-11 s of learning per seed. On raw
  observations random MLPs reach the flag 1-4 % of the time for sigma_init 1-3 (the velocity lies within +-0.07),
  and when no sample of the first iterations does, the elites are the samples that push least and mu collapses onto
  doing nothing: 8 of 10 runs solved with P = 100 and elite_frac 0.1 within 3000 episodes, 10 of 10 only with a
  32- or 64-unit MLP, elite_frac 0.05 and an extra variance of 1 over 20 iterations (within 3500 episodes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.config import check, describe
from thorndike.search.base import PopulationConfig, PopulationSearch, SearchState

__all__ = ["CEMState", "ParamCEM", "ParamCEMConfig", "extra_variance", "n_elites", "refit", "select_elites"]


@dataclass
class ParamCEMConfig(PopulationConfig):
    """Parameter-space CEM's hyperparameters: the population, the elite fraction, the Gaussian's schedule, the
    policy, the runs."""

    population: int = describe("weight vectors sampled per iteration (per run)", 50)
    elite_frac: float = describe("fraction of the population kept as elites: the top ceil(elite_frac * P)", 0.2)
    sigma_init: float = describe("initial std of every weight (mu starts at zero)", 1.0)
    alpha: float = describe("smoothing: mu, sigma <- (1 - alpha) old + alpha fitted (1: refit from scratch)", 1.0)
    extra_noise: float = describe("extra variance added to sigma^2 at iteration 0, decaying linearly to 0", 0.1)
    extra_noise_iterations: int = describe("iterations over which the extra variance decays to 0 (0: none)", 10)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.population >= 2, "population", self.population, ">= 2")
        check(0 < self.elite_frac <= 1, "elite_frac", self.elite_frac, "in (0, 1]")
        check(self.sigma_init > 0, "sigma_init", self.sigma_init, "> 0")
        check(0 < self.alpha <= 1, "alpha", self.alpha, "in (0, 1]")
        check(self.extra_noise >= 0, "extra_noise", self.extra_noise, ">= 0")
        check(self.extra_noise_iterations >= 0, "extra_noise_iterations", self.extra_noise_iterations, ">= 0")


# ---- the math of one iteration (pure functions, tested by hand) ---------------------------------------------------


def n_elites(population: int, elite_frac: float) -> int:
    """ceil(elite_frac * P), at least 1 (the float product is rounded to 9 places first, so 0.2 * 50 is 10)."""
    return max(1, math.ceil(round(elite_frac * population, 9)))


def select_elites(samples: Tensor, returns: Tensor, n_elite: int) -> Tensor:
    """Each run's ``n_elite`` samples of highest return: ``samples`` ``[R, P, n]``, ``returns`` ``[R, P]`` ->
    ``[R, n_elite, n]``, best first. Ties at the cut keep the lowest index (a stable descending sort)."""
    order = torch.sort(returns, dim=1, descending=True, stable=True).indices[:, :n_elite]
    return samples.gather(1, order.unsqueeze(2).expand(-1, -1, samples.shape[2]))


def extra_variance(extra_noise: float, extra_noise_iterations: int, iteration: int) -> float:
    """Z_t = extra_noise * max(0, 1 - t / extra_noise_iterations); 0 when ``extra_noise_iterations`` is 0."""
    if extra_noise_iterations <= 0:
        return 0.0
    return extra_noise * max(0.0, 1.0 - iteration / extra_noise_iterations)


def refit(mu: Tensor, sigma: Tensor, samples: Tensor, returns: Tensor, n_elite: int, alpha: float,
          extra_var: float) -> tuple[Tensor, Tensor]:
    """One CEM update of each run's Gaussian: ``mu``, ``sigma`` ``[R, n]``, ``samples`` ``[R, P, n]``, ``returns``
    ``[R, P]`` -> the new (mu, sigma).

    mu <- (1 - alpha) mu + alpha mean(elites); sigma <- sqrt(((1 - alpha) sigma + alpha std(elites))^2 + extra_var),
    with the population std (divide by n_elite).
    """
    elites = select_elites(samples, returns, n_elite)
    mu_fit = elites.mean(1)
    sigma_fit = elites.std(1, correction=0)
    mu_new = (1 - alpha) * mu + alpha * mu_fit
    sigma_new = ((1 - alpha) * sigma + alpha * sigma_fit).square().add(extra_var).sqrt()
    return mu_new, sigma_new


# ---- state kept across iterations (a checkpoint component) -------------------------------------------------------


class CEMState(SearchState):
    """Each run's Gaussian ``mu``, ``sigma`` ``[R, n]``, the iterations done ``t`` (int64 scalar) and the best sample
    seen ``best_theta`` ``[R, n]`` with its return ``best_return`` ``[R]`` (float64, -inf before the first)."""

    NAMES = ("mu", "sigma", "t", "best_theta", "best_return")

    def __init__(self, mu: Tensor, sigma_init: float) -> None:
        self.mu = mu
        self.sigma = torch.full_like(mu, sigma_init)
        self.t = torch.zeros((), dtype=torch.int64, device=mu.device)
        self.best_theta = mu.clone()
        self.best_return = torch.full((mu.shape[0],), float("-inf"), dtype=torch.float64, device=mu.device)


# ---- the agent ---------------------------------------------------------------------------------------------------


class ParamCEM(PopulationSearch):
    """The cross-entropy method over policy weights: sample from N(mu, sigma^2), refit it to the elites."""

    name = "param_cem"
    Config = ParamCEMConfig

    def build(self) -> None:
        super().build()  # the envs and the batched policy
        config = self.config
        self.state = CEMState(self.population.initial_weights(config.n_runs, self.device), config.sigma_init)
        self.n_elite = n_elites(config.population, config.elite_frac)
        self.components = {"cem": self.state}

    def candidates_per_run(self) -> int:
        return self.config.population

    def acting_weights(self) -> Tensor:
        """Each run's mu, the Gaussian's mean (see the module docstring)."""
        return self.state.mu

    # ---- collect -> targets -> update -> log --------------------------------------------------------------------

    def sample(self) -> Tensor:
        """``[R, P, n]``: mu + sigma * eps for each run's P samples, eps ~ N(0, I)."""
        return self.gaussian_candidates(self.state.mu, self.state.sigma)

    def learn(self, total_steps: int) -> ParamCEM:
        """Iterate until every run has taken ``total_steps`` env steps (counted per run; see the module docstring)."""
        config, state = self.config, self.state
        R = config.n_runs
        with self.session(total_steps) as run:
            while run.running():
                samples = self.sample()  # collect: all runs' samples are one population
                f = self.play(samples)  # targets: each sample's mean return over k episodes
                best = f.argmax(1)
                improved = f.gather(1, best.unsqueeze(1)).squeeze(1) > state.best_return
                state.best_theta = torch.where(improved.unsqueeze(1), samples[torch.arange(R, device=best.device),
                                                                               best], state.best_theta)
                state.best_return = torch.maximum(state.best_return, f.max(1).values)
                z = extra_variance(config.extra_noise, config.extra_noise_iterations, int(state.t))
                state.mu, state.sigma = refit(state.mu, state.sigma, samples, f, self.n_elite, config.alpha, z)
                state.t += 1  # update
                elite_return = f.sort(1, descending=True).values[:, :self.n_elite].mean()
                run.log({
                    "elite_return_mean": float(elite_return),
                    "sample_return_mean": float(f.mean()),
                    "best_return": float(state.best_return.mean()),
                    "sigma_mean": float(state.sigma.mean()),
                    "extra_variance": z,
                })
        return self
