"""Hill climbing: black-box search in the weights of a policy (004, "Hill climbing").

Notes: perturb the best weights so far with Gaussian noise of radius sigma, play an episode with the new weights,
and keep them when the episode's return G beats the best return so far:

    theta' = theta_best + sigma * eps,   eps ~ N(0, I)
    if G(theta') > G_best:  theta_best, G_best <- theta', G(theta')

Variants (``variant``):

- ``plain``: one neighbour per iteration, fixed sigma.
- ``steepest``: steepest-ascent hill climbing: ``n_neighbours`` neighbours per iteration, the best of them replaces
  theta_best only if it beats G_best.
- ``annealing``: simulated annealing's shrinking radius: sigma <- max(sigma_min, anneal_rate * sigma) every iteration,
  so sigma_t = max(sigma_min, sigma_0 * anneal_rate^t).
- ``adaptive``: adaptive noise scaling: sigma <- max(sigma_min, sigma / 2) after an improvement (search closer to the
  new best), min(sigma_max, 2 sigma) otherwise (search further out).

G versus J: one episode's return G is a noisy estimate of the expected return J(theta) (CartPole's start state is
random), and a lucky episode can set a G_best no neighbour beats again: CartPole's return is capped at 500, so once
one episode of theta_best scores 500, no neighbour is ever kept again, whatever J(theta_best) is. Two remedies:

- ``episodes_per_candidate`` = k judges every candidate on the mean of k episodes (k = 1 is the notes' G);
- ``rejudge`` (decided here, default off): theta_best is played again every iteration, as one more candidate beside
  the neighbours (k episodes), and G_best becomes the running mean of all its returns since it was kept
  (:func:`rejudge`), before the neighbours are compared with it. A lucky G_best wears down towards J(theta_best)
  and a neighbour that is truly better can then replace it; a kept neighbour starts again from its own G.

Decided here: theta_best starts at zero weights and G_best at -inf, so the first iteration's best neighbour (a random
policy of radius sigma) is always kept (and counts as an improvement for the adaptive radius). Many runs at once, as
the tabular learners: ``n_runs`` independent searches, each with its own theta_best, G_best and sigma; all runs'
candidates (N = ``n_neighbours`` neighbours, and theta_best when re-judging: C = N + 1) are one population of
``n_runs * C`` candidates, played with one :func:`~thorndike.core.population.evaluate_population` call on
``n_runs * C * k`` env copies per iteration (candidate ``r * C + i`` is run r's i-th). Steps count per run, as for
CEM: an iteration of T lockstep steps (its longest episode) adds T * C * k to ``global_step``, every step the run's
copies took; ``learn(total_steps)`` stops at the first iteration boundary at or past ``total_steps``.

Measured on CartPole-v1 (defaults: linear policy, sigma 0.5, k = 1, max_episode_steps 500; solved = greedy mean of
20 evaluation episodes >= 475, checked every 2000 steps, budget 50 000 steps per seed): plain hill climbing solved
seeds 0-9 at 2412, 2354, -, 2407, 10069, 8322, -, -, 8184, - steps (6 of 10; the other four stalled behind a lucky
G_best, greedy means 49-409 at 50 000 steps). Adaptive noise scaling solved 5 of 10 (2008, -, -, 4000, 4114, 2041, -,
10156, -, -), and plain with k = 3 episodes per candidate (checked every 3000 steps, up to 48 000) also 5 of 10 (4152,
4437, -, 15345, -, 6636, -, -, 22278, -).

Tuned (``thorndike/configs/hill_climbing.yaml``: steepest ascent over 4 neighbours of a 16-unit MLP, theta_best
re-judged; ``benchmarks/search_learning.py``, checked every 20 episodes, budget 1000 episodes per seed): 9 of seeds 0-9
solved, at 140, 320, 380, 200, 480, 80, -, 360, 160 and 620 episodes (18 255 to 122 450 steps; seed 6 wandered
between greedy means of 23 and 391 and ended at 239), all nine still at 500 after 1000 episodes; on seeds 10-19,
not used for tuning, also 9 of 10, at 40, 120, 20, -, 100, 20, 460, 100, 300 and 880 episodes (up to 289 510 steps;
seed 13 ended at 128). 11-38 s of learning per seed on 2 CPU cores shared with other jobs (an iteration plays 5
candidates of up to 500 steps).

How other settings did (until solved within 1500 episodes; "runs" are the 20 independent runs of one agent with
``n_runs`` = 20, each judged on 10 evaluation episodes): without re-judging, steepest ascent over 10 linear
neighbours solved 7 of seeds 0-9, over 4 MLP neighbours 9 of 20 runs. Re-judged: plain hill climbing 7 of seeds 0-9
(linear) and 19 of 20 runs (MLP); plain with k = 3 8 of seeds 0-9; adaptive noise scaling 17 of 20 runs; steepest
ascent over 4 linear neighbours 9 of seeds 0-9 but 7 of seeds 10-19, with k = 2 17 of 20 runs, with stochastic
(softmax) candidates 19 of 20 runs; over 8 linear neighbours 9 of seeds 0-9. With a linear policy the greedy action
argmax(x W + b) ignores the scale of the weights, and theta_best is a sum of sigma-sized steps from zero, so sigma
does not matter: sigma 0.5 and 1.0 gave identical results for 20 runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.config import check, describe
from thorndike.search.base import PopulationConfig, PopulationSearch, SearchState

__all__ = ["ClimberState", "HillClimbing", "HillClimbingConfig", "climb", "next_sigma", "rejudge"]

VARIANTS = ("plain", "steepest", "annealing", "adaptive")


@dataclass
class HillClimbingConfig(PopulationConfig):
    """Hill climbing's hyperparameters: the variant, the search radius and its schedule, the policy, the runs."""

    variant: str = describe("plain, steepest (best of n_neighbours), annealing (shrinking sigma) or adaptive "
                            "(sigma halves on improvement, doubles otherwise)", "plain")
    n_neighbours: int = describe("neighbours tried per iteration: >= 2 for steepest, 1 for the other variants", 1)
    sigma: float = describe("initial search radius: the std of the Gaussian noise added to theta_best", 0.5)
    sigma_min: float = describe("smallest radius (annealing and adaptive)", 1e-3)
    sigma_max: float = describe("largest radius (adaptive)", 2.0)
    anneal_rate: float = describe("annealing: sigma <- max(sigma_min, anneal_rate * sigma) each iteration", 0.95)
    rejudge: bool = describe("play theta_best again every iteration (k more episodes) and judge it on the mean of "
                             "all its returns so far, so a lucky G_best wears down towards J(theta_best)", False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.variant in VARIANTS, "variant", self.variant, " or ".join(VARIANTS))
        if self.variant == "steepest":
            check(self.n_neighbours >= 2, "n_neighbours", self.n_neighbours, ">= 2 for variant steepest")
        else:
            check(self.n_neighbours == 1, "n_neighbours", self.n_neighbours,
                  f"1 for variant {self.variant} (only steepest tries several)")
        check(self.sigma_min > 0, "sigma_min", self.sigma_min, "> 0")
        check(self.sigma_max >= self.sigma_min, "sigma_max", self.sigma_max, f">= sigma_min ({self.sigma_min})")
        check(self.sigma_min <= self.sigma <= self.sigma_max, "sigma", self.sigma,
              f"in [sigma_min, sigma_max] = [{self.sigma_min}, {self.sigma_max}]")
        check(0 < self.anneal_rate <= 1, "anneal_rate", self.anneal_rate, "in (0, 1]")


