"""The networks of the off-policy actor-critics: K critics in one batched forward, and their actors.

Notes: 004 L2287-L2365 (DDPG: actor mu(s), critic Q(s, a) with the action entering the network, ReLU, a tanh output
for the actor), 003 lecture 9 (TD3's and SAC's twin critics, SAC's reparameterised tanh-Gaussian actor).

Twin critics are not two modules called one after the other: :class:`Critics` holds K critics' weights stacked,
``[K, in, out]`` per layer, and computes every critic in one ``baddbmm`` per layer, so "both critics in one batched
forward/backward" is what runs. Each member is initialised like its own ``nn.Linear`` (uniform in +-1/sqrt(fan_in)),
so K = 2 is two independently initialised critics. ``frozen=True`` uses the weights detached: the actor's loss
differentiates Q with respect to the action, not the critic's weights (which only the critic's optimiser moves),
without toggling ``requires_grad`` every step.

Actions are in [-1, 1] (the algorithm's units; :func:`thorndike.core.spaces.scale_action` maps them to the env's
bounds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thorndike.core.distributions import Categorical, TanhGaussian
from thorndike.core.encoders import make_encoder
from thorndike.core.networks import mlp

__all__ = ["LOG_STD_MAX", "LOG_STD_MIN", "CategoricalActor", "Critics", "DeterministicActor", "EnsembleLinear",
           "SquashedGaussianActor", "actor_critic_weights"]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the Gaussian actor's log std is clamped here (as in SAC's reference code)


class _EnsembleDot(torch.autograd.Function):
    """K dot products with a bias, ``[K, B, in]`` . ``[K, in, 1]`` + ``[K, 1, 1]``: the critics' scalar output layer.

    On CPU ``bmm`` runs such a batched matrix-vector product and its input gradient (an outer product) 5-15x slower
    than the same arithmetic done elementwise (measured: 140 us against 26 us at K=2, B=256, in=256), so the forward
    pass and the input gradient are a broadcast multiply (and a sum), and the weight gradient is the product with
    the one-row matrix on the left, the layout ``bmm`` runs fast. ``forward`` and ``setup_context`` are apart, the
    form ``torch.func``'s transforms need (a captured gradient step takes its gradient with ``grad_and_value``)."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return (x * weight.transpose(1, 2)).sum(-1, keepdim=True).add_(bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, Tensor], output: Tensor) -> None:
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight.transpose(1, 2))  # [K, 1, in]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, row = ctx.saved_tensors
        grad_x = grad * row if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(grad.transpose(1, 2), x).transpose(1, 2) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1, keepdim=True) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class EnsembleLinear(nn.Module):
    """K linear layers applied at once: ``[K, B, in]`` -> ``[K, B, out]`` (one ``baddbmm``; a broadcast product
    when ``out`` is 1, see :class:`_EnsembleDot`)."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation, each member its own draw
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor, frozen: bool = False, members: slice | None = None) -> Tensor:
        """``x`` ``[k, B, in]`` through the members ``members`` (all by default; k of them) -> ``[k, B, out]``."""
        weight, bias = (self.weight.detach(), self.bias.detach()) if frozen else (self.weight, self.bias)
        if members is not None:
            weight, bias = weight[members], bias[members]
        # Compiled (a captured gradient step), the plain product: inductor writes its own kernel, and torch 2.13
        # computes wrong weight gradients for the custom Function under torch.compile with torch.func.grad.
        if weight.shape[-1] == 1 and not torch.compiler.is_compiling():
            return _EnsembleDot.apply(x, weight, bias)
        return torch.baddbmm(bias, x, weight)


class Critics(nn.Module):
    """K critics computed together: Q_k(s, a) ``[K, B]`` for Box actions (the action enters the network with the
    observation's features), or Q_k(s, .) ``[K, B, A]`` for Discrete actions (one output per action)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden_sizes: Sequence[int],
                 n_critics: int = 2) -> None:
        super().__init__()
        self.encoder = make_encoder(observation_space)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.n_critics = n_critics
        action_in = 0 if self.discrete else int(math.prod(action_space.shape))
        out = int(action_space.n) if self.discrete else 1
        sizes = [self.encoder.out_features + action_in, *hidden_sizes, out]
        self.layers = nn.ModuleList(EnsembleLinear(n_critics, a, b) for a, b in zip(sizes[:-1], sizes[1:],
                                                                                   strict=True))

    def forward(self, obs: Tensor, actions: Tensor | None = None, frozen: bool = False,
                members: slice | None = None) -> Tensor:
        """Q_k for every critic k, or for the critics ``members`` selects (TD3's actor needs Q_1 only: computing
        Q_2 too would be a quarter more arithmetic in its actor step for nothing)."""
        x = self.encoder(obs)
        if not self.discrete:
            x = torch.cat([x, actions.flatten(1)], -1)
        k = len(range(self.n_critics)[members]) if members is not None else self.n_critics
        h = x.unsqueeze(0).expand(k, *x.shape)
        for layer in self.layers[:-1]:
            h = F.relu(layer(h, frozen, members))
        q = self.layers[-1](h, frozen, members)
        return q if self.discrete else q.squeeze(-1)


