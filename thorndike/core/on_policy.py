"""The parts every on-policy actor-critic shares: its rollout buffer, GAE targets, the policy's parameters and the
critic's regression (the family's loop is :mod:`thorndike.policy_gradient.base`).

Notes: 004 "Policy gradient", "A2C" and "PPO" (collect a batch with the current policy, compute advantages, update),
003 lectures 6-8 (the critic's squared-error regression onto bootstrapped returns). A2C, PPO, VPG and TRPO differ only
in their update.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from thorndike.core.actor_critic import ActorCritic
from thorndike.core.buffers import RolloutBuffer, minibatches
from thorndike.core.compile import maybe_compile
from thorndike.core.returns import gae
from thorndike.core.rollout import rollout_fields
from thorndike.core.spaces import storage_spec

__all__ = ["CompiledGAE", "fit_value", "gae_targets", "policy_params", "rollout_buffer"]


def rollout_buffer(envs: Any, model: ActorCritic, n_steps: int, n_envs: int,
                   device: torch.device | str) -> RolloutBuffer:
    """An ``[n_steps, n_envs]`` buffer with the fields :func:`collect_rollout` fills, critic values included."""
    action_spec = ((), torch.long) if model.discrete else (envs.action_space.shape, torch.float32)
    return RolloutBuffer(n_steps, n_envs, rollout_fields(storage_spec(envs.observation_space), action_spec),
                         device=device)


def policy_params(model: ActorCritic) -> list[torch.nn.Parameter]:
    """The parameters of pi: everything but the critic's (the actor, its log std, a shared encoder)."""
    critic = set(model.critic.parameters())
    return [p for p in model.parameters() if p not in critic]


GAE_STEPS_PER_PROGRAM = 32  # the most steps one compiled GAE program unrolls (compiling grows with them)


class CompiledGAE:
    """:func:`~thorndike.core.returns.gae` over an ``n_steps`` rollout as compiled programs: the backward loop over
    time unrolled, at most :data:`GAE_STEPS_PER_PROGRAM` steps a program (a rollout of 256 steps is 8 calls, from
    the last block to the first, each handing A_t of its first step to the block before it). On CUDA each program is
    one CUDA graph; compiling falls back to eager with a warning. Equal to the eager loop to float rounding."""

    def __init__(self, n_steps: int, gamma: float, gae_lambda: float, device: torch.device | str) -> None:
        self.gamma, self.gae_lambda = gamma, gae_lambda
        chunk = min(n_steps, GAE_STEPS_PER_PROGRAM)
        self.blocks = [(start, min(start + chunk, n_steps)) for start in range(0, n_steps, chunk)][::-1]
        self.program = maybe_compile(self.block, True, device, "the GAE program", dynamic=False)
        self.cuda = torch.device(device).type == "cuda"

    def block(self, rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor,
              next_advantage: Tensor | None) -> Tensor:
        """GAE of one block of steps, continuing from the advantage of the step after it (None: the rollout's end)."""
        return gae(rewards, values, next_values, terminated, truncated, self.gamma, self.gae_lambda, next_advantage)

    def __call__(self, buffer: RolloutBuffer) -> Tensor:
        fields = [buffer[name] for name in ("rewards", "values", "next_values", "terminated", "truncated")]
        pieces: list[Tensor] = []
        next_advantage = None
        for start, stop in self.blocks:
            if self.cuda:
                torch.compiler.cudagraph_mark_step_begin()
            advantages = self.program(*(f[start:stop] for f in fields), next_advantage)
            if self.cuda:  # the next replay overwrites the graph's outputs
                advantages = advantages.clone()
            pieces.append(advantages)
            next_advantage = advantages[0]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces[::-1])


def gae_targets(buffer: RolloutBuffer, gamma: float, gae_lambda: float,
                compiled: CompiledGAE | None = None) -> tuple[Tensor, Tensor]:
    """GAE(lambda) advantages ``[T, N]`` and the critic's regression targets, the lambda-returns A_t + V(s_t);
    ``compiled``: computed by that :class:`CompiledGAE` (with the same gamma and lambda)."""
    if compiled is not None:
        advantages = compiled(buffer)
    else:
        advantages = gae(buffer["rewards"], buffer["values"], buffer["next_values"], buffer["terminated"],
                         buffer["truncated"], gamma, gae_lambda)
    return advantages, advantages + buffer["values"]


def fit_value(model: ActorCritic, optimizer: torch.optim.Optimizer, obs: Tensor, returns: Tensor, steps: int,
              minibatch_size: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """``steps`` passes of squared-error regression of V(s) onto ``returns``, apart from the policy step.

    Each pass is one full-batch step (``minibatch_size`` None), or one shuffled pass of minibatch steps. Returns
    the mean squared error of the last step, detached (read by the caller once per iteration).
    """
    batch = {"obs": obs, "returns": returns}
    loss = torch.zeros((), device=obs.device)
    for _ in range(steps):
        for mb in minibatches(batch, minibatch_size or obs.shape[0], generator):
            loss = (model.value(mb["obs"]) - mb["returns"]).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return loss.detach()
