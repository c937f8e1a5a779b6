"""Distributional RL: C51's categorical projection and QR-DQN's quantile Huber loss.

Notes: 003 lecture 5 (F3 L540-L596). The return from (s, a) is a random variable Z(s, a) with Q(s, a) = E[Z(s, a)]
(L565); the distributional Bellman operator is TZ(x, a) =_D R(x, a) + gamma Z(X', a*), a* = argmax_a' E Z(X', a')
(L579). Two ways of representing Z (the table at L584-L596):

- C51 (Bellemare et al. 2017): fixed atoms z_i = V_min + (i - 1) dz, dz = (V_max - V_min) / (N - 1), learned
  probabilities p_i = softmax(h(s, a)), Q = sum_i p_i z_i (:func:`categorical_expectation`; the target's a* picks
  its distribution with :func:`action_distribution`). The shifted atoms r + gamma z_i of the target fall between the
  fixed atoms, so the target is projected back onto them (:func:`categorical_projection`); the loss is the cross
  entropy to the projected target (:func:`categorical_cross_entropy`).
- QR-DQN (Dabney et al. 2018): N learned quantile values theta_i with weight 1/N each at the quantile midpoints
  tau_i = (2i + 1) / (2N), i = 0..N-1 (:func:`quantile_midpoints`), Q = mean_i theta_i; no projection; the loss is
  quantile regression with a Huber core (:func:`quantile_huber_loss`).

Discounts: every function here takes ``discounts`` ``[B]`` already equal to gamma^n * (1 - terminated): 0 after a
termination (the target is the reward alone), gamma^n after a truncation or none (the caller passes the true next
state's distribution). n-step rewards are the discounted sums r_t + ... + gamma^(n-1) r_(t+n-1).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "action_distribution",
    "categorical_cross_entropy",
    "categorical_expectation",
    "categorical_projection",
    "categorical_support",
    "quantile_huber_loss",
    "quantile_midpoints",
]


def categorical_support(v_min: float, v_max: float, n_atoms: int, device: torch.device | str | None = None,
                        dtype: torch.dtype = torch.float32) -> Tensor:
    """The fixed atoms z_i = V_min + i dz, i = 0..N-1, dz = (V_max - V_min) / (N - 1): ``[n_atoms]`` (F3 L589).

    The first and last atoms are exactly V_min and V_max.
    """
    if n_atoms < 2:
        raise ValueError(f"a categorical support needs at least 2 atoms, got {n_atoms}")
    if not v_min < v_max:
        raise ValueError(f"a categorical support needs v_min < v_max, got {v_min} and {v_max}")
    return torch.linspace(v_min, v_max, n_atoms, device=device, dtype=dtype)


def categorical_expectation(probs: Tensor, support: Tensor) -> Tensor:
    """Q = sum_i p_i z_i (F3 L591): probabilities ``[..., N]`` on ``support`` ``[N]`` -> ``[...]``. (QR-DQN's
    counterpart, Q = (1/N) sum_i theta_i, is the quantiles' mean.)"""
    return (probs * support).sum(-1)


def action_distribution(per_action: Tensor, actions: Tensor) -> Tensor:
    """The distribution of the chosen actions: ``[B, A, N]`` (probabilities, logits or quantiles) and long
    ``actions`` ``[B]`` -> ``[B, N]``; with a* = argmax_a Q(s', a), the Z(s', a*) of the target."""
    index = actions.view(-1, 1, 1).expand(-1, 1, per_action.shape[-1])
    return per_action.gather(1, index).squeeze(1)


def categorical_projection(next_probs: Tensor, rewards: Tensor, discounts: Tensor, support: Tensor) -> Tensor:
    """C51's projection of the distribution of r + discount * Z(s', a*) onto the fixed atoms ``support``.

    next_probs ``[B, N]``: the probabilities p_j of Z(s', a*) on ``support`` ``[N]`` (evenly spaced, V_min..V_max);
    rewards, discounts ``[B]`` -> the projected target ``[B, N]``, with the same total mass as ``next_probs`` (1 for
    distributions).

    Each shifted atom Tz_j = r + discount * z_j is clipped to [V_min, V_max]; at the fractional index
    b_j = (Tz_j - V_min) / dz its mass p_j is split between the atoms l = floor(b_j) and l + 1 in proportion to
    closeness: (1 - (b_j - l)) to l, (b_j - l) to l + 1. An atom landing exactly on a support point (b_j whole) keeps
    all its mass there: writing the split as floor/ceil weights (u - b, b - l) would give both atoms 0 when l == u,
    the classic way of losing mass, which this form cannot do.
    """
    n_atoms = support.shape[0]
    if n_atoms < 2:
        raise ValueError(f"a categorical support needs at least 2 atoms, got {n_atoms}")
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (n_atoms - 1)
    shifted = (rewards.unsqueeze(-1) + discounts.unsqueeze(-1) * support).clamp(v_min, v_max)
    # Clamp the index too: (V_max - V_min) / dz may round to a hair above N - 1.
    position = ((shifted - v_min) / delta).clamp(0, n_atoms - 1)
    lower = position.floor()
    upper_share = position - lower
    # A NaN reward (bad env data, named by the env checks at the end of the iteration) makes a NaN position, whose
    # integer index would be garbage and fail the scatter: index atom 0 instead and let the NaN shares carry the NaN
    # into that sample's target.
    lower_index = torch.nan_to_num(lower, nan=0.0).long()
    # At the top atom l = N - 1 the upper neighbour does not exist, but its share is 0 there, so any index will do.
    upper_index = (lower_index + 1).clamp_max(n_atoms - 1)
    projected = torch.zeros_like(next_probs)
    projected.scatter_add_(-1, lower_index, next_probs * (1 - upper_share))
    projected.scatter_add_(-1, upper_index, next_probs * upper_share)
    return projected


def categorical_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """C51's loss per sample: -sum_i m_i log p_i, with p = softmax(logits): ``[B, N]``, ``[B, N]`` -> ``[B]``.

    It differs from KL(m || p) by the target's entropy, a constant for the gradient; ``target_probs`` should be
    computed without gradient (the projected target of :func:`categorical_projection`).
    """
    return -(target_probs * torch.log_softmax(logits, dim=-1)).sum(-1)


def quantile_midpoints(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """QR-DQN's quantile levels tau_i = (2i + 1) / (2N), i = 0..N-1: the midpoints of N equal intervals of [0, 1]."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return (2 * torch.arange(n, device=device, dtype=dtype) + 1) / (2 * n)


def quantile_huber_loss(pred_quantiles: Tensor, target_quantiles: Tensor, taus: Tensor, kappa: float = 1.0,
                        reduction: str = "mean") -> Tensor:
    """QR-DQN's quantile Huber loss of predicted quantiles ``[B, N]`` (at levels ``taus`` ``[N]``) against target
    samples ``[B, M]`` (usually M = N, r + discount * theta_j(s', a*), computed without gradient).

    For every pair, u_ij = target_j - pred_i and

        rho_i(u) = |tau_i - 1{u < 0}| * L_kappa(u),  L_kappa(u) = u^2 / 2 if |u| <= kappa else kappa (|u| - kappa / 2)

    (Dabney et al. 2018, eq. 10, without the division by kappa that IQN later added: the two agree at the default
    kappa = 1). ``kappa = 0`` gives the plain quantile (pinball) loss |tau_i - 1{u < 0}| |u|, the paper's QR-DQN-0.

    Averaging, as in the paper's algorithm: sum over the predicted quantiles i of the mean over the targets j,
    sum_i E_j[rho_i(u_ij)], per sample; ``reduction="mean"`` then averages over the batch (a scalar),
    ``"none"`` returns the per-sample ``[B]`` (for importance weights and priorities).

    The gradient with respect to pred_i is -mean_j |tau_i - 1{u_ij < 0}| clip(u_ij, -kappa, kappa): a descent step
    moves each predicted quantile toward the targets, up by tau_i and down by 1 - tau_i, until a fraction tau_i of
    the targets lies below it.
    """
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    errors = target_quantiles.unsqueeze(-2) - pred_quantiles.unsqueeze(-1)  # [B, N, M]: u_ij
    magnitude = errors.abs()
    if kappa == 0:
        core = magnitude
    else:
        core = torch.where(magnitude <= kappa, 0.5 * errors.square(), kappa * (magnitude - 0.5 * kappa))
    # The asymmetric weight: an over-estimate (u < 0) costs 1 - tau, an under-estimate tau.
    weight = (taus.unsqueeze(-1) - (errors < 0).to(errors.dtype)).abs()
    per_sample = (weight * core).mean(-1).sum(-1)
    return per_sample.mean() if reduction == "mean" else per_sample
