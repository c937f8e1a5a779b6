"""LinUCB: a ridge regression of the reward on features, with an upper confidence bound on its prediction (Li et al.
2010, "A contextual-bandit approach to personalized news article recommendation").

Each (context, item) pair has a feature vector x (``features[c, a]``, ``[C, A, d]``). A linear model per item
(``shared=False``, Li et al.'s disjoint LinUCB: x is the context's features, the same for every item) or one model
for all items (``shared=True``: x describes the pair, e.g. age x genre) keeps

    A = ridge I + sum_t x_t x_t^T,     b = sum_t r_t x_t,     theta = A^-1 b    (the ridge estimate)

and recommends

    argmax_a  x_a^T theta + alpha sqrt(x_a^T A^-1 x_a)

(ties broken uniformly). A^-1 is kept up to date by the Sherman-Morrison identity, exact for a rank-one update:

    (A + x x^T)^-1 = A^-1 - (A^-1 x)(A^-1 x)^T / (1 + x^T A^-1 x)

so a step costs O(d^2) and no solve; A itself is kept too (tests check A^-1 A = I and theta = solve(A, b)). When the
expected reward is linear in x, the regret grows as O(d sqrt(T) log T) (Abbasi-Yadkori et al. 2011), sublinearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.config import check, check_limits, describe
from thorndike.core.exploration import greedy_probs, sample

__all__ = ["LinUCB", "LinUCBConfig", "linucb_scores", "ridge_regression", "sherman_morrison_update"]


@dataclass
class LinUCBConfig:
    """LinUCB's settings."""

    alpha: float = describe("width of the confidence bonus alpha sqrt(x^T A^-1 x)", 0.5)
    ridge: float = describe("ridge penalty lambda: A starts at lambda I", 1.0)
    shared: bool = describe("one linear model for all items (True) or one per item (False, disjoint)", True)

    def __post_init__(self) -> None:
        check(self.alpha >= 0.0, "alpha", self.alpha, ">= 0")
        check(self.ridge > 0.0, "ridge", self.ridge, "> 0 (A must start invertible)")
        check_limits(self)


def sherman_morrison_update(a_inv: Tensor, x: Tensor) -> Tensor:
    """(A + x x^T)^-1 from A^-1 ``[..., d, d]`` (symmetric) and x ``[..., d]``."""
    u = (a_inv @ x.unsqueeze(-1)).squeeze(-1)  # A^-1 x
    denominator = 1.0 + (x * u).sum(-1)
    return a_inv - u.unsqueeze(-1) * u.unsqueeze(-2) / denominator[..., None, None]


def ridge_regression(x: Tensor, y: Tensor, ridge: float = 1.0) -> Tensor:
    """theta = (ridge I + X^T X)^-1 X^T y from rows ``x`` ``[N, d]`` and targets ``y`` ``[N]`` in one solve: what
    LinUCB's A and b hold after the same rows, computed from scratch (and a reward model fitted on logged data)."""
    x, y = x.double(), y.double()
    a = ridge * torch.eye(x.shape[1], dtype=torch.float64) + x.T @ x
    return torch.linalg.solve(a, x.T @ y)


def linucb_scores(a_inv: Tensor, b: Tensor, x: Tensor, alpha: float) -> Tensor:
    """x_a^T theta + alpha sqrt(x_a^T A^-1 x_a) for every item a: ``x`` ``[..., A, d]``, ``a_inv`` ``[..., M, d, d]``
    and ``b`` ``[..., M, d]`` with M = A (one model per item) or M = 1 (one model shared by all items). Result
    ``[..., A]``."""
    theta = (a_inv @ b.unsqueeze(-1)).squeeze(-1)  # [..., M, d]
    mean = (x * theta).sum(-1)
    if a_inv.shape[-3] == 1:  # one matrix for every item: x A^-1 as one matmul instead of A copies of A^-1
        a_inv_x = x @ a_inv.squeeze(-3)
    else:
        a_inv_x = (a_inv @ x.unsqueeze(-1)).squeeze(-1)
    variance = (x * a_inv_x).sum(-1)
    return mean + alpha * variance.clamp_min(0.0).sqrt()


class LinUCB:
    """``n_runs`` LinUCB bandits on the features ``features`` ``[C, A, d]`` of each (context, item).

    ``a``, ``a_inv`` ``[R, M, d, d]`` and ``b`` ``[R, M, d]`` with M = 1 model (shared) or M = A (one per item).
    """

    def __init__(self, features: Tensor, config: LinUCBConfig | None = None, n_runs: int = 1) -> None:
        self.config = config or LinUCBConfig()
        if features.dim() != 3:
            raise ValueError(f"features must be [contexts, items, d], got shape {tuple(features.shape)}")
        self.features = features.double()
        n_models = 1 if self.config.shared else features.shape[1]
        d = features.shape[2]
        eye = torch.eye(d, dtype=torch.float64)
        self.a = (self.config.ridge * eye).expand(n_runs, n_models, d, d).clone()
        self.a_inv = (eye / self.config.ridge).expand(n_runs, n_models, d, d).clone()
        self.b = torch.zeros(n_runs, n_models, d, dtype=torch.float64)
        self.runs = torch.arange(n_runs)

    @property
    def theta(self) -> Tensor:
        """The ridge estimates A^-1 b, ``[R, M, d]``."""
        return (self.a_inv @ self.b.unsqueeze(-1)).squeeze(-1)

    def models(self, actions: Tensor) -> Tensor:
        return torch.zeros_like(actions) if self.config.shared else actions

    def scores(self, contexts: Tensor) -> Tensor:
        """Each run's LinUCB score of every item for its context ``[R, A]``."""
        return linucb_scores(self.a_inv, self.b, self.features[contexts], self.config.alpha)

    def act(self, contexts: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return sample(greedy_probs(self.scores(contexts)), generator)

    def update(self, contexts: Tensor, actions: Tensor, rewards: Tensor) -> None:
        """Each run's (x, r) into its model of the chosen item (or its shared model)."""
        x = self.features[contexts, actions]  # [R, d]
        m = self.models(actions)
        index = (self.runs, m)
        self.a[index] += x.unsqueeze(-1) * x.unsqueeze(-2)
        self.a_inv[index] = sherman_morrison_update(self.a_inv[index], x)
        self.b[index] += rewards.double().unsqueeze(-1) * x
