"""Multi-step rollouts of a native env as one program: ``T`` steps of every copy (the policy, its sampling, the env
step, autoreset) in one call, compiled by ``torch.compile`` when asked.

Stepping a native env one call at a time costs some thirty small tensor ops per step, each paying the framework's
fixed cost (a few microseconds on a CPU, a kernel launch on a GPU). Played as one program, the ``T`` steps fuse into
a few kernels: inductor's C++ loops on a CPU, Triton kernels (and, with ``mode="reduce-overhead"``, one CUDA graph)
on a GPU. What makes that possible is that nothing in a step depends on the host: the env's step is the pure
function :meth:`~thorndike.envs.batched.base.BatchedEnv._advance`, and every random number a rollout uses is drawn
before the program runs, in two draws:

- the env's: the raw bits of ``T`` steps' fresh initial states, ``[T, N, D]``, from the env's own generator
  (:meth:`~thorndike.envs.batched.base.BatchedEnv.draw_initial_bits`): the numbers ``T`` calls of ``step`` draw;
- the policy's: ``T x N x k`` noise values from the caller's generator, uniform in [0, 1) (on a CPU drawn as the
  raw bits ``torch.rand`` takes and converted inside the program: the same numbers) or standard normal,
  ``k = policy_draws`` per copy and step (inverse-CDF sampling of a categorical needs one uniform; a diagonal
  Gaussian one normal per component).

State the steps carry besides the env's (running observation statistics) goes in and out of the program as tensors
(``carry``), so that a compiled program changes nothing in place.

So a rollout consumes both random streams exactly as ``T`` eager steps do, and :class:`BatchedRollout` with
``compile=False`` (the same program, run op by op) reproduces ``T`` calls of ``env.step`` bit for bit (tested).
Compiled, the numbers agree to float rounding: inductor's fused sin, cos and multiply-adds are not bit-identical to
ATen's (a unit in the last place), so on a CPU a compiled rollout matches the eager one to about 1e-6 over a few
dozen steps, not bit for bit; an episode could end one step apart where a state lies within rounding of a
threshold.

On CUDA with ``mode="reduce-overhead"`` the outputs live in the captured graph's memory and the next call overwrites
them: copy what must outlive the next call (the env's own state is copied after every call).
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.core.compile import CPU_ELEMENTWISE_OPTIONS, maybe_compile
from thorndike.envs.batched.base import UNIFORM_BITS, BatchedEnv

__all__ = ["ROLLOUT_OUTPUTS", "BatchedRollout", "draws_per_copy", "uniform_policy"]

# What a rollout returns, each stacked over the T steps: [T, N, ...].
ROLLOUT_OUTPUTS = ("obs", "actions", "reward", "terminated", "truncated", "final_obs", "done", "episode_return",
                   "episode_length")

# policy(obs, noise, carry) -> actions, or (actions, extra outputs to stack, e.g. their log-probabilities)
Policy = Callable[[Tensor, Tensor, tuple[Tensor, ...]], Tensor | tuple[Tensor, dict[str, Tensor]]]
# observe(obs, carry) -> carry: state the program threads through its steps (running observation statistics)
Observe = Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, ...]]
NOISE = ("uniform", "normal")


def uniform_policy(space: gym.Space) -> Policy:
    """Uniformly random actions of ``space`` (Discrete or Box) from one uniform draw per component: a pure function
    ``(obs, uniforms, carry) -> actions`` for :class:`BatchedRollout` (the obs and the carry are ignored)."""
    if isinstance(space, gym.spaces.Discrete):
        n = int(space.n)

        def discrete(obs: Tensor, uniforms: Tensor, carry: tuple[Tensor, ...] = ()) -> Tensor:
            return (uniforms[:, 0] * n).to(torch.int64).clamp_max(n - 1)

        return discrete
    if isinstance(space, gym.spaces.Box):
        low, high = float(space.low.min()), float(space.high.max())

        def box(obs: Tensor, uniforms: Tensor, carry: tuple[Tensor, ...] = ()) -> Tensor:
            return low + (high - low) * uniforms.view(uniforms.shape[0], *space.shape)

        return box
    raise TypeError(f"uniform_policy supports Discrete and Box spaces, got {space}")


def draws_per_copy(space: gym.Space) -> int:
    """The noise values a policy of ``space`` takes per copy and step: one for a Discrete action (inverse-CDF
    sampling, :func:`uniform_policy`), one per component of a Box action."""
    return 1 if isinstance(space, gym.spaces.Discrete) else int(torch.Size(space.shape).numel())


class BatchedRollout:
    """``n_steps`` steps of every copy of ``env`` under ``policy`` as one call (see the module docstring).

    ``policy(obs [N, ...], noise [N, policy_draws], carry) -> actions`` must be a pure function of tensors (no
    generator, no ``.item()``): its randomness is ``noise``, uniform in [0, 1) or standard normal (``noise``). It
    may return ``(actions, extras)``, a dict of per-copy tensors stacked into the outputs too (a policy's
    log-probabilities). The outputs' ``actions`` are the policy's own; the env steps with them clipped to a Box's
    bounds, as ``step`` does. None: uniformly random actions (:func:`uniform_policy`). ``observe(obs, carry) ->
    carry``, when given, takes each step's observations (after autoreset) inside the program, before the next
    step's policy: the ``carry`` tensors :meth:`run` threads through the steps (running observation statistics; a
    program must not change tensors it does not return). ``compile``: run the program through ``torch.compile``
    (falling back to eager, with a warning, if compiling fails). The env must have been reset; each call continues
    from where the env is and leaves the env where the last step left it, as ``n_steps`` calls of ``env.step``
    would.
    """

    def __init__(self, env: BatchedEnv, n_steps: int, policy: Policy | None = None, policy_draws: int | None = None,
                 compile: bool = False, noise: str = "uniform", observe: Observe | None = None) -> None:
        if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
        if not env.draws_only_initial_states:
            raise ValueError(f"{env.env_id}: a multi-step rollout needs an env whose step draws nothing but initial "
                             "states (the classic-control envs); step this one with env.step")
        env_only = policy is None
        if policy is None:
            policy, policy_draws = uniform_policy(env.single_action_space), draws_per_copy(env.single_action_space)
        elif policy_draws is None or policy_draws < 0:
            raise ValueError(f"policy_draws must be the noise values the policy takes per copy and step (>= 0), "
                             f"got {policy_draws!r}")
        if noise not in NOISE:
            raise ValueError(f"noise must be one of {NOISE}, got {noise!r}")
        self.env, self.n_steps, self.policy, self.policy_draws = env, n_steps, policy, policy_draws
        self.noise, self.observe = noise, observe
        self.compiled = compile
        # Uniform noise on the CPU is drawn as raw integer bits and turned into floats inside the program: the same
        # numbers torch.rand draws (it takes one draw of 24 bits per float32, 53 per float64, as the env's reset bits
        # do), filled about 1.5x faster, and the conversion fuses into the program.
        self._noise_bits = noise == "uniform" and torch.device(env.device).type == "cpu"
        self._noise_dtype, self._noise_width = UNIFORM_BITS[env.dtype]
        # An env-only program (random actions) is all [N, D] row arithmetic, which scalar loops (asked for 8 SIMD
        # lanes) run faster than 16-lane masked ones on an AVX-512 CPU (1.3-1.6x at 4,096 CartPole copies), called
        # from a C++ wrapper (see CPU_ELEMENTWISE_OPTIONS); with a policy network's layers in the program the default
        # lanes win (PPO's compiled collection was 1.2x slower with 8), so only the former gets them.
        env_only = env_only and torch.device(env.device).type == "cpu"
        self._program = maybe_compile(self._steps, compile, env.device, f"the {n_steps}-step rollout of {env.env_id}",
                                      dynamic=False, options=CPU_ELEMENTWISE_OPTIONS if env_only else None)

    def _steps(self, state: Tensor, elapsed: Tensor, returns: Tensor, bits: Tensor, noise: Tensor,
               carry: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor], tuple[Tensor, ...]]:
        """The program: ``n_steps`` steps from ``(state, elapsed, returns)``; a pure function of tensors."""
        env = self.env
        obs = env.observe(state)
        rows: dict[str, list[Tensor]] = {name: [] for name in ROLLOUT_OUTPUTS}
        if self._noise_bits:  # raw bits -> the uniforms torch.rand makes of them, all T steps at once
            noise = (noise & ((1 << self._noise_width) - 1)).to(env.dtype) * 2.0**-self._noise_width
        for t in range(self.n_steps):
            actions = self.policy(obs, noise[t], carry)
            actions, extras = actions if isinstance(actions, tuple) else (actions, {})
            out = env._advance(state, elapsed, returns, env._prepare_actions(actions),
                               env._initial_states_from(bits[t]))
            state, elapsed, returns, obs = out.state, out.elapsed_steps, out.returns, out.obs
            if self.observe is not None:
                carry = self.observe(obs, carry)
            for name, value in (("actions", actions), *extras.items()):
                rows.setdefault(name, []).append(value)
            for name in ROLLOUT_OUTPUTS:
                if name != "actions":
                    rows[name].append(getattr(out, name))
        return state, elapsed, returns, {name: torch.stack(values) for name, values in rows.items()}, carry

    def __call__(self, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Play ``n_steps`` steps; returns :data:`ROLLOUT_OUTPUTS` (and the policy's extras), each ``[n_steps, N,
        ...]``, as ``env.step`` would have returned them step by step (``obs`` after autoreset, ``final_obs`` before
        it). ``generator`` drives the policy's noise (the global generator when None)."""
        return self.run(generator)[0]

    def run(self, generator: torch.Generator | None = None,
            carry: tuple[Tensor, ...] = ()) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        """:meth:`__call__` with a ``carry`` threaded through the steps by ``observe``: the outputs and the final
        carry."""
        env = self.env
        if not env._started:
            raise RuntimeError(f"{type(env).__name__}: call reset() before a rollout")
        bits = env.draw_initial_bits(self.n_steps)
        shape = (self.n_steps, env.n_envs, self.policy_draws)
        if self._noise_bits:
            noise = torch.empty(shape, dtype=self._noise_dtype).random_(generator=generator)
        else:
            draw = torch.rand if self.noise == "uniform" else torch.randn
            noise = draw(shape, generator=generator, device=env.device, dtype=env.dtype)
        state, elapsed, returns, outputs, carry = self._program(env._state, env._elapsed, env._returns, bits, noise,
                                                                carry)
        # copies: on CUDA graphs the program's outputs are overwritten by its next call
        env._state, env._elapsed, env._returns = state.clone(), elapsed.clone(), returns.clone()
        return outputs, tuple(value.clone() for value in carry)
