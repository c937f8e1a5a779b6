"""On-policy collection: ``n_steps`` x ``n_envs`` transitions of the current policy into a :class:`RolloutBuffer`.

Notes: 004 "Policy gradient" and "PPO" (collect a batch with pi_old, then update), 003 lecture 6 (actor-critic:
the critic's V(s') bootstraps the return where a trajectory is cut). Every on-policy algorithm (PPO, A2C, VPG,
TRPO, GAIL) collects the same way; what differs is what it does with the batch.

The buffer holds raw observations (normalisation is the model's business), ``final_obs`` (the true last observation
where an episode ended: same-step autoreset has already replaced it in ``obs``), and, when a critic is given, the
critic's ``values`` V(s_t) and ``next_values``: V(s_{t+1}) is the next row's value, except where the episode was cut
short by a time limit, where it is the value of the final observation. The critic runs once over the whole rollout,
not once per step.

Nothing waits for the host while stepping. NaN or inf in observations, final observations (an episode's last one,
which autoreset keeps out of ``obs``) and rewards, and Discrete states outside the observation space, are checked
once per rollout on the stored tensors, and the error names the first bad step and env copy. Rewards are judged
raw, by each copy's episode return (reward scaling would spread one copy's NaN to every copy through its running
statistics). A bad observation usually makes the next sampling fail first (``multinomial`` refuses NaN
probabilities, ``one_hot`` a state out of range): that failure is answered with the same check on what was stored
so far, so the user sees which step and copy went bad, not a sampling error.

On a native env, with the run option ``compile``, :class:`NativeCollection` does the same work with each rollout
played as one compiled program (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.core.actor_critic import ActorCritic
from thorndike.core.buffers import RolloutBuffer
from thorndike.core.diagnostics import NonFiniteError, StepChecks
from thorndike.core.normalization import fold_batch
from thorndike.envs.batched.base import BatchedEnv
from thorndike.envs.batched.rollout import BatchedRollout, draws_per_copy
from thorndike.envs.normalize import NormalizeReward

__all__ = ["ROLLOUT_FIELDS", "NativeCollection", "Stepper", "collect_rollout", "fill_values", "rollout_fields"]

# The fields collect_rollout writes; an algorithm may add its own (e.g. advantages) to the same buffer.
ROLLOUT_FIELDS = ("obs", "actions", "log_probs", "rewards", "terminated", "truncated", "final_obs")


class Stepper(Protocol):
    """What collection needs from env interaction: the current observations and a step that records episodes."""

    obs: Tensor

    def step(self, actions: Tensor, step: int) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Any]]: ...


def rollout_fields(obs_spec: tuple[tuple[int, ...], torch.dtype], action_spec: tuple[tuple[int, ...], torch.dtype],
                   values: bool = True) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The buffer layout :func:`collect_rollout` fills, from the storage shape and dtype of one observation and one
    action (``values`` adds the critic's ``values`` and ``next_values``)."""
    f32, boolean = torch.float32, torch.bool
    fields = {"obs": obs_spec, "actions": action_spec, "log_probs": ((), f32), "rewards": ((), f32),
              "terminated": ((), boolean), "truncated": ((), boolean), "final_obs": (obs_spec[0], obs_spec[1])}
    if values:
        fields |= {"values": ((), f32), "next_values": ((), f32)}
    return fields


@torch.no_grad()
def collect_rollout(envs: Stepper, buffer: RolloutBuffer, sample: Callable[[Tensor], tuple[Tensor, Tensor]],
                    value: Callable[[Tensor], Tensor] | None, first_step: int, where: str = "",
                    observe: Callable[[Tensor], None] | None = None) -> None:
    """Fill ``buffer`` (``[T, N]``) with ``T`` steps of every env copy under ``sample`` (obs -> actions, log pi).

    ``first_step`` is the global step before collection; step ``t`` of the rollout ends at global step
    ``first_step + (t + 1) * N``, the step its finished episodes are recorded at. With ``value`` (obs -> V(obs)),
    ``values`` and ``next_values`` are filled as the module docstring says. ``where`` (e.g. "iteration 3") goes into
    a non-finite error's message. ``observe`` is called with the observations each step returns (e.g. to update
    running observation statistics as they arrive).
    """
    T, N = buffer.n_steps, buffer.n_envs
    space = getattr(envs, "observation_space", None)
    n_states = int(space.n) if isinstance(space, gym.spaces.Discrete) else None
    raw_returns: list[Tensor] = []  # references only: each copy's raw episode return after each step
    t = 0
    try:
        for t in range(T):
            obs = envs.obs
            actions, log_probs = sample(obs)
            next_obs, rewards, terminated, truncated, info = envs.step(actions, first_step + (t + 1) * N)
            if "episode_return" in info:  # every VecEnv gives it; a bare stepper in a test may not
                raw_returns.append(info["episode_return"])
            if observe is not None:
                observe(next_obs)
            buffer.add(t, obs=obs, actions=actions, log_probs=log_probs, rewards=rewards, terminated=terminated,
                       truncated=truncated, final_obs=info["final_obs"])
    except (RuntimeError, IndexError) as err:
        if isinstance(err, NonFiniteError):
            raise
        # Most likely a bad observation reached the sampler: name it if so, else re-raise what happened.
        check_stored(buffer, envs.obs, first_step, t, where, raw_returns, n_states)
        raise
    check_stored(buffer, envs.obs, first_step, T, where, raw_returns, n_states)
    if value is not None:
        fill_values(buffer, value, envs.obs)


