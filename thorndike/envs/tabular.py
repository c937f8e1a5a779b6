"""Tabular MDPs: the model P(s'|s, a), R(s, a, s') of the notes, for exact planning and as a Gymnasium env.

Lecture-notes concept: *the Markov decision process* (F0 L5-L19: states S, actions A, transition function
P(s'|s, a), reward R(s, a, s'), start state s0, discount gamma, horizon H; the reward variants R(s), R(s, a) and
R(s, a, s') of F2 L49-L55). Dynamic programming needs only two things from the model, and :class:`TabularMDP`
gives both as tensors: the expected reward r(s, a) = sum_s' P(s'|s, a) R(s, a, s') and the expected next value
sum_s' P(s'|s, a) V(s'), so one Bellman backup is Q = r + gamma * P V.

Storage is dense ``P[s, a, s']`` for small problems or a sparse CSR matrix of shape [S*A, S'] (row s*A + a) with the
rewards stored on the same pattern, so that a gridworld of a million states fits in memory.

Terminal states are absorbing with value zero: planning never backs up through them, and the env view ends an
episode on entering one. Rewards are therefore paid on the transition *into* a terminal state (or, as in the notes'
gridworld, on the exit action out of an exit square), never for sitting in it.

The same object is a Gymnasium env (``Discrete(S)`` observations, ``Discrete(A)`` actions), so planning and learning
meet on one problem. Calling it returns an independent env copy that shares the model, which is what a vector env
needs: ``th.envs.make(mdp, n_envs=8)`` or ``th.envs.make(lambda: mdp.copy(), n_envs=8)``.
"""

from __future__ import annotations

import copy as _copy
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from thorndike.envs.gridworld import Grid

__all__ = ["TabularMDP", "random_mdp"]

# Dense storage costs S * A * S' doubles; beyond this many entries (32 MiB) ``sparse=None`` picks CSR.
_DENSE_LIMIT = 1 << 22
# Planning sweeps with a CSR matrix when P has more than _SMALL entries and fewer than 1 in _SPARSITY is non-zero.
_SMALL = 1 << 16
_SPARSITY = 8


