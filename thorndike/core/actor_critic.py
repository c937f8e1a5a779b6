"""The actor-critic model of the policy-gradient methods, built from the observation and action spaces.

Observations pass through the normaliser (running statistics, off unless asked for and only for float Box spaces)
and the encoder chosen by :func:`thorndike.core.encoders.make_encoder`. An encoder without parameters (flatten,
one-hot, packed Dict/Tuple) feeds separate actor and critic MLPs, as in the PPO paper's code; an encoder with
parameters (the Nature CNN for images) is one trunk shared by a linear actor head and a linear critic head, as in
CleanRL's and SB3's Atari PPO.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from thorndike.core.distributions import Categorical, DiagGaussian
from thorndike.core.encoders import make_encoder
from thorndike.core.networks import mlp
from thorndike.core.normalization import ObservationNormalizer
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.core.spaces import is_float_box

__all__ = ["ACTIVATIONS", "ActorCritic"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class ActorCritic(nn.Module):
    """Policy pi(a | s) and value V(s) for Discrete (Categorical) or Box (diagonal Gaussian) actions.

    Box actions get a state-independent ``log_std`` parameter. With a shared trunk (image observations)
    ``hidden_sizes`` and ``activation`` are not used: the heads are linear on the CNN's 512 features.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        log_std_init: float = 0.0,
        normalize_obs: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not isinstance(action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ValueError(
                f"ActorCritic supports Discrete and Box action spaces, got {type(action_space).__name__} "
                f"({action_space})"
            )
        if normalize_obs and not is_float_box(observation_space):
            warnings.warn(
                f"normalize_obs is ignored for a {type(observation_space).__name__} observation space "
                f"({observation_space}): only float Box observations are normalised",
                stacklevel=2,
            )
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        # Neither the normaliser nor a parameter-free encoder draws random numbers, so for a flat Box the actor and
        # critic below get exactly the weights the earlier obs_dim-based construction gave under the same seed.
        self.normalizer = ObservationNormalizer.for_space(
            observation_space, enabled=normalize_obs and is_float_box(observation_space)
        )
        self.encoder = make_encoder(observation_space)
        self.shared_trunk = any(True for _ in self.encoder.parameters())
        features = self.encoder.out_features
        head_sizes = [] if self.shared_trunk else list(hidden_sizes)
        sizes = [features, *head_sizes, n_out]
        n_params = 2 * sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))  # actor and critic
        require_memory("the actor's and critic's weights, gradients and Adam moments", tensor_bytes(4 * n_params),
                       "cpu", {"hidden_sizes": tuple(hidden_sizes)}, f"{n_params:,} weights x 4 copies")
        # Small final gain: the initial policy is near uniform (or near zero mean), as in the PPO paper's code.
        self.actor = mlp([features, *head_sizes, n_out], ACTIVATIONS[activation], output_gain=0.01)
        self.critic = mlp([features, *head_sizes, 1], ACTIVATIONS[activation], output_gain=1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((n_out,), log_std_init))

    def features(self, obs: Tensor) -> Tensor:
        """Normalised, encoded observations: [N, *storage_shape] -> float32 [N, encoder.out_features]."""
        # Their forward methods directly, as MLP does with its layers: one rollout or evaluation step runs this, and at
        # classic-control sizes nn.Module's call machinery costs more than the two (often no-op) transforms.
        return self.encoder.forward(self.normalizer.forward(obs))

    def _distribution(self, actor_out: Tensor) -> Categorical | DiagGaussian:
        return Categorical(actor_out) if self.discrete else DiagGaussian(actor_out, self.log_std)

    def distribution(self, obs: Tensor) -> Categorical | DiagGaussian:
        """pi(. | obs) for a batch of observations."""
        return self.distribution_of_normalized(self.normalizer.forward(obs))  # .forward: see features

    def distribution_of_normalized(self, normalized_obs: Tensor) -> Categorical | DiagGaussian:
        """pi(. | obs) from observations already normalised (by the normaliser's statistics, or ones a compiled
        rollout carries: :class:`thorndike.core.rollout.NativeCollection`)."""
        return self._distribution(self.actor(self.encoder.forward(normalized_obs)))

    def value(self, obs: Tensor) -> Tensor:
        """V(obs) [N]."""
        return self.critic(self.features(obs)).squeeze(-1)

    def distribution_and_value(self, obs: Tensor) -> tuple[Categorical | DiagGaussian, Tensor]:
        """pi(. | obs) and V(obs), encoding the observations once (what a CNN trunk makes worth sharing)."""
        features = self.features(obs)
        return self._distribution(self.actor(features)), self.critic(features).squeeze(-1)

    def greedy(self, obs: Tensor) -> Tensor:
        """The most likely action: the largest logit, or the Gaussian's mean (no distribution built)."""
        out = self.actor(self.features(obs))
        return out.argmax(-1) if self.discrete else out
