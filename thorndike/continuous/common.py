"""What the continuous learners share that is not math: refusing action spaces they cannot squash into, and the
memory check of their networks (the math they share is in :mod:`thorndike.core`)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym

from thorndike.core.encoders import make_encoder
from thorndike.core.off_policy_networks import actor_critic_weights
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.core.spaces import check_bounded_box

__all__ = ["check_box_actions", "require_networks"]


def check_box_actions(cls: Any, action_space: gym.Space) -> None:
    """Refuse a Box action space without finite float bounds, in the form of ``Agent.check_spaces``' refusals."""
    try:
        check_bounded_box(action_space)
    except ValueError as err:
        raise ValueError(f"{cls.name} does not support {err}") from None


def require_networks(agent: Any, envs: Any, config: Any, n_critics: int, actor_heads: int, target_actor: bool) -> None:
    """Refuse, before allocating, an actor and ``n_critics`` critics (with targets, gradients and Adam's moments)
    that will not fit."""
    space = envs.action_space
    discrete = isinstance(space, gym.spaces.Discrete)
    action_dim = int(space.n) if discrete else int(math.prod(space.shape))
    n_params = actor_critic_weights(make_encoder(envs.observation_space).out_features, config.hidden_sizes,
                                    action_dim, n_critics, critic_outputs=action_dim if discrete else 1,
                                    actor_heads=actor_heads, critic_action_inputs=0 if discrete else action_dim)
    copies = 5 if target_actor else 4.5  # weights, gradients, 2 Adam moments, targets (critics only, or all)
    require_memory("the actor's and critics' weights (with targets), gradients and Adam moments",
                   tensor_bytes(int(copies * n_params)), agent.device, {"hidden_sizes": tuple(config.hidden_sizes)},
                   f"{n_params:,} weights x {copies} copies")