def fill_values(buffer: RolloutBuffer, value: Callable[[Tensor], Tensor], current_obs: Tensor) -> None:
    """The critic over the whole rollout at once: ``values`` V(s_t), and ``next_values`` V(s_t+1), the next row's
    value, or the final observation's where the episode was truncated (``current_obs``: after the last step)."""
    T, N = buffer.n_steps, buffer.n_envs
    values = value(buffer["obs"].flatten(0, 1)).view(T, N)
    following = torch.cat([values[1:], value(current_obs).unsqueeze(0)])
    final_values = value(buffer["final_obs"].flatten(0, 1)).view(T, N)
    buffer["values"].copy_(values)
    buffer["next_values"].copy_(torch.where(buffer["truncated"], final_values, following))


STEPS_PER_PROGRAM = 32  # the most steps NativeCollection unrolls into one program


class NativeCollection:
    """:func:`collect_rollout`'s work on a native env, played as one program per rollout: the policy's forward pass
    and sampling, the env step and autoreset, and the running observation statistics, ``T`` steps in one call of a
    :class:`~thorndike.envs.batched.rollout.BatchedRollout` (compiled with ``compile``, the run option). What needs
    no per-step program is done on the stacked ``[T, N]`` outputs afterwards, step by step as :func:`collect_rollout`
    does it: reward scaling (:class:`~thorndike.envs.normalize.NormalizeReward`), the episode ledger, the checks of
    what was stored and the critic's values.

    The one difference from :func:`collect_rollout` is how actions are sampled, so that the program's randomness is
    drawn before it: a categorical by inverse CDF from one uniform per copy and step, a Gaussian as mean + std x a
    standard normal, both from the agent's generator. The same run with ``compile`` off plays the same program
    eagerly: the same numbers up to the compiled kernels' float rounding.

    :meth:`build` returns None where it does not apply (then :func:`collect_rollout` collects): an env that is not
    a native classic-control env (directly or under reward normalisation only), or a model that is not an
    :class:`~thorndike.core.actor_critic.ActorCritic`.
    """

    def __init__(self, interaction: Any, model: Any, env: Any, scaler: Any, n_steps: int, compile: bool) -> None:
        self.interaction, self.model, self.scaler = interaction, model, scaler
        self.discrete = isinstance(env.single_action_space, gym.spaces.Discrete)
        draws = draws_per_copy(env.single_action_space)
        # The running observation statistics are the program's carry (a compiled program must not change the
        # normaliser's buffers in place); they go back into the normaliser after each rollout.
        self.normalizer = model.normalizer if model.normalizer.enabled else None
        # A program unrolls its steps, so a long rollout is played in chunks of at most STEPS_PER_PROGRAM steps (one
        # program for the full chunks, one for the rest): compiling grows with the steps unrolled.
        chunk = min(n_steps, STEPS_PER_PROGRAM)
        lengths = [chunk] * (n_steps // chunk) + ([n_steps % chunk] if n_steps % chunk else [])
        programs: dict[int, BatchedRollout] = {}
        for length in set(lengths):
            programs[length] = BatchedRollout(env, length, self.policy, draws, compile=compile,
                                              noise="uniform" if self.discrete else "normal",
                                              observe=self.observe if self.normalizer is not None else None)
        self.programs = [programs[length] for length in lengths]

    @classmethod
    def build(cls, interaction: Any, model: Any, n_steps: int, compile: bool) -> NativeCollection | None:
        env, scaler = interaction.envs, None
        if isinstance(env, NormalizeReward):
            env, scaler = env.env, env
        if not isinstance(env, BatchedEnv) or not env.draws_only_initial_states or not isinstance(model, ActorCritic):
            return None
        return cls(interaction, model, env, scaler, n_steps, compile)

    def observe(self, obs: Tensor, statistics: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The running observation statistics (mean, var, count) with a step's observations folded in."""
        return fold_batch(*statistics, obs)

    def policy(self, obs: Tensor, noise: Tensor, statistics: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor]]:
        """a ~ pi(. | s) from ``noise`` (pure), and log pi(a | s); the observations normalised with ``statistics``
        as the model's normaliser does with the same statistics."""
        if self.normalizer is not None:
            obs = self.normalizer.normalize_with(obs, *statistics[:2])
        dist = self.model.distribution_of_normalized(obs)
        if self.discrete:
            actions = (dist.probs.cumsum(-1) < noise).sum(-1).clamp_max(dist.logits.shape[-1] - 1)
        else:
            actions = dist.mean + dist.std * noise.view_as(dist.mean)
        return actions, {"log_probs": dist.log_prob(actions)}

    @torch.no_grad()
    def __call__(self, buffer: RolloutBuffer, generator: torch.Generator, value: Callable[[Tensor], Tensor] | None,
                 first_step: int, where: str = "") -> None:
        """Fill ``buffer`` as :func:`collect_rollout` does (the interaction's ``obs`` and ledger moved on too)."""
        T, N = buffer.n_steps, buffer.n_envs
        interaction = self.interaction
        start_obs = interaction.obs
        normalizer = self.normalizer
        statistics = (normalizer.mean, normalizer.var, normalizer.count) if normalizer is not None else ()
        chunks = []
        for program in self.programs:
            chunk, statistics = program.run(generator, statistics)
            if len(self.programs) > 1 and start_obs.device.type == "cuda":  # CUDA graphs overwrite them next call
                chunk = {key: value.clone() for key, value in chunk.items()}
            chunks.append(chunk)
        out = chunks[0] if len(chunks) == 1 else {key: torch.cat([c[key] for c in chunks]) for key in chunks[0]}
        if normalizer is not None:
            normalizer.set_statistics(*statistics)
        rewards = out["reward"]
        if self.scaler is not None:
            rewards = torch.stack([self.scaler.scale(out["reward"][t], out["terminated"][t], out["truncated"][t])
                                   for t in range(T)])
        # Copies of what outlives the next call (on CUDA graphs the program's outputs are overwritten by it): the
        # ledger reads its steps when the log row is written.
        episodes = {key: out[key].clone() for key in ("done", "episode_return", "episode_length")}
        raw_returns = []
        for t in range(T):
            interaction.ledger.record({key: value[t] for key, value in episodes.items()}, first_step + (t + 1) * N)
            raw_returns.append(episodes["episode_return"][t])
        interaction.obs = out["obs"][-1].clone()
        buffer["obs"][0].copy_(start_obs)
        buffer["obs"][1:].copy_(out["obs"][:-1])
        buffer["rewards"].copy_(rewards)
        for name in ("actions", "log_probs", "terminated", "truncated", "final_obs"):
            buffer[name].copy_(out[name].view_as(buffer[name]))
        check_stored(buffer, interaction.obs, first_step, T, where, raw_returns)
        if value is not None:
            fill_values(buffer, value, interaction.obs)


def check_stored(buffer: RolloutBuffer, current_obs: Tensor, first_step: int, rows: int, where: str = "",
                 raw_returns: list[Tensor] | None = None, n_states: int | None = None) -> None:
    """One check of the first ``rows`` steps: the observation each step returned (the next row's ``obs``, and
    ``current_obs`` after the last one), its final observation and its reward (the raw episode returns
    ``raw_returns``, when given, are checked first: a NaN reward makes its copy's return NaN from that step on).
    Floats must be finite; integer (Discrete) states must lie in ``[0, n_states)``. With ``rows=0``, ``current_obs``
    alone (the observation the previous step returned)."""
    N = buffer.n_envs
    returned = current_obs.unsqueeze(0) if rows == 0 else torch.cat([buffer["obs"][1:rows], current_obs.unsqueeze(0)])
    start = first_step if rows == 0 else first_step + N
    checks = StepChecks(n_states)
    for t in range(returned.shape[0]):
        step = start + t * N
        values = {"observation": returned[t]}
        if rows > 0:
            values["final_observation"] = buffer["final_obs"][t]
            reward = buffer["rewards"][t]
            if raw_returns and t < len(raw_returns):  # raw: reward scaling spreads a NaN to every copy
                raw = raw_returns[t]
                reward = torch.where(torch.isfinite(raw).all(), reward, raw.to(reward.dtype))
            values["reward"] = reward
        checks.add(step, **values)
    checks.check(where)
