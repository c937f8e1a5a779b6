"""A policy network alone, pi_w(a | s), for methods that fit a policy without a critic (the approximate
cross-entropy method's maximum-likelihood fit to elite (s, a) pairs, 003 lecture 1).

Observations go through the encoder of :func:`thorndike.core.encoders.make_encoder` (flatten for a Box, one-hot for
Discrete, the Nature CNN for images, packed Dict/Tuple part by part), then an MLP head built by
:func:`thorndike.core.networks.mlp` with a small final gain, so the initial policy is near uniform (Discrete) or near
zero mean (Box), as the notes' "set initial policy (maybe uniform)" asks. Discrete actions get a categorical over the
head's logits; Box actions a diagonal Gaussian whose mean is the head's output and whose state-independent log std
is a parameter (``learn_std``) or a fixed buffer.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from thorndike.core.actor_critic import ACTIVATIONS
from thorndike.core.distributions import Categorical, DiagGaussian
from thorndike.core.encoders import make_encoder
from thorndike.core.networks import mlp

__all__ = ["PolicyNetwork"]


class PolicyNetwork(nn.Module):
    """pi_w(a | s) for Discrete (categorical) or Box (diagonal Gaussian, flat ``[N, D]`` actions) action spaces."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden_sizes: Sequence[int] = (64,),
                 activation: str = "tanh", log_std_init: float = 0.0, learn_std: bool = True) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not isinstance(action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ValueError(f"PolicyNetwork supports Discrete and Box action spaces, got {action_space}")
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.encoder = make_encoder(observation_space)
        self.head = mlp([self.encoder.out_features, *hidden_sizes, n_out], ACTIVATIONS[activation], output_gain=0.01)
        if not self.discrete:
            log_std = torch.full((n_out,), float(log_std_init))
            if learn_std:
                self.log_std = nn.Parameter(log_std)
            else:  # still in the state dict (and so in checkpoints), but never moved by the optimiser
                self.register_buffer("log_std", log_std)

    def distribution(self, obs: Tensor) -> Categorical | DiagGaussian:
        """pi_w(. | obs) for a batch of raw observations ``[N, *storage_shape]``."""
        out = self.head(self.encoder(obs))
        return Categorical(out) if self.discrete else DiagGaussian(out, self.log_std)

    def greedy(self, obs: Tensor) -> Tensor:
        """The most probable action: the largest logit (lowest index among ties), or the Gaussian's mean."""
        out = self.head(self.encoder(obs))
        return out.argmax(-1) if self.discrete else out