class TabularMDP(gym.Env):
    """A finite MDP: ``P[s, a, s']``, ``R[s, a, s']``, terminal states, a start distribution and a default gamma.

    Args:
        P: transition probabilities, dense [S, A, S'] (tensor, array or nested lists), or a torch sparse tensor
            (COO or CSR) of shape [S*A, S'] whose row s*A + a is P(.|s, a). S' must equal S.
        R: rewards, one of R[s, a, s'] (dense, or sparse with P's shape), R[s, a] (paid for taking a in s, whatever
            s' is) or R[s] (paid for acting in s). They are stored as R[s, a, s'].
        terminal: bool mask [S] or a list of state indices; terminal states are absorbing with value 0.
        start: start-state distribution [S] (default: uniform over the non-terminal states); it may not put mass on
            terminal states.
        gamma: the problem's discount, used by planning functions when they are not given one.
        max_steps: episode length after which the env view truncates (None: never).
        state_names, action_names: optional labels (length S and A).
        grid: optional :class:`~thorndike.envs.gridworld.Grid` describing a grid layout, for plotting.
        atol: tolerance of the check that each row P[s, a, :] sums to 1.

    Attributes: ``n_states``, ``n_actions``, ``sparse``, ``P`` and ``R`` (as stored: dense [S, A, S'] or CSR
    [S*A, S']), ``r`` (expected reward [S, A]), ``terminal`` (bool [S]), ``start`` ([S]), ``gamma``, ``max_steps``,
    ``state_names``, ``action_names``, ``grid``. All floating tensors are float64.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        P: Any,
        R: Any,
        terminal: Any = None,
        start: Any = None,
        gamma: float = 0.99,
        max_steps: int | None = None,
        state_names: Sequence[str] | None = None,
        action_names: Sequence[str] | None = None,
        grid: Grid | None = None,
        atol: float = 1e-6,
    ) -> None:
        if isinstance(P, Tensor) and P.layout != torch.strided:
            self._init_sparse(P, R)
        else:
            self._init_dense(P, R)
        S, A = self.n_states, self.n_actions
        self.terminal = _terminal_mask(terminal, S)
        self.start = _start_distribution(start, self.terminal, atol)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.gamma = float(gamma)
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
        self.max_steps = max_steps
        self.state_names = _names(state_names, S, "state_names")
        self.action_names = _names(action_names, A, "action_names")
        self.grid = grid
        self._check_probabilities(atol)
        self.r = self._expected_reward()
        self._P_dp, self._r_dp = self._absorbing_model()

        self.observation_space = gym.spaces.Discrete(S)
        self.action_space = gym.spaces.Discrete(A)
        self._state: int | None = None
        self._steps = 0
        self._sampler: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ construction

    def _init_dense(self, P: Any, R: Any) -> None:
        P = torch.as_tensor(np.asarray(P) if not isinstance(P, Tensor) else P, dtype=torch.float64)
        if P.dim() != 3 or P.shape[0] != P.shape[2]:
            raise ValueError(f"dense P must have shape [S, A, S] with S' = S, got {list(P.shape)}")
        S, A = P.shape[0], P.shape[1]
        self.n_states, self.n_actions, self.sparse = S, A, False
        self.P = P.contiguous()
        if isinstance(R, Tensor) and R.layout != torch.strided:
            R = R.to_dense().reshape(S, A, S)
        R = torch.as_tensor(np.asarray(R) if not isinstance(R, Tensor) else R, dtype=torch.float64)
        self.R = _broadcast_reward(R, S, A).expand(S, A, S).contiguous()

    def _init_sparse(self, P: Tensor, R: Any) -> None:
        if P.dim() != 2 or P.shape[0] % max(P.shape[1], 1) != 0:
            raise ValueError(f"sparse P must have shape [S*A, S], got {list(P.shape)}")
        S = P.shape[1]
        A = P.shape[0] // S
        coo = P.to_sparse_coo().coalesce()
        rows, cols = coo.indices()
        probs = coo.values().to(torch.float64)
        if isinstance(R, Tensor) and R.layout != torch.strided:
            if R.shape != P.shape:
                raise ValueError(f"a sparse R must have P's shape {list(P.shape)}, got {list(R.shape)}")
            rewards = _values_on_pattern(R, rows, cols, S)
        else:
            R = torch.as_tensor(np.asarray(R) if not isinstance(R, Tensor) else R, dtype=torch.float64)
            if R.dim() == 3:
                raise ValueError("a dense R[s, a, s'] needs a dense P; give R as [S, A], [S] or sparse [S*A, S]")
            rewards = _broadcast_reward(R, S, A).reshape(S * A)[rows]
        self.n_states, self.n_actions, self.sparse = S, A, True
        self.P, self.R = _csr(rows, cols, [probs, rewards], S * A, S)

    @classmethod
    def from_transitions(
        cls,
        n_states: int,
        n_actions: int,
        state: Any,
        action: Any,
        next_state: Any,
        prob: Any,
        reward: Any,
        sparse: bool | None = None,
        **kwargs: Any,
    ) -> TabularMDP:
        """Build from a list of transitions (s, a, s', P(s'|s, a), R(s, a, s'), as parallel 1-D arrays).

        Repeated (s, a, s') entries are merged: their probabilities add up and their rewards are averaged with
        probability weights (which keeps r(s, a) exact). Zero-probability entries are dropped. ``sparse=None``
        stores dense when S*A*S is small, CSR otherwise. Other keyword arguments go to the constructor.
        """
        S, A = int(n_states), int(n_actions)
        s = torch.as_tensor(np.asarray(state), dtype=torch.int64)
        a = torch.as_tensor(np.asarray(action), dtype=torch.int64)
        s_next = torch.as_tensor(np.asarray(next_state), dtype=torch.int64)
        p = torch.as_tensor(np.asarray(prob), dtype=torch.float64)
        rew = torch.as_tensor(np.asarray(reward), dtype=torch.float64).expand_as(p)
        for name, idx, bound in (("state", s, S), ("action", a, A), ("next_state", s_next, S)):
            if idx.numel() and (idx.min() < 0 or idx.max() >= bound):
                raise ValueError(f"{name} indices must lie in [0, {bound}), got [{int(idx.min())}, {int(idx.max())}]")
        rows = s * A + a
        index = torch.stack([rows, s_next])
        # Summing p and p * R over duplicates, then dividing, gives the probability-weighted mean reward.
        pairs = torch.stack([p, p * rew], 1)
        merged = torch.sparse_coo_tensor(index, pairs, (S * A, S, 2), check_invariants=False).coalesce()
        (rows, cols), values = merged.indices(), merged.values()
        keep = values[:, 0] != 0
        rows, cols, probs, mass_reward = rows[keep], cols[keep], values[keep, 0], values[keep, 1]
        rewards = mass_reward / probs
        if sparse is None:
            sparse = S * A * S > _DENSE_LIMIT
        if sparse:
            index = torch.stack([rows, cols])
            # Already coalesced (sorted, unique), which saves the constructor a sort and a pattern match.
            P = torch.sparse_coo_tensor(index, probs, (S * A, S), check_invariants=False, is_coalesced=True)
            R = torch.sparse_coo_tensor(index, rewards, (S * A, S), check_invariants=False, is_coalesced=True)
            return cls(P, R, **kwargs)
        P = torch.zeros(S * A, S, dtype=torch.float64)
        R = torch.zeros(S * A, S, dtype=torch.float64)
        P[rows, cols] = probs
        R[rows, cols] = rewards
        return cls(P.view(S, A, S), R.view(S, A, S), **kwargs)

    def _check_probabilities(self, atol: float) -> None:
        """Non-negative entries and rows summing to 1; the error names the first offending (s, a)."""
        S, A = self.n_states, self.n_actions
        if self.sparse:
            probs = self.P.values()
            negative = torch.nonzero(probs < 0)
            if negative.numel():
                k = int(negative[0])
                row = int(torch.searchsorted(self.P.crow_indices(), k, right=True)) - 1
                col = int(self.P.col_indices()[k])
                raise ValueError(f"P[{row // A}, {row % A}, {col}] = {float(probs[k]):.6g} is negative")
            sums = self.P @ torch.ones(S, dtype=torch.float64)
        else:
            negative = torch.nonzero(self.P < 0)
            if negative.numel():
                s, a, s_next = (int(i) for i in negative[0])
                raise ValueError(f"P[{s}, {a}, {s_next}] = {float(self.P[s, a, s_next]):.6g} is negative")
            sums = self.P.sum(-1).reshape(S * A)
        bad = torch.nonzero(~((sums - 1.0).abs() <= atol))  # also catches NaN
        if bad.numel():
            row = int(bad[0])
            raise ValueError(f"P[{row // A}, {row % A}, :] sums to {float(sums[row]):.6g}, not 1")
        if not torch.isfinite(self.R.values() if self.sparse else self.R).all():
            raise ValueError("R has non-finite entries")

    def _expected_reward(self) -> Tensor:
        if self.sparse:
            S, A = self.n_states, self.n_actions
            weighted = self.P.values() * self.R.values()
            row_of = _row_of_entries(self.P.crow_indices(), weighted.numel())
            return torch.zeros(S * A, dtype=torch.float64).index_add_(0, row_of, weighted).view(S, A)
        return (self.P * self.R).sum(-1)

    def _absorbing_model(self) -> tuple[Tensor, Tensor]:
        """The model as DP uses it: P as an [A*S, S'] matrix whose row a*S + s is P(.|s, a), with every entry into
        or out of a terminal state zeroed, and r [A*S] with terminal rows zeroed. Then r + gamma P V ignores V at
        terminal states and is 0 there, in one mat-vec; the action-major order makes max_a a fast reduction.

        The matrix is CSR when it is large and mostly zeros, dense otherwise, whatever the storage: a sparse mat-vec
        has a fixed cost per call that only pays off on large problems.
        """
        S, A = self.n_states, self.n_actions
        r_dp = self.r.masked_fill(self.terminal[:, None], 0.0).t().reshape(A * S)
        entries = S * A * S
        nnz = self.P.values().numel() if self.sparse else int(torch.count_nonzero(self.P))
        if entries > _SMALL and nnz * _SPARSITY < entries and self.sparse:
            crow, cols = self.P.crow_indices(), self.P.col_indices()
            row_state = _row_of_entries(crow, cols.numel()) // A
            dead = self.terminal[cols.long()] | self.terminal[row_state]
            action_major = torch.arange(S * A).view(S, A).t().reshape(-1)
            crow, cols, (values,) = _select_rows(crow, cols, [self.P.values().masked_fill(dead, 0.0)], action_major)
            return _sparse_csr(crow, cols, values, (A * S, S)), r_dp
        P = self.P.to_dense().view(S, A, S) if self.sparse else self.P
        dead = self.terminal[:, None, None] | self.terminal[None, None, :]
        P_dp = P.masked_fill(dead, 0.0).transpose(0, 1).reshape(A * S, S)
        if entries > _SMALL and nnz * _SPARSITY < entries:
            rows, cols = torch.nonzero(P_dp, as_tuple=True)
            (P_dp,) = _csr(rows, cols, [P_dp[rows, cols]], A * S, S)
        return P_dp, r_dp

    # ------------------------------------------------------------------ what dynamic programming needs

    def expected_reward(self) -> Tensor:
        """r(s, a) = sum_s' P(s'|s, a) R(s, a, s'), shape [S, A]."""
        return self.r

    def next_value(self, V: Tensor) -> Tensor:
        """sum_s' P(s'|s, a) V(s'), shape [S, A], for V of shape [S] (no terminal handling)."""
        V = V.to(torch.float64)
        if self.sparse:
            return (self.P @ V).view(self.n_states, self.n_actions)
        return (self.P.view(-1, self.n_states) @ V).view(self.n_states, self.n_actions)

    def backup(self, V: Tensor, gamma: float | None = None) -> Tensor:
        """One Bellman backup of V: Q(s, a) = r(s, a) + gamma * sum_s' P(s'|s, a) V(s'), shape [S, A].

        V is read as 0 at terminal states and Q is 0 there (absorbing, value zero). Q is a transposed view of an
        action-major [A, S] tensor, so that max over actions reads contiguous memory.
        """
        gamma = self.gamma if gamma is None else gamma
        # One fused r + gamma * P V over the model with terminal rows and columns zeroed (see _absorbing_model).
        Q = torch.addmv(self._r_dp, self._P_dp, V.to(torch.float64), alpha=gamma)
        return Q.view(self.n_actions, self.n_states).t()

    def policy_model(self, policy: Tensor) -> tuple[Tensor, Tensor]:
        """The Markov chain of a policy: P_pi [S, S'] (dense, or CSR when sparse) and r_pi [S].

        ``policy`` is deterministic (long [S], the action in each state) or stochastic ([S, A], pi(a|s)).
        Terminal states keep their rows; callers treat them as absorbing with value 0.
        """
        S, A = self.n_states, self.n_actions
        if policy.dim() == 1:
            if policy.shape[0] != S or policy.dtype not in (torch.int32, torch.int64):
                raise ValueError(f"a deterministic policy is a long tensor of shape [{S}], got {policy.dtype} "
                                 f"{list(policy.shape)}")
            if policy.numel() and (policy.min() < 0 or policy.max() >= A):
                raise ValueError(f"policy actions must lie in [0, {A}), got [{int(policy.min())}, "
                                 f"{int(policy.max())}]")
            states = torch.arange(S)
            r_pi = self.r[states, policy]
            if not self.sparse:
                return self.P[states, policy], r_pi
            rows = states * A + policy.long()
            crow, cols, (probs,) = _select_rows(self.P.crow_indices(), self.P.col_indices(), [self.P.values()], rows)
            return _sparse_csr(crow, cols, probs, (S, S)), r_pi
        probs_sa = policy.to(torch.float64)
        if probs_sa.shape != (S, A):
            raise ValueError(f"a stochastic policy has shape [{S}, {A}], got {list(probs_sa.shape)}")
        if (probs_sa < 0).any() or ((probs_sa.sum(1) - 1.0).abs() > 1e-6).any():
            bad = int(torch.nonzero((probs_sa < 0).any(1) | ((probs_sa.sum(1) - 1.0).abs() > 1e-6))[0])
            raise ValueError(f"policy[{bad}, :] is not a probability distribution: {probs_sa[bad].tolist()}")
        r_pi = (probs_sa * self.r).sum(1)
        if not self.sparse:
            return torch.einsum("sa,sat->st", probs_sa, self.P), r_pi
        crow = self.P.crow_indices()
        row_of = _row_of_entries(crow, self.P.values().numel())
        weighted = self.P.values() * probs_sa.reshape(-1)[row_of]
        index = torch.stack([row_of // A, self.P.col_indices().long()])
        P_pi = torch.sparse_coo_tensor(index, weighted, (S, S), check_invariants=False)
        P_pi = P_pi.coalesce()
        rows, cols = P_pi.indices()
        (P_pi,) = _csr(rows, cols, [P_pi.values()], S, S)
        return P_pi, r_pi

    # ------------------------------------------------------------------ conversions

    def to_dense(self) -> TabularMDP:
        """The same MDP with dense storage (S*A*S' doubles)."""
        if not self.sparse:
            return self
        S, A = self.n_states, self.n_actions
        P = self.P.to_dense().view(S, A, S)
        R = self.R.to_dense().view(S, A, S)
        return self._like(P, R)

    def to_sparse(self) -> TabularMDP:
        """The same MDP with CSR storage [S*A, S'] (zero-probability transitions dropped)."""
        if self.sparse:
            return self
        S, A = self.n_states, self.n_actions
        flat_P, flat_R = self.P.view(S * A, S), self.R.view(S * A, S)
        rows, cols = torch.nonzero(flat_P, as_tuple=True)
        P = torch.sparse_coo_tensor(torch.stack([rows, cols]), flat_P[rows, cols], (S * A, S), check_invariants=False)
        R = torch.sparse_coo_tensor(torch.stack([rows, cols]), flat_R[rows, cols], (S * A, S), check_invariants=False)
        return self._like(P, R)

    def _like(self, P: Tensor, R: Tensor) -> TabularMDP:
        return TabularMDP(
            P, R, terminal=self.terminal, start=self.start, gamma=self.gamma, max_steps=self.max_steps,
            state_names=self.state_names, action_names=self.action_names, grid=self.grid,
        )

    def copy(self) -> TabularMDP:
        """An independent env (own current state, step count and RNG) sharing this model's tensors."""
        clone = _copy.copy(self)
        clone._state, clone._steps, clone._np_random, clone._np_random_seed = None, 0, None, None
        return clone

    def __call__(self) -> TabularMDP:
        """A fresh env copy, so that the MDP itself can be passed to ``th.envs.make(mdp, n_envs=...)``."""
        return self.copy()

    def __str__(self) -> str:
        return repr(self)

    def __repr__(self) -> str:
        storage = "sparse" if self.sparse else "dense"
        return (f"TabularMDP(n_states={self.n_states}, n_actions={self.n_actions}, {storage}, "
                f"terminal={int(self.terminal.sum())}, gamma={self.gamma})")

    # ------------------------------------------------------------------ the Gymnasium env view

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Start an episode in a state drawn from ``start``."""
        super().reset(seed=seed)
        sampler = self.transition_arrays()
        u = self.np_random.random() * sampler["start_cdf"][-1]
        self._state = int(np.searchsorted(sampler["start_cdf"], u, side="right"))
        self._steps = 0
        return self._state, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Draw s' ~ P(.|s, a), pay R(s, a, s'); terminated when s' is terminal, truncated at ``max_steps``."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action must lie in [0, {self.n_actions}), got {action!r}")
        s = self._state
        if self.terminal[s]:
            raise RuntimeError(f"the episode has ended (state {s} is terminal); call reset()")
        sampler = self.transition_arrays()
        row = s * self.n_actions + a
        lo, hi = int(sampler["crow"][row]), int(sampler["crow"][row + 1])
        cdf = np.cumsum(sampler["probs"][lo:hi])
        k = lo + min(int(np.searchsorted(cdf, self.np_random.random() * cdf[-1], side="right")), hi - lo - 1)
        s_next = int(sampler["cols"][k])
        reward = float(sampler["rewards"][k])
        self._state = s_next
        self._steps += 1
        terminated = bool(self.terminal[s_next])
        truncated = not terminated and self.max_steps is not None and self._steps >= self.max_steps
        return s_next, reward, terminated, truncated, {"prob": float(sampler["probs"][k])}

    def transition_arrays(self) -> dict[str, np.ndarray]:
        """The model as numpy CSR arrays, for code that handles one state at a time (the env view, RTDP).

        Row s*A + a holds the transitions of (s, a): next states ``cols[crow[row]:crow[row + 1]]`` with their
        ``probs`` and ``rewards``; ``start_cdf`` is the cumulative start distribution. Shares memory with the
        tensors where it can; do not modify.
        """
        if self._sampler is None:
            if self.sparse:
                crow, cols = self.P.crow_indices().numpy(), self.P.col_indices().numpy()
                probs, rewards = self.P.values().numpy(), self.R.values().numpy()
            else:
                S, A = self.n_states, self.n_actions
                flat_P = self.P.view(S * A, S).numpy()
                rows, cols = np.nonzero(flat_P)
                crow = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=S * A))])
                probs, rewards = flat_P[rows, cols], self.R.view(S * A, S).numpy()[rows, cols]
            self._sampler = {
                "crow": crow, "cols": cols, "probs": probs, "rewards": rewards,
                "start_cdf": np.cumsum(self.start.numpy()),
            }
        return self._sampler

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sampler"] = None  # numpy views of the tensors; rebuilt on demand
        return state


def random_mdp(
    n_states: int,
    n_actions: int,
    n_terminal: int = 0,
    branching: int | None = None,
    reward_scale: float = 1.0,
    gamma: float = 0.9,
    sparse: bool = False,
    seed: int = 0,
) -> TabularMDP:
    """A random MDP for tests: each P(.|s, a) is a random distribution over ``branching`` random next states (all
    states if None), rewards R(s, a, s') uniform in [-reward_scale, reward_scale], the last ``n_terminal`` states
    terminal, start uniform over the others."""
    if not 0 <= n_terminal < n_states:
        raise ValueError(f"n_terminal must lie in [0, n_states), got {n_terminal}")
    g = torch.Generator().manual_seed(seed)
    S, A = n_states, n_actions
    k = S if branching is None else min(branching, S)
    successors = torch.rand(S * A, S, generator=g).argsort(1)[:, :k]
    # Exponential weights normalised per row: a flat Dirichlet sample.
    weights = -torch.rand(S * A, k, generator=g, dtype=torch.float64).clamp_min(1e-12).log()
    probs = weights / weights.sum(1, keepdim=True)
    rewards = (torch.rand(S * A, k, generator=g, dtype=torch.float64) * 2 - 1) * reward_scale
    rows = torch.arange(S * A)[:, None].expand(S * A, k).reshape(-1)
    return TabularMDP.from_transitions(
        S, A, rows // A, rows % A, successors.reshape(-1), probs.reshape(-1), rewards.reshape(-1), sparse=sparse,
        terminal=list(range(S - n_terminal, S)), gamma=gamma,
    )


# ---------------------------------------------------------------------- helpers


def _broadcast_reward(R: Tensor, S: int, A: int) -> Tensor:
    """R[s, a, s'], R[s, a] or R[s] as a tensor broadcastable to [S, A, S']."""
    if R.shape == (S, A, S):
        return R
    if R.shape == (S, A):
        return R.unsqueeze(-1)
    if R.shape == (S,):
        return R.view(S, 1, 1).expand(S, A, 1)
    raise ValueError(f"R must have shape [S, A, S] = {[S, A, S]}, [S, A] = {[S, A]} or [S] = {[S]}; "
                     f"got {list(R.shape)}")


def _values_on_pattern(R: Tensor, rows: Tensor, cols: Tensor, S: int) -> Tensor:
    """The entries of sparse R [S*A, S] at the positions (rows, cols); entries R does not store are 0."""
    coo = R.to_sparse_coo().coalesce()
    r_rows, r_cols = coo.indices()
    values = coo.values().to(torch.float64)
    if r_rows.shape == rows.shape and torch.equal(r_rows, rows) and torch.equal(r_cols, cols):
        return values  # R is stored on exactly P's pattern
    keys = rows * S + cols
    if values.numel() == 0:
        return torch.zeros(keys.shape, dtype=torch.float64)
    r_keys = r_rows * S + r_cols  # coalesced, hence sorted
    pos = torch.searchsorted(r_keys, keys).clamp_max(r_keys.numel() - 1)
    return torch.where(r_keys[pos] == keys, values[pos], 0.0)


def _csr(rows: Tensor, cols: Tensor, values: list[Tensor], n_rows: int, n_cols: int) -> list[Tensor]:
    """CSR tensors sharing one pattern, from sorted (row-major) COO indices; int32 indices when they fit."""
    counts = torch.bincount(rows, minlength=n_rows)
    crow = torch.zeros(n_rows + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    # int32 indices halve the index traffic of a sparse mat-vec (about 2x faster on CPU).
    index_dtype = torch.int32 if max(rows.numel(), n_cols) < 2**31 - 1 else torch.int64
    crow, cols = crow.to(index_dtype), cols.to(index_dtype)
    return [_sparse_csr(crow, cols, v, (n_rows, n_cols)) for v in values]


def _sparse_csr(crow: Tensor, cols: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """A CSR tensor from trusted pieces, without torch's one-time "beta" notice (thorndike relies only on
    construction, mat-vec and index access, which are stable)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, size, check_invariants=False)


def _row_of_entries(crow: Tensor, nnz: int) -> Tensor:
    """For CSR row pointers, the row (long) of each of the nnz stored entries."""
    # Mark where each row after the first begins and count the marks: O(nnz), and unlike repeat_interleave it costs
    # no thread start-up on tiny inputs.
    starts = crow[1:-1].long()
    starts = starts[starts < nnz]
    marks = torch.zeros(nnz, dtype=torch.int64).index_add_(0, starts, torch.ones_like(starts))
    return torch.cumsum(marks, 0)


def _select_rows(crow: Tensor, cols: Tensor, values: list[Tensor], rows: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
    """CSR pieces of the sub-matrix made of ``rows`` (in that order)."""
    crow = crow.long()
    starts, counts = crow[rows], crow[rows + 1] - crow[rows]
    new_crow = torch.zeros(rows.numel() + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=new_crow[1:])
    total = int(new_crow[-1])
    row_of = _row_of_entries(new_crow, total)
    gather = starts[row_of] + torch.arange(total) - new_crow[row_of]
    return new_crow.to(cols.dtype), cols[gather], [v[gather] for v in values]


def _terminal_mask(terminal: Any, S: int) -> Tensor:
    if terminal is None:
        return torch.zeros(S, dtype=torch.bool)
    t = torch.as_tensor(np.asarray(terminal))
    if t.dtype == torch.bool:
        if t.shape != (S,):
            raise ValueError(f"a terminal mask must have shape [{S}], got {list(t.shape)}")
        return t.clone()
    mask = torch.zeros(S, dtype=torch.bool)
    if t.numel():
        if t.min() < 0 or t.max() >= S:
            raise ValueError(f"terminal state indices must lie in [0, {S}), got {t.tolist()}")
        mask[t.long()] = True
    return mask


def _start_distribution(start: Any, terminal: Tensor, atol: float) -> Tensor:
    S = terminal.numel()
    if start is None:
        if terminal.all():
            raise ValueError("every state is terminal; give at least one non-terminal state")
        p = (~terminal).to(torch.float64)
        return p / p.sum()
    p = torch.as_tensor(np.asarray(start) if not isinstance(start, Tensor) else start, dtype=torch.float64)
    if p.shape != (S,):
        raise ValueError(f"start must have shape [{S}], got {list(p.shape)}")
    if (p < 0).any():
        s = int(torch.nonzero(p < 0)[0])
        raise ValueError(f"start[{s}] = {float(p[s]):.6g} is negative")
    if not math.isclose(float(p.sum()), 1.0, abs_tol=atol):
        raise ValueError(f"start sums to {float(p.sum()):.6g}, not 1")
    if (p[terminal] > 0).any():
        s = int(torch.nonzero((p > 0) & terminal)[0])
        raise ValueError(f"start puts probability {float(p[s]):.6g} on terminal state {s}; an episode cannot "
                         "begin in a terminal state")
    return p.clone()


def _names(names: Sequence[str] | None, n: int, what: str) -> list[str] | None:
    if names is None:
        return None
    names = [str(x) for x in names]
    if len(names) != n:
        raise ValueError(f"{what} must have {n} entries, got {len(names)}")
    return names
