import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from thorndike.core.actor_critic import ACTIVATIONS, ActorCritic
from thorndike.core.distributions import Categorical, DiagGaussian
from thorndike.core.networks import mlp
from thorndike.core.spaces import pack

CARTPOLE_OBS = gym.spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32)


def assert_same_weights(model: nn.Module, reference: dict[str, nn.Module]) -> None:
    for prefix, module in reference.items():
        for name, param in module.named_parameters():
            assert torch.equal(model.get_parameter(f"{prefix}.{name}"), param), f"{prefix}.{name}"


@pytest.mark.parametrize("normalize_obs", [False, True])
def test_cartpole_weights_bit_identical_to_the_obs_dim_construction(normalize_obs):
    torch.manual_seed(3)
    model = ActorCritic(CARTPOLE_OBS, gym.spaces.Discrete(2), normalize_obs=normalize_obs)
    # How ppo.ActorCritic built it from obs_dim: the actor's MLP, then the critic's.
    torch.manual_seed(3)
    actor, critic = mlp([4, 64, 64, 2], nn.Tanh, output_gain=0.01), mlp([4, 64, 64, 1], nn.Tanh, output_gain=1.0)
    assert_same_weights(model, {"actor": actor, "critic": critic})
    parameter_names = {name for name, _ in model.named_parameters()}
    assert parameter_names == {f"actor.{n}" for n, _ in actor.named_parameters()} | {
        f"critic.{n}" for n, _ in critic.named_parameters()}
    obs = torch.randn(5, 4)
    if not normalize_obs:  # and the same state_dict keys, so earlier checkpoints load
        assert set(model.state_dict()) == parameter_names
        torch.testing.assert_close(model.distribution(obs).logits, Categorical(actor(obs)).logits, rtol=0, atol=0)
        assert torch.equal(model.value(obs), critic(obs).squeeze(-1))
        assert torch.equal(model.greedy(obs), actor(obs).argmax(-1))
    else:
        assert {"normalizer.mean", "normalizer.var", "normalizer.count"} <= set(model.state_dict())


def test_box_actions_gaussian_with_state_independent_log_std():
    torch.manual_seed(0)
    model = ActorCritic(gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Box(-2.0, 2.0, (2,)), hidden_sizes=(32,),
                        activation="relu", log_std_init=-0.5)
    torch.manual_seed(0)
    actor, critic = mlp([3, 32, 2], nn.ReLU, output_gain=0.01), mlp([3, 32, 1], nn.ReLU, output_gain=1.0)
    assert_same_weights(model, {"actor": actor, "critic": critic})
    obs = torch.randn(4, 3)
    dist = model.distribution(obs)
    assert isinstance(dist, DiagGaussian)
    assert torch.equal(dist.mean, actor(obs)) and torch.equal(dist.log_std, torch.full((4, 2), -0.5))
    assert torch.equal(model.greedy(obs), actor(obs))


def test_distribution_and_value_match_the_separate_calls():
    model = ActorCritic(CARTPOLE_OBS, gym.spaces.Discrete(2))
    obs = torch.randn(6, 4)
    dist, value = model.distribution_and_value(obs)
    assert torch.equal(dist.logits, model.distribution(obs).logits) and torch.equal(value, model.value(obs))


def test_normalizer_applies_before_the_networks():
    model = ActorCritic(CARTPOLE_OBS, gym.spaces.Discrete(2), normalize_obs=True)
    model.normalizer.update(torch.randn(50, 4) * 3 + 1)
    obs = torch.randn(3, 4)
    assert torch.equal(model.value(obs), model.critic(model.normalizer(obs)).squeeze(-1))


def test_image_observations_share_one_cnn_trunk_and_train_end_to_end():
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)
    model = ActorCritic(space, gym.spaces.Discrete(6))
    assert model.shared_trunk
    assert [type(m) for m in model.actor] == [nn.Linear] and model.actor[0].in_features == 512
    assert [type(m) for m in model.critic] == [nn.Linear]
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    dist, value = model.distribution_and_value(obs)
    assert dist.logits.shape == (3, 6) and value.shape == (3,)
    loss = -dist.log_prob(torch.tensor([0, 5, 2])).mean() + value.square().mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model.greedy(obs).shape == (3,)


def test_channel_last_image_with_box_actions():
    model = ActorCritic(gym.spaces.Box(0, 255, (64, 64, 3), dtype=np.uint8), gym.spaces.Box(-1.0, 1.0, (2,)))
    dist = model.distribution(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert dist.mean.shape == (2, 2)


def test_dict_observations_discrete_one_hot_into_separate_mlps():
    space = gym.spaces.Dict({"position": gym.spaces.Box(-1.0, 1.0, (2,)), "room": gym.spaces.Discrete(3)})
    model = ActorCritic(space, gym.spaces.Discrete(4))
    assert not model.shared_trunk and model.actor[0].in_features == 5
    obs = pack(space, {"position": np.zeros((2, 2), dtype=np.float32), "room": np.array([0, 2])})
    assert model.distribution(obs).logits.shape == (2, 4) and model.value(obs).shape == (2,)


def test_errors_and_warnings():
    with pytest.raises(ValueError, match="MultiDiscrete"):
        ActorCritic(CARTPOLE_OBS, gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(ValueError, match="activation"):
        ActorCritic(CARTPOLE_OBS, gym.spaces.Discrete(2), activation="gelu")
    with pytest.warns(UserWarning, match="normalize_obs is ignored"):
        model = ActorCritic(gym.spaces.Discrete(5), gym.spaces.Discrete(2), normalize_obs=True)
    assert not model.normalizer.enabled
    assert set(ACTIVATIONS) == {"tanh", "relu"}
