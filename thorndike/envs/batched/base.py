"""The shared machinery of the native batched torch envs: one tensor of ``N`` copies, stepped in a few tensor ops.

A subclass describes one Gymnasium env (its spaces, reset bounds, time limit and ``_dynamics``); :class:`BatchedEnv`
turns that into the :class:`~thorndike.envs.vec_env.VecEnv` protocol with the conventions of
:class:`~thorndike.envs.vec_env.GymnasiumVecEnv`: same-step autoreset, ``info["final_obs"]``, time limits reported
as ``truncated``, Box actions clipped to the space, and the fixed-shape ``info`` of the
:class:`~thorndike.envs.vec_env.VecEnv` protocol (``final_obs``, ``done``, ``episode_return``, ``episode_length``).

The step never synchronises with the host: no ``.item()``, no branch on a tensor's value, no shape that depends on
data. Copies that end are reset with ``torch.where`` against freshly sampled initial states, so a step costs the same
on CPU and GPU whatever happens, and could later be captured by ``torch.compile`` or a CUDA graph. For the same
reason ``info`` holds only fixed-shape entries: the statistics of the episodes that ended are a boolean-mask gather
(``info["episode_return"][info["done"]]``), a sync the caller chooses when to pay.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import torch
from torch import Tensor

# Uniform draws are built from raw integer bits: reset states are drawn for every copy on every step (see
# BatchedEnv.step), and torch's CPU generator fills random integers faster than ``uniform_`` fills floats. The mantissa
# widths match what ``torch.rand`` uses (24 bits for float32, 53 for float64), so every value k / 2**bits is equally
# likely. (Filling the same bits as int64 gives the same numbers once each pair of 32-bit halves is swapped back, and
# measured only 5-7% faster here: 0.67 against 0.72 ms for 262,144 numbers; not worth the reshuffle.)
UNIFORM_BITS = {torch.float32: (torch.int32, 24), torch.float64: (torch.int64, 53)}

# Replicating a row's flag into every byte of a wider integer gives a contiguous [N, width] bool mask in two
# elementwise ops; ``torch.where`` with the broadcast [N, 1] mask instead runs a scalar inner loop of length
# ``width`` on CPU, about 2x slower for CartPole's 4 columns.
_MASK_INT = {2: (torch.int16, 0x0101), 4: (torch.int32, 0x01010101)}


Step = tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]


class Advance(NamedTuple):
    """What :meth:`BatchedEnv._advance` computes: the env's next internal tensors, then the step's outputs."""

    state: Tensor
    elapsed_steps: Tensor
    returns: Tensor
    obs: Tensor
    reward: Tensor
    terminated: Tensor
    truncated: Tensor
    final_obs: Tensor
    done: Tensor
    episode_return: Tensor
    episode_length: Tensor


class BatchedEnv(ABC):
    """``n_envs`` copies of one classic-control env as a ``[N, state_size]`` tensor on ``device``.

    A subclass sets the class attributes below, builds ``single_observation_space`` and ``single_action_space``
    (the same Gymnasium spaces as the real env) in ``_spaces``, and implements ``_dynamics`` (and ``_observe``
    when the observation is not the state itself).

    An env whose state is not a float box, or whose dynamics are random, overrides the hooks those assumptions
    live in instead: ``_setup_state`` / ``_sample_initial_states`` (state layout and resets), ``_step_random`` /
    ``_transition`` (the step's random numbers and what they become), ``_row_mask`` and ``_check_batch``
    (see :class:`~thorndike.envs.batched.tabular.TabularEnv`).

    Randomness (reset states) comes from one ``torch.Generator`` on ``device``, seeded by ``reset(seed)``; the same
    seed and actions give the same run, but not the same numbers as Gymnasium's per-copy NumPy generators.
    Observations have the env's ``dtype`` (float32 by default, float64 on request); rewards are float32 as in
    :class:`~thorndike.envs.vec_env.GymnasiumVecEnv`. Discrete actions are looked up in a table, so an action
    outside the space raises (on CPU) instead of silently driving the physics with a made-up force.
    """

    env_id: ClassVar[str]
    """The Gymnasium id this env reproduces."""
    state_names: ClassVar[tuple[str, ...]]
    """The physical state's columns, in order (what ``get_state`` / ``set_state`` exchange)."""
    reset_low: ClassVar[tuple[float, ...]]
    reset_high: ClassVar[tuple[float, ...]]
    """Initial states are uniform in ``[reset_low, reset_high)`` per column, as in the Gymnasium env's ``reset``."""
    default_max_episode_steps: ClassVar[int | None]
    """Gymnasium's registered time limit for ``env_id``; None for an env registered without one (no truncation)."""

    def __init__(
        self,
        n_envs: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = None,
    ):
        if not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
        if dtype not in UNIFORM_BITS:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        limit = self.default_max_episode_steps if max_episode_steps is None else max_episode_steps
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        self.n_envs = n_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self._max_episode_steps = limit
        self.single_observation_space, self.single_action_space = self._spaces()
        self._generator = torch.Generator(device=self.device)
        self._seeded = False
        # Steps of continue_episodes whose random draws are owed to the generator (see _settle_draws).
        self._owed_draws = 0
        cls = type(self)
        self._draws_only_initial_states = all(getattr(cls, name) is getattr(BatchedEnv, name) for name in
                                              ("_step_random", "_transition", "_sample_initial_states"))
        self._one_step = self._constant(1, torch.int64)
        self._no_steps = self._constant(0, torch.int64)
        self._no_return = self._constant(0.0, torch.float64)
        # Without a time limit, a limit no episode length reaches keeps the step free of a branch.
        self._step_limit = self._constant(torch.iinfo(torch.int64).max if limit is None else limit, torch.int64)
        self._state = self._setup_state()
        self._elapsed = torch.zeros(n_envs, dtype=torch.int64, device=self.device)
        self._returns = torch.zeros(n_envs, dtype=torch.float64, device=self.device)
        self._started = False
        space = self.single_action_space
        self._discrete_actions = isinstance(space, gym.spaces.Discrete)
        self._actions_shape = torch.Size((n_envs,))
        if isinstance(space, gym.spaces.Box):
            # every Box action space here has one bound for all components, so clamp takes plain numbers
            self._action_low, self._action_high = float(space.low.min()), float(space.high.max())
        self._setup_constants()

    def _setup_constants(self) -> None:  # noqa: B027  (optional hook: an env may need no constants)
        """Prepare the tensors ``_dynamics`` uses (on the device, in ``dtype``); called at the end of ``__init__``."""

    @property
    def max_episode_steps(self) -> int | None:
        """The time limit: an episode is truncated on its ``max_episode_steps``-th step (None: never)."""
        return self._max_episode_steps

    # ---- what a subclass provides ---------------------------------------------------------------------------

    @abstractmethod
    def _spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        """The single-copy observation and action spaces, equal to the Gymnasium env's."""

    def _dynamics(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step of every copy: ``(next_state [N, D], reward [N], terminated bool [N])``, all fresh tensors.

        ``actions`` are on the device: int64 ``[N]`` for Discrete spaces, ``dtype`` ``[N, ...]`` already clipped
        to the space for Box ones. Every deterministic env implements this; an env with random dynamics overrides
        ``_transition`` (and ``_step_random``) instead, since ``_dynamics`` receives no random numbers.
        """
        raise NotImplementedError(f"{type(self).__name__} implements neither _dynamics nor _transition")

    def _transition(self, state: Tensor, actions: Tensor, random: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(next_state, reward, terminated, initial)``: the step of every copy and a fresh initial state for each,
        computed from ``random``, the output of :meth:`_step_random`. By default ``_dynamics``, with ``random``
        holding the initial states."""
        next_state, reward, terminated = self._dynamics(state, actions)
        return next_state, reward, terminated, random

    def _setup_state(self) -> Tensor:
        """Prepare what ``_sample_initial_states`` and ``_row_mask`` need and return the state before the first
        reset (called once, by ``__init__``). By default: uniform draws in the box ``[reset_low, reset_high)``."""
        dtype, n_envs = self.dtype, self.n_envs
        low = torch.tensor(self.reset_low, dtype=dtype, device=self.device)
        high = torch.tensor(self.reset_high, dtype=dtype, device=self.device)
        bits_dtype, self._uniform_bits = UNIFORM_BITS[dtype]
        self._reset_low = low
        # The 2**-bits of the integer-to-uniform conversion is folded into the width: one op fewer per step.
        self._reset_scale = (high - low) * 2.0**-self._uniform_bits
        self._random_bits = torch.empty((n_envs, len(self.state_names)), dtype=bits_dtype, device=self.device)
        self._bits_mask = self._constant((1 << self._uniform_bits) - 1, bits_dtype)
        mask_dtype, mask_ones = _MASK_INT.get(len(self.state_names), (torch.bool, True))
        self._mask_ones = self._constant(mask_ones, mask_dtype)
        return torch.zeros((n_envs, len(self.state_names)), dtype=dtype, device=self.device)

    def _observe(self, state: Tensor) -> Tensor:
        """The observation of each copy; by default the state itself (CartPole, MountainCar)."""
        return state

    def _observe_kept(self, state: Tensor) -> Tensor:
        """The observation of a state the env keeps: a copy when the observation is the state itself, so that a
        caller changing the returned tensor cannot change the env. (``final_obs`` needs no copy: the state it
        observes is not kept.)"""
        obs = self._observe(state)
        return obs.clone() if obs is state else obs

    # ---- the VecEnv protocol --------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> Tensor:
        """Start a new episode in every copy and return the first observations ``[N, ...]``.

        ``seed`` reseeds the env's generator; without one, a never-seeded env draws a fresh random seed and a
        seeded one continues its stream (as Gymnasium does).
        """
        if seed is not None:
            self._generator.manual_seed(seed)
            self._seeded, self._owed_draws = True, 0
        elif not self._seeded:
            self._generator.seed()
            self._seeded, self._owed_draws = True, 0
        self._state = self._sample_initial_states()
        self._elapsed.zero_()
        self._returns.zero_()
        self._started = True
        return self._observe_kept(self._state)

    def step(self, actions: Tensor) -> Step:
        """Step every copy; copies whose episode ended are reset in the same call (see the module docstring)."""
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        # Initial states are drawn for every copy, ended or not: a fixed-shape draw keeps the step free of host
        # syncs, at the cost of random numbers that are mostly thrown away. It is the step's only use of the
        # generator (with the draws of random dynamics, where an env has them), kept out of ``_advance`` so that
        # the rest is a pure function of tensors.
        random = self._step_random()
        out = self._advance(self._state, self._elapsed, self._returns, self._prepare_actions(actions), random)
        self._state, self._elapsed, self._returns = out.state, out.elapsed_steps, out.returns
        info = {
            "final_obs": out.final_obs,
            "done": out.done,
            "episode_return": out.episode_return,
            "episode_length": out.episode_length,
        }
        return out.obs, out.reward, out.terminated, out.truncated, info

    def _advance(self, state: Tensor, elapsed: Tensor, returns: Tensor, actions: Tensor, random: Tensor) -> Advance:
        """One step of every copy as a pure function of tensors: no generator, no host sync, no Python branch on
        a value, so ``torch.compile(fullgraph=True)`` can trace it (the tests check this) and a CUDA graph could
        capture it. ``random`` is what ``_step_random`` drew; ``_transition`` turns it into a fresh initial state
        for every copy (by default it is one), and the copies that end take theirs."""
        next_state, reward, terminated, initial = self._transition(state, actions, random)
        lengths = torch.add(elapsed, self._one_step)
        truncated = lengths >= self._step_limit
        done = terminated | truncated
        episode_return = returns + reward
        state = torch.where(self._row_mask(done), initial, next_state)
        return Advance(
            state=state,
            elapsed_steps=torch.where(done, self._no_steps, lengths),
            returns=torch.where(done, self._no_return, episode_return),
            obs=self._observe_kept(state),
            reward=reward.to(torch.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=self._observe(next_state),
            done=done,
            episode_return=episode_return,
            episode_length=lengths,
        )

    # ---- whole episodes without autoreset (evaluating a population) ------------------------------------------

    def begin_episodes(self, seed: int | None = None) -> Tensor:
        """:meth:`reset` every copy and return its state ``[N, D]`` for :meth:`continue_episodes` (do not modify)."""
        self.reset(seed)
        return self._state

    def continue_episodes(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step of every copy from ``state`` with no autoreset and no time limit: ``(next_state, reward
        [N] float32, terminated [N])``; observe a state with :meth:`observe`.

        For callers that play each copy's first episode only and mask what follows (a population evaluation): a
        finished copy keeps moving from its terminal state, where :meth:`step` would reset it, and the env's own
        state is left as :meth:`begin_episodes` found it. It draws from the env's generator exactly what
        :meth:`step` draws, so a caller that switches from ``step`` to this consumes the same random stream and,
        on the copies that are still in their first episode, computes the same numbers.
        """
        if self._draws_only_initial_states:
            # The draws would be fresh initial states, which no copy takes here: owed, and drawn in one op later.
            self._owed_draws += 1
            random = self._random_bits  # unused by the default _transition's step
        else:
            random = self._step_random()
        next_state, reward, terminated, _ = self._transition(state, self._prepare_actions(actions), random)
        return next_state, reward.to(torch.float32), terminated

    @property
    def draws_only_initial_states(self) -> bool:
        """Whether a step's only random input is the fresh initial states (the default ``_step_random`` and
        ``_transition``): then :meth:`continue_episodes` needs no generator, and :meth:`pure_continue` exists."""
        return self._draws_only_initial_states

    def pure_continue(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`continue_episodes` as a pure function of tensors, for a caller that compiles many steps into one
        graph: no generator, no change to the env. The caller owes the env the draws of the steps it played
        (:meth:`owe_draws`), so that the random stream continues as :meth:`step` would have left it. Only for
        envs that :attr:`draws_only_initial_states`."""
        if not self._draws_only_initial_states:
            raise RuntimeError(f"{self.env_id}'s step draws random numbers; use continue_episodes")
        next_state, reward, terminated, _ = self._transition(state, self._prepare_actions(actions), self._random_bits)
        return next_state, reward.to(torch.float32), terminated

    def owe_draws(self, steps: int) -> None:
        """Count ``steps`` steps played with :meth:`pure_continue`: their draws are taken before the next draw."""
        self._owed_draws += steps

    def _settle_draws(self) -> None:
        """Draw what :meth:`continue_episodes` owes the generator, before anything else draws or saves it.

        An env whose only random input per step is the fresh initial states (the default ``_step_random`` and
        ``_transition``) does not draw them in ``continue_episodes``, where they would be thrown away: it counts
        the steps, and the next draw first takes ``owed x [N, D]`` numbers in one op. Torch's generators fill a
        tensor in order, so the stream continues exactly as if every step had drawn (about a tenth of a
        population evaluation's step on CartPole)."""
        owed, self._owed_draws = self._owed_draws, 0
        if not owed:
            return
        per_step = self._random_bits.numel()
        steps_per_draw = max(1, 2**22 // per_step)  # at most 32 MiB of throw-away bits at a time
        while owed > 0:
            take = min(owed, steps_per_draw)
            torch.empty((take, *self._random_bits.shape), dtype=self._random_bits.dtype,
                        device=self.device).random_(generator=self._generator)
            owed -= take

    def observe(self, state: Tensor) -> Tensor:
        """The observations ``[N, ...]`` of a state from :meth:`begin_episodes` or :meth:`continue_episodes`."""
        return self._observe(state)

    def state_dict(self) -> dict[str, Any]:
        """Physical state, step counters, episode returns and the generator: enough to continue exactly."""
        self._settle_draws()
        return {
            "state": self._state.clone(),
            "elapsed_steps": self._elapsed.clone(),
            "returns": self._returns.clone(),
            "generator": self._generator.get_state(),
            "seeded": self._seeded,
            "started": self._started,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_batch(state["state"], "state")
        # the dtype the state already has: the env's float dtype for physical states, int64 for state indices
        self._state = state["state"].to(device=self.device, dtype=self._state.dtype).clone()
        self._elapsed = state["elapsed_steps"].to(device=self.device, dtype=torch.int64).clone()
        self._returns = state["returns"].to(device=self.device, dtype=torch.float64).clone()
        self._generator.set_state(state["generator"].cpu())
        self._owed_draws = 0
        self._seeded = state["seeded"]
        self._started = state["started"]

    def close(self) -> None:
        """The copies are tensors, so there is nothing to release; a closed env needs ``reset`` to step again."""
        self._started = False

    # ---- test hooks -----------------------------------------------------------------------------------------

    def get_state(self) -> tuple[Tensor, Tensor]:
        """``(state [N, D], elapsed_steps [N])``: the physical state (columns ``state_names``) and step counters."""
        return self._state.clone(), self._elapsed.clone()

    def set_state(self, state: Tensor, elapsed_steps: Tensor | int | None = None) -> Tensor:
        """Put every copy in ``state`` (``[N, D]``, columns ``state_names``) and return its observations.

        ``elapsed_steps`` (one int or ``[N]``) sets the step counters the time limit reads; ``None`` keeps them.
        Episode returns are kept. Mainly for tests that compare against Gymnasium from identical states.
        """
        state = torch.as_tensor(state)
        self._check_batch(state, "state")
        self._state = state.to(device=self.device, dtype=self._state.dtype).clone()
        if elapsed_steps is not None:
            elapsed = torch.as_tensor(elapsed_steps, dtype=torch.int64, device=self.device)
            self._elapsed = elapsed.expand(self.n_envs).clone()
        self._started = True
        return self._observe_kept(self._state)

    # ---- helpers --------------------------------------------------------------------------------------------

    def _check_batch(self, state: Tensor, what: str) -> None:
        expected = (self.n_envs, len(self.state_names))
        if tuple(state.shape) != expected:
            raise ValueError(
                f"{what} must have shape {expected} ({self.n_envs} copies x {', '.join(self.state_names)}), "
                f"got {tuple(state.shape)}"
            )

    def _prepare_actions(self, actions: Tensor) -> Tensor:
        """Actions on the device in the layout ``_dynamics`` expects; Box actions clipped to the space."""
        if self._discrete_actions and isinstance(actions, Tensor) and actions.dtype == torch.int64 \
                and actions.shape == self._actions_shape and actions.device == self.device:
            return actions  # a policy's actions as they usually come: nothing to convert (checked once per step)
        space = self.single_action_space
        actions = torch.as_tensor(actions, device=self.device)
        shape = (self.n_envs, *space.shape)
        if actions.numel() != self.n_envs * math.prod(space.shape):
            raise ValueError(f"{self.env_id} expects actions of shape {shape}, got {tuple(actions.shape)}")
        if isinstance(space, gym.spaces.Discrete):
            return actions.reshape(self.n_envs).to(torch.int64)
        return actions.reshape(shape).to(self.dtype).clamp(self._action_low, self._action_high)

    def _step_random(self) -> Tensor:
        """The random input of one step, from the env's generator: by default fresh initial states for every
        copy. An env with random dynamics adds the numbers its ``_transition`` needs."""
        return self._sample_initial_states()

    def _sample_initial_states(self) -> Tensor:
        """Fresh initial states ``[N, D]``, uniform in ``[reset_low, reset_high)`` per column."""
        if self._owed_draws:
            self._settle_draws()
        return self._initial_states_from(self._random_bits.random_(generator=self._generator))

    def draw_initial_bits(self, steps: int) -> Tensor:
        """The raw random bits of ``steps`` steps' initial states, ``[steps, N, D]``, in one draw from the env's
        generator: the same numbers ``steps`` calls of :meth:`step` would draw (torch's generators fill a tensor in
        order), for a caller that plays the steps as one program (:class:`~thorndike.envs.batched.rollout.
        BatchedRollout`). Only for envs that :attr:`draws_only_initial_states`."""
        if not self._draws_only_initial_states:
            raise RuntimeError(f"{self.env_id}'s step draws random numbers besides initial states")
        if self._owed_draws:
            self._settle_draws()
        bits = torch.empty((steps, *self._random_bits.shape), dtype=self._random_bits.dtype, device=self.device)
        return bits.random_(generator=self._generator)

    def _initial_states_from(self, bits: Tensor) -> Tensor:
        """Initial states uniform in ``[reset_low, reset_high)`` from raw random bits ``[..., N, D]``: a pure
        function (see :meth:`draw_initial_bits`)."""
        return torch.addcmul(self._reset_low, (bits & self._bits_mask).to(self.dtype), self._reset_scale)

    def _row_mask(self, done: Tensor) -> Tensor:
        """``done[:, None]`` as a contiguous ``[N, state_size]`` bool tensor (see ``_MASK_INT``)."""
        width = len(self.state_names)
        if width not in _MASK_INT or torch.compiler.is_compiling():
            # compiled, a broadcast mask fuses into the kernel (and inductor cannot lower the integer view of bools
            # on CUDA)
            return done.unsqueeze(1).expand(-1, width).contiguous()
        return (done.to(self._mask_ones.dtype) * self._mask_ones).view(torch.bool).view(-1, width)

    def _constant(self, value: float, dtype: torch.dtype | None = None) -> Tensor:
        """``value`` as a 0-dim tensor on the env's device, for use as an operand in the step.

        ATen converts a Python number operand into a tensor on every call (about 2 us on CPU, as much as the
        arithmetic itself on a few thousand copies); a prepared 0-dim tensor skips that. Numbers passed as
        ``alpha=`` or ``value=`` are free, so the step uses those forms where they fit.
        """
        return torch.tensor(value, dtype=self.dtype if dtype is None else dtype, device=self.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id}, n_envs={self.n_envs}, device={self.device}, dtype={self.dtype})"
