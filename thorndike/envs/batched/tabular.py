"""Any :class:`~thorndike.envs.tabular.TabularMDP` as a batched torch env: ``N`` copies of one finite MDP.

The state of the batch is one long tensor ``[N]`` of state indices. A step samples ``s' ~ P(.|s, a)`` for every copy
at once by inverse-CDF sampling within the copy's row of the model, pays ``R(s, a, s')``, terminates on entering a
terminal state and truncates at the MDP's ``max_steps``; copies that end restart from a state drawn from ``start`` in
the same call (the conventions of :class:`~thorndike.envs.batched.base.BatchedEnv`, whose step this env reuses).

Sampling. Dense and sparse models are handled alike, through their non-zero transitions in CSR order (row
``s * A + a``; :meth:`TabularMDP.transition_arrays`), so memory is O(non-zeros) and a dense P never has its full
rows gathered per copy. Each row's cumulative probabilities are stored as integers ``round(cdf * 2**b)`` (the last
one exactly ``2**b``), and a copy draws ``u``, ``b`` uniform random bits: the chosen transition is the first of its row
whose level exceeds ``u``. Computed in integers, the row boundaries are exact: the draw can never leave its row,
every zero-probability transition is impossible, and each probability is reproduced to within ``2**-b``
(``b`` = 52 below 1024 state-action pairs, 40 at four million). Two ways find that transition:

- rows with at most ``_SCAN_MAX_SUCCESSORS`` transitions (every toy-text env and gridworld): count the row's inner
  levels at or below ``u``, one gather and compare per column; on CPU this is several times faster than a binary
  search for so few successors;
- otherwise one ``torch.searchsorted`` over all rows at once, on keys ``row * 2**b + level``: the row offset makes the
  keys of the whole model one sorted array, and the query ``row * 2**b + u`` lands inside its own row.

Initial states come from ``start`` the same way: a constant when it is a single state (FrozenLake, CliffWalking), an
integer scaling of ``u`` when it is uniform over its support (Taxi, the gridworlds' default), a search otherwise.
Deterministic models draw no random numbers for transitions at all.

The Gymnasium ids in :data:`TOY_TEXT` are registered as native envs: their model is built with
:mod:`thorndike.envs.toy_text` once per process and configuration, and ``th.envs.make("FrozenLake-v1", n_envs)``
gives this env (``backend="gymnasium"`` gives Gymnasium's). Keyword arguments that only change the table, such as
``env_kwargs={"is_slippery": False}`` or ``{"map_name": "8x8"}``, give the native env of that configuration; others
(Taxi's ``fickle_passenger``, ``render_mode``) make ``make`` fall back to Gymnasium (see :class:`ToyTextModel`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.envs import toy_text
from thorndike.envs.batched.base import BatchedEnv
from thorndike.envs.tabular import TabularMDP

__all__ = ["TOY_TEXT", "NativeToyText", "PlainModel", "TabularEnv", "ToyTextModel", "batched", "toy_text_env"]

# Up to this many transitions per (s, a), sampling counts levels column by column; beyond, it binary-searches.
# Measured on CPU at 4096 copies: about 15 us per column against about 220 us for one searchsorted.
_SCAN_MAX_SUCCESSORS = 8

# Start distributions whose positive entries differ by less than this (relative) are sampled as uniform.
_UNIFORM_RTOL = 1e-12

# Gymnasium keyword arguments that change only what is in the toy-text env's table P (or its time limit), so the
# TabularMDP converted from that table honours them. Others (Taxi's fickle_passenger, render_mode) are refused.
_FROZEN_LAKE_KWARGS = frozenset({"map_name", "desc", "is_slippery", "success_rate", "reward_schedule"})
_TIME_LIMIT = frozenset({"max_episode_steps"})


@dataclass(frozen=True)
class ToyTextModel:
    """How to build the TabularMDP of one Gymnasium toy-text id, and which of its keyword arguments the model honours.

    Calling it with keyword arguments (``TOY_TEXT["FrozenLake-v1"](is_slippery=False)``) builds the model of
    ``gym.make(env_id, **env_kwargs)``; an argument outside :attr:`kwargs` raises ValueError naming it.
    """

    env_id: str
    kwargs: frozenset[str]
    """The Gymnasium keyword arguments the model honours (the others change dynamics outside the table, or only how
    the env is shown)."""

    def unsupported(self, env_kwargs: Mapping[str, Any]) -> list[str]:
        """The keyword arguments in ``env_kwargs`` that the model cannot honour, sorted."""
        return sorted(set(env_kwargs) - self.kwargs)

    def __call__(self, gamma: float = 0.99, **env_kwargs: Any) -> TabularMDP:
        unsupported = self.unsupported(env_kwargs)
        if unsupported:
            raise ValueError(
                f"the TabularMDP model of {self.env_id} cannot honour {', '.join(map(repr, unsupported))}; "
                f"it takes {', '.join(sorted(self.kwargs))}"
            )
        return toy_text.toy_text_model(self.env_id, gamma=gamma, **env_kwargs)


TOY_TEXT: dict[str, ToyTextModel] = {
    model.env_id: model
    for model in (
        ToyTextModel("FrozenLake-v1", _FROZEN_LAKE_KWARGS | _TIME_LIMIT),  # Gymnasium's default: 4x4, slippery
        ToyTextModel("FrozenLake8x8-v1", _FROZEN_LAKE_KWARGS | _TIME_LIMIT),
        ToyTextModel("CliffWalking-v1", frozenset({"is_slippery"}) | _TIME_LIMIT),
        ToyTextModel("CliffWalkingSlippery-v1", frozenset({"is_slippery"}) | _TIME_LIMIT),
        # Gymnasium 1.4 registers Taxi-v4 only (v3 is deprecated)
        ToyTextModel("Taxi-v4", frozenset({"is_rainy", "rainy_probability"}) | _TIME_LIMIT),
    )
}
"""The Gymnasium ids with a native version: each builds the TabularMDP of the id, in its registered configuration or
with the keyword arguments it is given."""


class TabularEnv(BatchedEnv):
    """``n_envs`` copies of a :class:`TabularMDP` as a long tensor of state indices ``[N]`` on ``device``.

    Args:
        mdp: the model (dense or sparse). It is read once, at construction; changing it later does not change
            the env.
        n_envs: number of copies.
        device: where the copies live (CPU or CUDA).
        one_hot: observe one-hot vectors ``[N, S]`` in ``dtype`` (observation space ``Box(0, 1, (S,))``) instead of
            the state index (long ``[N]``, observation space ``Discrete(S)``), for neural-network policies.
        max_episode_steps: the time limit; None takes the MDP's ``max_steps`` (and no limit when that is None).
        dtype: float32 or float64, the dtype of one-hot observations.
        env_id: the Gymnasium id this env reproduces, if any (``"TabularMDP"`` otherwise).

    Actions are ``Discrete(A)`` indices; one outside ``[0, A)`` raises (on CPU) rather than reading another
    state's row. Rewards are float32 as in every VecEnv; episode returns accumulate in float64.
    A copy put in a terminal state with ``set_state`` steps by its row of P, as Gymnasium's toy-text envs do
    (their terminal rows are self-loops paying 0); copies never get there by themselves, since they reset.
    ``get_state`` / ``set_state`` exchange ``(state [N] long, elapsed_steps [N])``.
    """

    env_id = "TabularMDP"
    default_max_episode_steps = None  # per instance: the MDP's max_steps

    def __init__(
        self,
        mdp: TabularMDP,
        n_envs: int,
        device: torch.device | str = "cpu",
        one_hot: bool = False,
        max_episode_steps: int | None = None,
        dtype: torch.dtype = torch.float32,
        env_id: str | None = None,
    ):
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
        self.mdp = mdp
        self.n_states, self.n_actions = mdp.n_states, mdp.n_actions
        self.one_hot = bool(one_hot)
        if env_id is not None:
            self.env_id = env_id
        limit = mdp.max_steps if max_episode_steps is None else max_episode_steps
        super().__init__(n_envs, device, dtype, limit)

    # ---- construction ---------------------------------------------------------------------------------------

    def _spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        if self.one_hot:
            np_dtype = np.float32 if self.dtype == torch.float32 else np.float64
            observation: gym.spaces.Space = gym.spaces.Box(0.0, 1.0, (self.n_states,), dtype=np_dtype)
        else:
            observation = gym.spaces.Discrete(self.n_states)
        return observation, gym.spaces.Discrete(self.n_actions)

    def _setup_state(self) -> Tensor:
        """Move the model to the device as sampling tables (see the module docstring); the state is all zeros."""
        # Levels have b bits: row * 2**b + level must fit in an int64, and so must u * (number of start states),
        # which is at most S <= S * A. Beyond 52 bits the float64 probabilities have nothing left to resolve.
        self._bits = min(52, 62 - (self.n_states * self.n_actions).bit_length())
        self._draw_mask = self._constant((1 << self._bits) - 1, torch.int64)
        self._action_ids = torch.arange(self.n_actions, device=self.device)
        self._action_shape = torch.Size((self.n_envs,))
        self._terminal = self.mdp.terminal.to(self.device)
        self._setup_transitions()
        self._setup_start()
        # One [draws, N] integer tensor per step: row 0 picks transitions, the last row initial states.
        n_draws = int(self._random_transitions) + int(self._start_kind != "single")
        self._draws = torch.empty((n_draws, self.n_envs), dtype=torch.int64, device=self.device)
        return torch.zeros(self.n_envs, dtype=torch.int64, device=self.device)

    def _setup_transitions(self) -> None:
        """Per transition (CSR order): next state and reward; per row: where it starts, and its levels as columns
        (few successors) or as sorted search keys (many)."""
        n_rows, device = self.n_states * self.n_actions, self.device
        arrays = self.mdp.transition_arrays()
        crow = torch.as_tensor(np.asarray(arrays["crow"]), dtype=torch.int64)
        next_state = torch.as_tensor(np.asarray(arrays["cols"]), dtype=torch.int64)
        probs = torch.as_tensor(np.asarray(arrays["probs"]), dtype=torch.float64)
        rewards = torch.as_tensor(np.asarray(arrays["rewards"]), dtype=torch.float64)
        degree = crow[1:] - crow[:-1]
        max_degree = int(degree.max())
        row_of = torch.repeat_interleave(torch.arange(n_rows), degree)
        position = torch.arange(next_state.numel()) - crow[row_of]
        cdf = _row_cumsum(probs, crow, row_of, position, max_degree)
        levels = torch.round(cdf * 2.0**self._bits).to(torch.int64)

        self._next_state = next_state.to(device)
        self._reward = rewards.to(device)
        self._random_transitions = max_degree > 1
        self._search = max_degree > _SCAN_MAX_SUCCESSORS
        self._row_start = crow[:-1].to(device)
        self._keys = (row_of * (1 << self._bits) + levels).to(device) if self._search else None
        self._columns: tuple[Tensor, ...] = ()
        if self._random_transitions and not self._search:
            # Column c holds each row's (c+1)-th level; a row with fewer inner levels is padded with 2**b, which no
            # draw reaches. The row's last level (2**b) is never compared.
            table = torch.full((n_rows, max_degree - 1), 1 << self._bits, dtype=torch.int64)
            inner = position < (degree[row_of] - 1)
            table[row_of[inner], position[inner]] = levels[inner]
            self._columns = tuple(column.contiguous().to(device) for column in table.t())

    def _setup_start(self) -> None:
        """The start distribution's support, how to sample it, and its levels (for a non-uniform one)."""
        start = self.mdp.start
        support = torch.nonzero(start > 0).squeeze(1)
        weights = start[support]
        self._start_support = support.to(self.device)
        self._start_kind = (
            "single" if support.numel() == 1
            else "uniform" if float(weights.max() - weights.min()) <= _UNIFORM_RTOL * float(weights.max())
            else "search"
        )
        self._single_start = support[0].to(self.device)
        self._n_start = self._constant(support.numel(), torch.int64)
        cdf = torch.cumsum(weights, 0)
        self._start_keys = torch.round(cdf / cdf[-1] * 2.0**self._bits).to(torch.int64).to(self.device)

    # ---- the step ---------------------------------------------------------------------------------------------

    def _step_random(self) -> Tensor:
        """``b`` uniform random bits per copy for its transition and for its next initial state (rows of the
        result), only those the model needs: a deterministic MDP with one start state draws nothing."""
        if self._draws.shape[0] == 0:
            return self._draws
        return self._draws.random_(generator=self._generator).bitwise_and_(self._draw_mask)

    def _transition(self, state: Tensor, actions: Tensor, random: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        row = torch.add(actions, state, alpha=self.n_actions)
        if self._search:
            entry = torch.searchsorted(self._keys, torch.add(random[0], row, alpha=1 << self._bits), right=True)
        else:
            # the row's first transition, moved on by each inner level the draw reaches (none when deterministic)
            entry = torch.index_select(self._row_start, 0, row)
            # one view of the draw for every column (indexing costs about a microsecond a call); a deterministic
            # model has no columns and draws nothing
            draw = random[0] if self._columns else None
            for column in self._columns:
                entry += torch.index_select(column, 0, row) <= draw
        next_state = torch.index_select(self._next_state, 0, entry)
        reward = torch.index_select(self._reward, 0, entry)
        terminated = torch.index_select(self._terminal, 0, next_state)
        # a 0-dim initial state broadcasts in BatchedEnv._advance's torch.where
        initial = self._initial_states(random[-1]) if self._start_kind != "single" else self._single_start
        return next_state, reward, terminated, initial

    def _initial_states(self, bits: Tensor) -> Tensor:
        """Initial states ``[N]`` from ``b`` random bits per copy (not for a single start state)."""
        if self._start_kind == "uniform":
            # floor(u * n / 2**b) is uniform over the n support states; u * n < 2**62 by the choice of b
            index = torch.mul(bits, self._n_start).bitwise_right_shift_(self._bits)
        else:
            index = torch.searchsorted(self._start_keys, bits, right=True)
        return torch.index_select(self._start_support, 0, index)

    def _sample_initial_states(self) -> Tensor:
        if self._start_kind == "single":
            return self._single_start.expand(self.n_envs).clone()
        bits = torch.empty(self.n_envs, dtype=torch.int64, device=self.device)
        bits.random_(generator=self._generator).bitwise_and_(self._draw_mask)
        return self._initial_states(bits)

    def _prepare_actions(self, actions: Tensor) -> Tensor:
        # The table lookup raises for an action outside [0, A), which would otherwise index another state's row.
        # Actions already in the step's layout (what the tabular learners pass) skip the generic conversion,
        # whose no-op reshape and casts cost several microseconds a step when there are few copies.
        if not (isinstance(actions, Tensor) and actions.dtype == torch.int64 and actions.shape == self._action_shape
                and actions.device == self._action_ids.device):
            actions = super()._prepare_actions(actions)
        return torch.index_select(self._action_ids, 0, actions)

    # ---- the steps played in plain Python (the few-runs path of thorndike.tabular.scalar) ----------------------

    def plain_model(self) -> PlainModel | None:
        """The model and the step of :meth:`step` as Python lists and numbers, for a caller that plays the steps
        itself without tensor ops (:mod:`thorndike.tabular.scalar`); None where that is not offered: one-hot
        observations, rows sampled by search, a start distribution that is neither one state nor uniform, a device
        other than the CPU (a CUDA generator's one draw of many steps is not those steps' draws), or a reward that
        float32 cannot hold (the tensor step's check names it)."""
        reward32 = self._reward.to(torch.float32)
        if (self.one_hot or self._search or self._start_kind == "search" or self.device.type != "cpu"
                or not bool(torch.isfinite(reward32).all())):
            return None
        return PlainModel(
            n_actions=self.n_actions, row_start=self._row_start.tolist(), columns=[c.tolist() for c in self._columns],
            next_state=self._next_state.tolist(), reward=self._reward.tolist(),
            reward32=reward32.double().tolist(), terminal=self._terminal.tolist(), limit=int(self._step_limit),
            bits=self._bits, random_transitions=self._random_transitions,
            single_start=int(self._single_start) if self._start_kind == "single" else None,
            start_support=self._start_support.tolist(), n_start=int(self._n_start))

    def draw_steps(self, steps: int) -> tuple[list[int], list[int]]:
        """The random bits of ``steps`` calls of :meth:`step` in one op, as what :meth:`_step_random` would draw in
        the same order (torch's CPU generator fills a tensor element by element, so one draw of ``[steps, draws,
        N]`` leaves it where ``steps`` draws of ``[draws, N]`` would): the bits that pick transitions and those
        that pick initial states, each a flat list ``[steps * N]`` (step ``t``, copy ``c`` at ``t * N + c``), empty
        where the model draws none."""
        if self._draws.shape[0] == 0:
            return [], []
        bits = torch.empty((steps, *self._draws.shape), dtype=torch.int64, device=self.device)
        bits.random_(generator=self._generator).bitwise_and_(self._draw_mask)
        # flat lists of plain ints (through NumPy, several times faster than a tensor's tolist)
        transition = bits[:, 0].reshape(-1).numpy().tolist() if self._random_transitions else []
        start = bits[:, -1].reshape(-1).numpy().tolist() if self._start_kind != "single" else []
        return transition, start

    def plain_state(self) -> tuple[list[int], list[int], list[float]]:
        """Each copy's state, elapsed steps and episode return so far, as Python lists."""
        return self._state.tolist(), self._elapsed.tolist(), self._returns.tolist()

    def set_plain_state(self, states: list[int], elapsed: list[int], returns: list[float]) -> Tensor:
        """Put back what :meth:`plain_state` gave, after steps played with :class:`PlainModel`; returns the
        observations, as :meth:`step` would have."""
        self._state = torch.tensor(states, dtype=torch.int64, device=self.device)
        self._elapsed = torch.tensor(elapsed, dtype=torch.int64, device=self.device)
        self._returns = torch.tensor(returns, dtype=torch.float64, device=self.device)
        return self._observe_kept(self._state)

    def _observe(self, state: Tensor) -> Tensor:
        if not self.one_hot:
            return state
        return torch.zeros((state.shape[0], self.n_states), dtype=self.dtype, device=self.device).scatter_(
            1, state.unsqueeze(1), 1.0
        )

    def _row_mask(self, done: Tensor) -> Tensor:
        """One index per copy: the reset mask is ``done`` itself."""
        return done

    def _check_batch(self, state: Tensor, what: str) -> None:
        if tuple(state.shape) != (self.n_envs,):
            raise ValueError(f"{what} must have shape ({self.n_envs},) (one state index per copy), got "
                             f"{tuple(state.shape)}")
        if state.dtype.is_floating_point or state.dtype.is_complex or state.dtype == torch.bool:
            raise ValueError(f"{what} must hold integer state indices, got {state.dtype}")
        if state.numel() and (int(state.min()) < 0 or int(state.max()) >= self.n_states):
            raise ValueError(f"{what} indices must lie in [0, {self.n_states}), got [{int(state.min())}, "
                             f"{int(state.max())}]")

    def __repr__(self) -> str:
        return (f"TabularEnv({self.env_id}, n_states={self.n_states}, n_actions={self.n_actions}, "
                f"n_envs={self.n_envs}, device={self.device}, one_hot={self.one_hot})")


@dataclass
class PlainModel:
    """A :class:`TabularEnv`'s model and step as Python lists (see :meth:`TabularEnv.plain_model`).

    :meth:`step` is one copy's :meth:`TabularEnv.step` on Python numbers: ``_transition`` (the row's first
    transition moved on by each inner level the draw reaches, the initial state from its own bits) and
    ``BatchedEnv._advance`` (time limit, episode return, autoreset), with the same integer and float64 operations,
    so it gives the same numbers.
    """

    n_actions: int
    row_start: list[int]
    columns: list[list[int]]
    next_state: list[int]
    reward: list[float]
    reward32: list[float]
    terminal: list[bool]
    limit: int
    bits: int
    random_transitions: bool
    single_start: int | None
    start_support: list[int]
    n_start: int

    def step(self, state: int, action: int, elapsed: int, returns: float, transition_bits: int, start_bits: int
             ) -> tuple[int, float, bool, bool, int, int, float, float, int]:
        """One copy's step from ``state`` with ``action``, given that step's bits for the copy from
        :meth:`TabularEnv.draw_steps` (either is ignored where the model draws none).

        Returns (true next state, reward as float32 then float64 (what a learner sees), terminated, truncated,
        the state the copy goes on from, its elapsed steps and return so far after the step, then the episode's
        return and length counting this step: what the ledger records when it ends)."""
        row = state * self.n_actions + action
        entry = self.row_start[row]
        if self.random_transitions:
            for column in self.columns:
                if column[row] <= transition_bits:
                    entry += 1
        next_state = self.next_state[entry]
        terminated = self.terminal[next_state]
        length = elapsed + 1
        truncated = length >= self.limit
        episode_return = returns + self.reward[entry]
        reward = self.reward32[entry]
        if not (terminated or truncated):
            return next_state, reward, terminated, truncated, next_state, length, episode_return, episode_return, length
        if self.single_start is not None:
            initial = self.single_start
        else:  # uniform over the support, as TabularEnv._initial_states: floor(u * n / 2**b)
            initial = self.start_support[(start_bits * self.n_start) >> self.bits]
        return next_state, reward, terminated, truncated, initial, 0, 0.0, episode_return, length


def batched(
    mdp: TabularMDP,
    n_envs: int,
    device: torch.device | str = "cpu",
    one_hot: bool = False,
    max_episode_steps: int | None = None,
) -> TabularEnv:
    """``n_envs`` copies of any TabularMDP (gridworlds, toy-text conversions, random MDPs) as a native batched env.

    Call ``reset(seed)`` before stepping. ``max_episode_steps=None`` keeps the MDP's own ``max_steps``.
    """
    return TabularEnv(mdp, n_envs, device=device, one_hot=one_hot, max_episode_steps=max_episode_steps)


def toy_text_env(
    env_id: str,
    n_envs: int,
    device: torch.device | str = "cpu",
    one_hot: bool = False,
    max_episode_steps: int | None = None,
    **env_kwargs: Any,
) -> TabularEnv:
    """The native version of a Gymnasium toy-text id in :data:`TOY_TEXT`: its registered configuration and time limit,
    changed by ``env_kwargs`` as ``gym.make(env_id, **env_kwargs)`` would change them (ValueError for an argument
    the model cannot honour, see :class:`ToyTextModel`)."""
    if env_id not in TOY_TEXT:
        raise ValueError(f"no native tabular env for {env_id!r}; known ids: {', '.join(TOY_TEXT)}")
    # A shallow copy shares the cached model's tensors (never modified) but not its attributes or env-view state.
    mdp = _toy_text_mdp(env_id, **env_kwargs).copy()
    return TabularEnv(mdp, n_envs, device=device, one_hot=one_hot, max_episode_steps=max_episode_steps,
                      env_id=env_id)


class NativeToyText:
    """The :data:`thorndike.envs.NATIVE_ENVS` entry of a toy-text id: ``(n_envs, device, **env_kwargs) -> TabularEnv``.

    :meth:`accepts` tells ``make`` whether the native env honours a set of keyword arguments (the model's, plus the
    native options ``one_hot`` and ``max_episode_steps``); when it does not, ``make`` falls back to Gymnasium.
    """

    _NATIVE_OPTIONS = frozenset({"one_hot", "max_episode_steps"})

    def __init__(self, env_id: str):
        self.env_id = env_id

    def accepts(self, env_kwargs: Mapping[str, Any]) -> bool:
        return not TOY_TEXT[self.env_id].unsupported({k: v for k, v in env_kwargs.items()
                                                      if k not in self._NATIVE_OPTIONS})

    def __call__(self, n_envs: int, device: torch.device | str = "cpu", **env_kwargs: Any) -> TabularEnv:
        return toy_text_env(self.env_id, n_envs, device=device, **env_kwargs)

    def __repr__(self) -> str:
        return f"NativeToyText({self.env_id!r})"


def _toy_text_mdp(env_id: str, **env_kwargs: Any) -> TabularMDP:
    """Each configuration's model, converted from Gymnasium's table once per process (Taxi's takes about 0.2 s)."""
    try:
        key = tuple(sorted(env_kwargs.items()))
        hash(key)
    except TypeError:  # an unhashable argument (a desc given as a list of strings): built each time
        return TOY_TEXT[env_id](**env_kwargs)
    return _cached_toy_text_mdp(env_id, key)


@functools.cache
def _cached_toy_text_mdp(env_id: str, kwargs: tuple[tuple[str, Any], ...]) -> TabularMDP:
    return TOY_TEXT[env_id](**dict(kwargs))


def _row_cumsum(values: Tensor, crow: Tensor, row_of: Tensor, position: Tensor, max_degree: int) -> Tensor:
    """Each CSR row's cumulative sums, divided by the row's total so that its last entry is exactly 1.

    ``row_of`` and ``position`` give each entry's row and its index within the row. A Hillis-Steele scan in
    log2(max_degree) passes over the flat entries: each pass adds the value ``shift`` places back where it lies in
    the same row. Unlike one cumulative sum over all rows minus the sum before each row, its rounding error does
    not grow with the number of rows (that running sum reaches S * A).
    """
    cumulative = values.clone()
    shift = 1
    while shift < max_degree:
        carried = torch.zeros_like(cumulative)
        carried[shift:] = cumulative[:-shift]
        cumulative = cumulative + carried.masked_fill_(position < shift, 0.0)
        shift *= 2
    totals = cumulative[crow[1:] - 1]  # every row has an entry: its probabilities sum to 1
    return cumulative / totals[row_of]

