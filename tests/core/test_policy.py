"""PolicyNetwork (thorndike/core/policy.py): pi(a|s) alone on the core encoders, for every observation kind the
encoders take; near-uniform (near zero-mean) at the start; greedy is the argmax or the mean; a fixed std is a buffer."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from thorndike.core.distributions import Categorical, DiagGaussian
from thorndike.core.policy import PolicyNetwork

BOX = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)


@pytest.mark.parametrize(("space", "batch"), [
    (BOX, torch.zeros(5, 4)),
    (gym.spaces.Discrete(6), torch.arange(5)),
    (gym.spaces.Box(0, 255, (4, 64, 64), np.uint8), torch.zeros(5, 4, 64, 64, dtype=torch.uint8)),
    (gym.spaces.Dict({"a": gym.spaces.Discrete(3), "b": BOX}), torch.zeros(5, 5)),
])
def test_every_observation_kind_gives_a_near_uniform_categorical(space: gym.Space, batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    net = PolicyNetwork(space, gym.spaces.Discrete(3), hidden_sizes=(16,))
    dist = net.distribution(batch)
    assert isinstance(dist, Categorical) and dist.probs.shape == (5, 3)
    torch.testing.assert_close(dist.probs, torch.full((5, 3), 1 / 3), rtol=0, atol=0.02)  # output gain 0.01
    assert torch.equal(net.greedy(batch), dist.mode())


def test_gaussian_head_mean_is_greedy_and_the_std_is_learned_or_fixed() -> None:
    obs = torch.randn(7, 4)
    learned = PolicyNetwork(BOX, gym.spaces.Box(-2.0, 2.0, (2,), np.float32), log_std_init=-1.0)
    dist = learned.distribution(obs)
    assert isinstance(dist, DiagGaussian) and dist.mean.shape == (7, 2)
    assert torch.equal(learned.greedy(obs), dist.mean)
    assert float(dist.mean.detach().abs().max()) < 0.1  # near zero mean at the start
    torch.testing.assert_close(dist.std, torch.full((7, 2), float(np.exp(-1.0))))
    assert any(p is learned.log_std for p in learned.parameters())
    fixed = PolicyNetwork(BOX, gym.spaces.Box(-2.0, 2.0, (2,), np.float32), log_std_init=-1.0, learn_std=False)
    assert all(p is not fixed.log_std for p in fixed.parameters()) and "log_std" in fixed.state_dict()


def test_refuses_other_action_spaces_and_activations() -> None:
    with pytest.raises(ValueError, match="Discrete and Box"):
        PolicyNetwork(BOX, gym.spaces.MultiBinary(3))
    with pytest.raises(ValueError, match="activation"):
        PolicyNetwork(BOX, gym.spaces.Discrete(2), activation="sigmoid")