class DeterministicActor(nn.Module):
    """DDPG's and TD3's mu(s) = tanh(MLP(s)) in [-1, 1]^D."""

    def __init__(self, observation_space: gym.Space, action_space: gym.spaces.Box, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.encoder = make_encoder(observation_space)
        self.shape = tuple(action_space.shape)
        self.net = mlp([self.encoder.out_features, *hidden_sizes, int(math.prod(self.shape))], nn.ReLU)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(self.encoder(obs))).view(-1, *self.shape)


class SquashedGaussianActor(nn.Module):
    """SAC's pi(a|s): a = tanh(u), u ~ N(mu(s), diag sigma(s)^2), mean and log std heads on one ReLU trunk; the log
    std clamped to [LOG_STD_MIN, LOG_STD_MAX]."""

    def __init__(self, observation_space: gym.Space, action_space: gym.spaces.Box, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.encoder = make_encoder(observation_space)
        self.shape = tuple(action_space.shape)
        dim = int(math.prod(self.shape))
        self.trunk = nn.Sequential(mlp([self.encoder.out_features, *hidden_sizes], nn.ReLU), nn.ReLU())
        self.mean = nn.Linear(hidden_sizes[-1], dim)
        self.log_std = nn.Linear(hidden_sizes[-1], dim)

    def distribution(self, obs: Tensor) -> TanhGaussian:
        h = self.trunk(self.encoder(obs))
        return TanhGaussian(self.mean(h), self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX))


class CategoricalActor(nn.Module):
    """Discrete SAC's pi(.|s): a softmax over an MLP's logits."""

    def __init__(self, observation_space: gym.Space, action_space: gym.spaces.Discrete,
                 hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.encoder = make_encoder(observation_space)
        self.net = mlp([self.encoder.out_features, *hidden_sizes, int(action_space.n)], nn.ReLU, output_gain=0.01)

    def distribution(self, obs: Tensor) -> Categorical:
        return Categorical(self.net(self.encoder(obs)))


def actor_critic_weights(in_features: int, hidden_sizes: Sequence[int], action_dim: int, n_critics: int,
                         critic_outputs: int = 1, actor_heads: int = 1, critic_action_inputs: int | None = None) -> int:
    """The weights of an actor (``actor_heads`` output heads of ``action_dim``) and ``n_critics`` critics, counted
    before building them, for :func:`thorndike.core.resources.require_memory`."""
    def dense(sizes: Sequence[int]) -> int:
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    actor = dense([in_features, *hidden_sizes]) + actor_heads * dense([hidden_sizes[-1], action_dim])
    action_in = action_dim if critic_action_inputs is None else critic_action_inputs
    return actor + n_critics * dense([in_features + action_in, *hidden_sizes, critic_outputs])
