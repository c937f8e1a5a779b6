"""A population of policies evaluated as one batch: the shared core of black-box policy search (004, hill climbing
and its relatives: the search only needs the return G(theta) of a weight vector theta, never a gradient).

A :class:`PopulationPolicy` keeps no weights itself: ``P`` candidates are one tensor ``weights`` ``[P, n_params]``
(flat vectors, what a search perturbs with Gaussian noise), unflattened into per-layer ``[P, in, out]`` matrices and
``[P, out]`` biases, and applied to observations ``[P, k, obs_dim]`` with one ``torch.baddbmm`` per layer (no loop
over candidates):

    linear:  y = x W + b
    mlp:     y = tanh(x W1 + b1) W2 + b2                 (one hidden layer)

With ``scale_obs`` every observation dimension whose bounds in the observation space are finite is first mapped
linearly from [low, high] onto [-1, 1] (x <- (x - (low + high) / 2) / ((high - low) / 2)); unbounded dimensions pass
as they are. Weights drawn at one scale then weigh every dimension alike: MountainCarContinuous' velocity lies in
[-0.07, 0.07] against a position in [-1.2, 0.6], so with raw observations almost no random policy reacts to the
velocity, which is what pumping energy into the car needs.

``y`` are action logits for a Discrete action space (deterministic: argmax, the lowest index among ties;
stochastic: a sample of softmax(y) drawn with the caller's generator) or action means for a Box action space, squashed
into the bounds: a = low + (tanh(y) + 1) / 2 * (high - low) (deterministic in both modes; the search's noise is in
the weights, not the actions).

:func:`evaluate_population` plays ``k`` episodes with each candidate on ``P * k`` env copies in lockstep (candidate
``p`` plays copies ``p * k .. p * k + k - 1``) and returns the first episode's return and length of every copy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.core import exploration
from thorndike.core.compile import maybe_compile
from thorndike.core.diagnostics import EnvOutputError, NonFiniteError, StepChecks
from thorndike.envs.batched.base import BatchedEnv

__all__ = ["COMPILED_STEPS", "PopulationPolicy", "evaluate_population"]

COMPILED_STEPS = 10  # lockstep steps per call of the compiled population step (the check for the end between calls)


class PopulationPolicy:
    """A linear (``hidden_size=0``) or one-hidden-layer tanh MLP policy whose weights are a ``[P, n_params]`` batch.

    The flat layout is, layer by layer, the ``[in, out]`` weight matrix (row-major) followed by the ``[out]`` bias.
    """

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.Space, hidden_size: int = 0,
                 scale_obs: bool = False) -> None:
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"a population policy reads Box observations, got {observation_space}")
        self.obs_dim = int(np.prod(observation_space.shape))
        self.obs_center: Tensor | None = None  # the observation scaling, None without it
        self.obs_halfwidth: Tensor | None = None
        if scale_obs:
            low = np.asarray(observation_space.low, dtype=np.float64).reshape(-1)
            high = np.asarray(observation_space.high, dtype=np.float64).reshape(-1)
            finite = np.isfinite(low) & np.isfinite(high) & (high > low)
            low, high = np.where(finite, low, -1.0), np.where(finite, high, 1.0)  # center 0, halfwidth 1: as they are
            self.obs_center = torch.as_tensor((low + high) / 2, dtype=torch.float32)
            self.obs_halfwidth = torch.as_tensor((high - low) / 2, dtype=torch.float32)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.discrete:
            self.out_dim = int(action_space.n)
        elif isinstance(action_space, gym.spaces.Box):
            if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
                raise ValueError(f"a population policy squashes actions into bounds; {action_space} is unbounded")
            self.out_dim = int(np.prod(action_space.shape))
            self.action_shape = tuple(action_space.shape)
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1)
        else:
            raise ValueError(f"a population policy acts in Discrete or Box action spaces, got {action_space}")
        self.hidden_size = hidden_size
        sizes = [self.obs_dim, hidden_size, self.out_dim] if hidden_size > 0 else [self.obs_dim, self.out_dim]
        self.layer_sizes = list(zip(sizes[:-1], sizes[1:], strict=True))
        self.n_params = sum(n_in * n_out + n_out for n_in, n_out in self.layer_sizes)
        # compiled population steps by (env copies' shape): (the envs they step, the function)
        self._compiled: dict[tuple[int, int], tuple[BatchedEnv, Any]] = {}

    def unflatten(self, weights: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[P, n_params]`` -> per layer (``W`` ``[P, in, out]``, ``b`` ``[P, out]``), views of ``weights``."""
        if weights.shape[-1] != self.n_params:
            raise ValueError(f"weights have {weights.shape[-1]} parameters per candidate, the policy {self.n_params}")
        layers, start = [], 0
        for n_in, n_out in self.layer_sizes:
            w = weights[:, start:start + n_in * n_out].reshape(-1, n_in, n_out)
            start += n_in * n_out
            layers.append((w, weights[:, start:start + n_out]))
            start += n_out
        return layers

    def outputs(self, weights: Tensor | list[tuple[Tensor, Tensor]], obs: Tensor) -> Tensor:
        """Logits or action means ``[P, k, out]`` of candidate ``p`` on its observations ``obs[p]`` ``[P, k, ...]``.

        ``weights`` is ``[P, n_params]`` or its :meth:`unflatten` (a caller acting many times with the same
        candidates unflattens once)."""
        layers = self.unflatten(weights) if isinstance(weights, Tensor) else weights
        x = obs.reshape(obs.shape[0], obs.shape[1], self.obs_dim).to(layers[0][0].dtype)
        if self.obs_center is not None:
            x = (x - self.obs_center.to(x)) / self.obs_halfwidth.to(x)
        for i, (w, b) in enumerate(layers):
            x = torch.baddbmm(b.unsqueeze(1), x, w)
            if i < len(layers) - 1:
                x = torch.tanh(x)
        return x

    def act(self, weights: Tensor | list[tuple[Tensor, Tensor]], obs: Tensor, deterministic: bool = True,
            generator: torch.Generator | None = None) -> Tensor:
        """Actions ``[P, k]`` (Discrete, int64) or ``[P, k, *action_shape]`` (Box) for observations ``[P, k, ...]``
        (``weights`` as for :meth:`outputs`)."""
        y = self.outputs(weights, obs)
        if self.discrete:
            if deterministic:
                return exploration.greedy(y)
            return exploration.sample(torch.softmax(y.double(), -1), generator)
        low, high = self.low.to(y.device), self.high.to(y.device)
        actions = low + (torch.tanh(y.float()) + 1.0) * 0.5 * (high - low)
        return actions.reshape(*y.shape[:2], *self.action_shape)

    def initial_weights(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """``[n, n_params]`` zeros: the search's starting point (every perturbation of it is a random policy)."""
        return torch.zeros((n, self.n_params), dtype=torch.float32, device=device)


def evaluate_population(envs, policy: PopulationPolicy, weights: Tensor, episodes_per_candidate: int,
                        max_steps: int, generator: torch.Generator | None = None,
                        deterministic: bool = True, first_step: int = 0, step_size: int = 1,
                        where: str = "", compile: bool = False) -> tuple[Tensor, Tensor]:
    """Play ``k = episodes_per_candidate`` episodes with each of the ``P`` candidates ``weights`` ``[P, n_params]``.

    ``envs`` (a VecEnv) has ``P * k`` copies; candidate ``p`` plays copies ``p * k .. p * k + k - 1``. Every copy is
    reset, then all step in lockstep until each has finished one episode or ``max_steps`` steps have passed; steps a
    copy takes after its episode ended are masked out. Returns (returns ``[P, k]`` float64, the sum of rewards of
    each copy's episode; lengths ``[P, k]`` int64). The lockstep steps taken are ``lengths.max()``. One host sync per
    step (whether every copy is done).

    On a native batched env the episodes are played with :meth:`~thorndike.envs.batched.base.BatchedEnv.
    continue_episodes`, which skips the autoreset, the time-limit bookkeeping and the info of ``step`` (about half
    of a step's cost) and gives the same numbers with the same random stream; any other VecEnv is stepped.

    Observations, final observations and rewards are checked once per chunk of steps and after the last
    (:class:`~thorndike.core.diagnostics.StepChecks`): NaN or inf stops with a ``NonFiniteError`` naming the step
    (lockstep step t is ``first_step + (t + 1) * step_size``, ``where`` adds context) and the env copy, rather than
    ranking a NaN return. (On a native env a copy past its first episode moves on from where it ended, so only the
    copies still playing are checked.)

    ``compile=True`` (greedy candidates on a native env whose step draws nothing but initial states, as the classic
    control envs) plays ``COMPILED_STEPS`` steps per call of one function compiled by ``torch.compile``: the policy,
    the env's step and the sums fused into a few kernels, where eager PyTorch pays a few microseconds of dispatch for
    each of some forty small ops per step. The first call for a population shape compiles (seconds); the episodes then
    differ from eager ones only by the compiled kernels' rounding (their sin and cos, for one), which a long
    episode of a chaotic system like CartPole can carry into a different length. Elsewhere it plays eagerly.
    """
    n_candidates, k = weights.shape[0], episodes_per_candidate
    n = n_candidates * k
    if envs.n_envs != n:
        raise ValueError(f"evaluating {n_candidates} candidates x {k} episodes needs {n} env copies, "
                         f"the env has {envs.n_envs}")
    layers = policy.unflatten(weights)  # once, not every step
    if isinstance(envs, BatchedEnv):
        if compile and deterministic and envs.draws_only_initial_states:
            return _play_compiled(envs, policy, weights, (n_candidates, k), max_steps, first_step, step_size, where)
        return _play_native(envs, policy, layers, (n_candidates, k), max_steps, generator, deterministic,
                            first_step, step_size, where)
    checks = StepChecks()
    obs = envs.reset()
    checks.add(first_step, observation=obs, final_observation=obs, reward=torch.zeros(n, device=obs.device))
    obs = checks.safe(obs)
    running = torch.ones(n, dtype=torch.bool, device=obs.device)
    returns = torch.zeros(n, dtype=torch.float64, device=obs.device)
    lengths = torch.zeros(n, dtype=torch.int64, device=obs.device)
    for t in range(max_steps):
        step = first_step + (t + 1) * step_size
        actions = policy.act(layers, obs.reshape(n_candidates, k, *obs.shape[1:]), deterministic, generator)
        try:
            obs, reward, terminated, truncated, info = envs.step(actions.reshape(n, *actions.shape[2:]))
        except EnvOutputError as err:
            raise err.at(step, where) from err
        if checks.add(step, observation=obs, final_observation=info["final_obs"], reward=reward):
            checks.check(where)
        obs = checks.safe(obs)
        returns += torch.where(running, reward.double(), 0.0)
        lengths += running
        running = running & ~(terminated | truncated)
        if not bool(running.any()):  # the one host sync per step
            break
    checks.check(where)
    return returns.view(n_candidates, k), lengths.view(n_candidates, k)


def _begin(envs: BatchedEnv, shape: tuple[int, int], max_steps: int, first_step: int) -> tuple[Any, ...]:
    """The start of a native population evaluation: every copy's first state and observation, the step limit (the
    env's own when lower), the checks holding the first observations, and ``running``, ``returns`` and ``lengths``
    of the ``P * k`` copies."""
    n = shape[0] * shape[1]
    state = envs.begin_episodes()
    obs = envs.observe(state)
    if envs.max_episode_steps is not None:
        max_steps = min(max_steps, envs.max_episode_steps)
    checks = StepChecks()
    checks.add(first_step, observation=obs)
    running = torch.ones(n, dtype=torch.bool, device=obs.device)
    returns = torch.zeros(n, dtype=torch.float64, device=obs.device)
    lengths = torch.zeros(n, dtype=torch.int64, device=obs.device)
    return state, obs, max_steps, checks, running, returns, lengths


def _play_native(envs: BatchedEnv, policy: PopulationPolicy, layers: list[tuple[Tensor, Tensor]],
                 shape: tuple[int, int], max_steps: int, generator: torch.Generator | None, deterministic: bool,
                 first_step: int, step_size: int, where: str) -> tuple[Tensor, Tensor]:
    """:func:`evaluate_population` on a native env.

    Its step is a few dozen small tensor ops, each costing a few microseconds of dispatch whatever the number of
    copies, so this loop adds as few as it can: each step's rewards and mask of copies still playing are kept, and
    summed once per chunk of steps (the chunks of the checks, which mask the copies past their episode the same
    way). The sums are the same, bit for bit, as adding step by step: ``cumsum`` adds in order, from the sums so far.
    """
    state, obs, max_steps, checks, running, returns, lengths = _begin(envs, shape, max_steps, first_step)
    n = len(running)
    rewards: list[Tensor] = []
    playing: list[Tensor] = []  # `running` of each step, rebound every step and never changed in place
    for t in range(max_steps):
        actions = policy.act(layers, obs.reshape(*shape, *obs.shape[1:]), deterministic, generator)
        state, reward, terminated = envs.continue_episodes(state, actions.reshape(n, *actions.shape[2:]))
        obs = envs.observe(state)
        rewards.append(reward)
        playing.append(running)
        if checks.add(first_step + (t + 1) * step_size, only=running, observation=obs, reward=reward):
            checks.check(where)
            returns, lengths = _add_steps(returns, lengths, rewards, playing)
            rewards, playing = [], []
        running = running & ~terminated
        if not bool(running.any()):  # the one host sync per step
            break
    checks.check(where)
    returns, lengths = _add_steps(returns, lengths, rewards, playing)
    return returns.view(shape), lengths.view(shape)


def _add_steps(returns: Tensor, lengths: Tensor, rewards: list[Tensor], playing: list[Tensor]) -> tuple[Tensor, Tensor]:
    """``returns`` plus the float32 ``rewards`` of the copies still playing, added step after step in float64, and
    ``lengths`` plus the number of those steps."""
    if not rewards:
        return returns, lengths
    mask = torch.stack(playing)  # [T, N]
    steps = torch.stack(rewards).double().where(mask, 0.0)
    return torch.cat((returns.unsqueeze(0), steps)).cumsum(0)[-1], lengths + mask.sum(0)


def _compiled_steps(envs: BatchedEnv, policy: PopulationPolicy, shape: tuple[int, int]) -> Any:
    """The compiled function playing ``COMPILED_STEPS`` lockstep steps (made once per envs, policy and shape)."""
    cached = policy._compiled.get(shape)
    if cached is not None and cached[0] is envs:
        return cached[1]
    n = shape[0] * shape[1]

    def steps(state: Tensor, running: Tensor, returns: Tensor, lengths: Tensor, weights: Tensor,
              keep: Tensor) -> tuple[Tensor, ...]:
        # keep[u]: False at the step where max_steps is reached, which ends every episode still running
        layers = policy.unflatten(weights)
        bad_obs, bad_reward = [], []
        for u in range(COMPILED_STEPS):
            obs = envs.observe(state)
            actions = policy.act(layers, obs.reshape(*shape, *obs.shape[1:]))
            state, reward, terminated = envs.pure_continue(state, actions.reshape(n, *actions.shape[2:]))
            obs = envs.observe(state)
            bad_obs.append(running & ~torch.isfinite(obs.reshape(n, -1)).all(-1))
            bad_reward.append(running & ~torch.isfinite(reward))
            returns = returns + torch.where(running, reward.double(), 0.0)
            lengths = lengths + running
            running = running & ~terminated & keep[u]
        return state, running, returns, lengths, torch.stack(bad_obs), torch.stack(bad_reward)

    compiled = maybe_compile(steps, True, envs.device, "the population step")
    policy._compiled[shape] = (envs, compiled)
    return compiled


def _play_compiled(envs: BatchedEnv, policy: PopulationPolicy, weights: Tensor, shape: tuple[int, int],
                   max_steps: int, first_step: int, step_size: int, where: str) -> tuple[Tensor, Tensor]:
    """:func:`evaluate_population` with ``compile=True``: ``COMPILED_STEPS`` steps per call, one host sync per call
    (whether any copy still plays, and whether any returned NaN or inf)."""
    state, obs, max_steps, checks, running, returns, lengths = _begin(envs, shape, max_steps, first_step)
    checks.check(where)
    steps = _compiled_steps(envs, policy, shape)
    step_index = torch.arange(1, COMPILED_STEPS + 1, device=obs.device)
    for start in range(0, max_steps, COMPILED_STEPS):
        state, running, returns, lengths, bad_obs, bad_reward = steps(
            state, running, returns, lengths, weights, start + step_index < max_steps)
        alive, bad = torch.stack((running.any(), bad_obs.any() | bad_reward.any())).tolist()  # one host sync
        if bad:
            firsts = [(flags.nonzero()[0].tolist(), what) for what, flags in
                      (("observation", bad_obs), ("reward", bad_reward)) if flags.any()]
            (t, copy), what = min(firsts)  # the first step, then the lowest copy; an observation before a reward
            location = f"step {first_step + (start + t + 1) * step_size}" + (f" ({where})" if where else "")
            raise NonFiniteError(f"{what} is not finite (NaN or inf) at {location}, env copy {copy}. Check the "
                                 "environment's outputs.")
        if not alive:
            break
    envs.owe_draws(int(lengths.max()))  # the steps the eager loop would have taken, each owing a draw
    return returns.view(shape), lengths.view(shape)