# ---- the math of one iteration (pure functions, tested by hand) ---------------------------------------------------


def climb(theta_best: Tensor, g_best: Tensor, candidates: Tensor, g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Keep each run's best candidate if it beats the run's best so far.

    ``theta_best`` ``[R, n]``, ``g_best`` ``[R]``, ``candidates`` ``[R, N, n]`` and their returns ``g`` ``[R, N]``
    -> (theta_best, g_best, improved ``[R]`` bool). Strictly better only: a tie keeps the old weights. Among tied
    best candidates the lowest index wins.
    """
    best = g.argmax(1)
    g_new = g.gather(1, best.unsqueeze(1)).squeeze(1)
    improved = g_new > g_best
    theta_new = candidates[torch.arange(len(best), device=best.device), best]
    return (torch.where(improved.unsqueeze(1), theta_new, theta_best), torch.where(improved, g_new, g_best),
            improved)


def rejudge(g_best: Tensor, n_best: Tensor, g_again: Tensor) -> tuple[Tensor, Tensor]:
    """Fold a fresh return of each run's theta_best into its G_best: the running mean of all its returns.

    ``g_best`` ``[R]`` is the mean of ``n_best`` ``[R]`` returns so far, ``g_again`` ``[R]`` the new one ->
    (g_best, n_best + 1). A run with no return yet (n_best = 0, G_best = -inf: the starting weights) takes
    ``g_again`` as it is.
    """
    n_new = n_best + 1
    mean = g_best + (g_again - g_best) / n_new
    return torch.where(n_best > 0, mean, g_again), n_new


def next_sigma(variant: str, sigma: Tensor, improved: Tensor, sigma_min: float, sigma_max: float,
               anneal_rate: float) -> Tensor:
    """The next search radius ``[R]`` of each run after an iteration (``improved`` ``[R]``: whether it climbed).

    plain and steepest keep sigma; annealing: max(sigma_min, anneal_rate * sigma); adaptive: sigma / 2 after an
    improvement, 2 sigma otherwise, kept in [sigma_min, sigma_max].
    """
    if variant == "annealing":
        return (sigma * anneal_rate).clamp_min(sigma_min)
    if variant == "adaptive":
        return torch.where(improved, sigma * 0.5, sigma * 2.0).clamp(sigma_min, sigma_max)
    return sigma


# ---- state kept across iterations (a checkpoint component) -------------------------------------------------------


class ClimberState(SearchState):
    """Each run's best weights ``theta_best`` ``[R, n]``, their return ``g_best`` ``[R]``, the number of returns
    ``n_best`` ``[R]`` that G_best averages (``rejudge``; 1 after an improvement) and radius ``sigma`` ``[R]``
    (float64)."""

    NAMES = ("theta_best", "g_best", "n_best", "sigma")

    def __init__(self, theta_best: Tensor, sigma: float) -> None:
        n_runs = theta_best.shape[0]
        self.theta_best = theta_best
        self.g_best = torch.full((n_runs,), float("-inf"), dtype=torch.float64, device=theta_best.device)
        self.n_best = torch.zeros((n_runs,), dtype=torch.float64, device=theta_best.device)
        self.sigma = torch.full((n_runs,), sigma, dtype=torch.float64, device=theta_best.device)


# ---- the agent ---------------------------------------------------------------------------------------------------


class HillClimbing(PopulationSearch):
    """Hill climbing in policy weights: keep a Gaussian perturbation of the best weights if it returns more."""

    name = "hill_climbing"
    Config = HillClimbingConfig
    candidates_field = "n_neighbours"

    def build(self) -> None:
        super().build()  # the envs and the batched policy
        config = self.config
        self.state = ClimberState(self.population.initial_weights(config.n_runs, self.device), config.sigma)
        self.components = {"climber": self.state}

    def candidates_per_run(self) -> int:
        """The neighbours, and theta_best itself when it is re-judged (the last candidate)."""
        return self.config.n_neighbours + int(self.config.rejudge)

    def acting_weights(self) -> Tensor:
        """Each run's theta_best."""
        return self.state.theta_best

    # ---- collect -> targets -> update -> log --------------------------------------------------------------------

    def neighbours(self) -> Tensor:
        """``[R, N, n]``: theta_best + sigma * eps for each run's N neighbours, eps ~ N(0, I)."""
        return self.gaussian_candidates(self.state.theta_best, self.state.sigma.unsqueeze(1), self.config.n_neighbours)

    def learn(self, total_steps: int) -> HillClimbing:
        """Iterate until every run has taken ``total_steps`` env steps (counted per run; see the module docstring)."""
        config, state = self.config, self.state
        with self.session(total_steps) as run:
            while run.running():
                candidates = self.neighbours()  # collect: all runs' neighbours are one population
                if config.rejudge:  # ... with each run's theta_best played again as its last candidate
                    candidates = torch.cat([candidates, state.theta_best.unsqueeze(1)], 1)
                g = self.play(candidates)  # targets: each candidate's G (k = 1) or estimate of J (k > 1)
                if config.rejudge:
                    state.g_best, state.n_best = rejudge(state.g_best, state.n_best, g[:, -1])
                    candidates, g = candidates[:, :-1], g[:, :-1]
                state.theta_best, state.g_best, improved = climb(state.theta_best, state.g_best, candidates, g)
                state.n_best = torch.where(improved, 1.0, state.n_best)
                state.sigma = next_sigma(config.variant, state.sigma, improved, config.sigma_min, config.sigma_max,
                                         config.anneal_rate)  # update
                run.log({
                    "best_return": float(state.g_best.mean()),
                    "candidate_return_mean": float(g.mean()),
                    "sigma_mean": float(state.sigma.mean()),
                    "improvements": float(improved.sum()),
                })
        return self
