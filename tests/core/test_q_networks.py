"""The DQN family's network parts: noisy layers, the dueling head, the Q-network builder (INVENTORY A55, A56, C30)."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thorndike.core.encoders import FlattenEncoder, ImageEncoder
from thorndike.core.q_heads import DuelingHead, NoisyLinear, dueling_combine, q_network, scaled_noise


def test_noisy_linear_initialisation():
    torch.manual_seed(0)
    layer = NoisyLinear(16, 8)
    bound = 1 / math.sqrt(16)
    for mu in (layer.weight_mu, layer.bias_mu):
        assert mu.abs().max() <= bound and mu.abs().max() > 0.8 * bound  # uniform on [-1/sqrt(in), 1/sqrt(in)]
    for sigma in (layer.weight_sigma, layer.bias_sigma):
        assert torch.equal(sigma.detach(), torch.full_like(sigma, 0.5 * bound))  # sigma_0 / sqrt(in)


def test_noise_is_factorised_and_drawn_from_the_generator():
    layer = NoisyLinear(5, 3)
    layer.reset_noise(torch.Generator().manual_seed(7))
    draws = torch.randn(8, generator=torch.Generator().manual_seed(7))
    eps_in, eps_out = scaled_noise(draws[:5]), scaled_noise(draws[5:])
    torch.testing.assert_close(layer.eps_in, eps_in)
    torch.testing.assert_close(layer.eps_out, eps_out)
    assert torch.equal(scaled_noise(torch.tensor([-4.0, 0.0, 9.0])), torch.tensor([-2.0, 0.0, 3.0]))
    weight, bias = layer.weight_and_bias()
    # the weight noise is the outer product f(eps_out) f(eps_in)^T, one matrix of rank 1
    noise = (weight - layer.weight_mu) / layer.weight_sigma
    torch.testing.assert_close(noise, torch.outer(eps_out, eps_in))
    assert torch.linalg.matrix_rank(noise.detach()).item() == 1
    torch.testing.assert_close(bias, layer.bias_mu + layer.bias_sigma * eps_out)


def test_noise_statistics():
    # f(x) = sign(x) sqrt(|x|) of a standard normal: mean 0, E f^2 = E|x| = sqrt(2 / pi); a weight's noise
    # f(a) f(b) of two independent draws: mean 0, variance (sqrt(2 / pi))^2 = 2 / pi.
    layer = NoisyLinear(4, 3)
    g = torch.Generator().manual_seed(0)
    eps_in, weight_noise = [], []
    for _ in range(3000):
        layer.reset_noise(g)
        eps_in.append(layer.eps_in.clone())
        weight_noise.append(torch.outer(layer.eps_out, layer.eps_in))
    eps_in, weight_noise = torch.stack(eps_in), torch.stack(weight_noise)
    assert abs(eps_in.mean().item()) < 0.03
    assert eps_in.square().mean().item() == pytest.approx(math.sqrt(2 / math.pi), abs=0.03)
    assert weight_noise.mean().abs().item() < 0.03
    assert weight_noise.square().mean().item() == pytest.approx(2 / math.pi, abs=0.04)
    # distinct weights' noises are uncorrelated (each factor has mean 0), though rank 1 ties them together
    assert abs((weight_noise[:, 0, 0] * weight_noise[:, 1, 1]).mean().item()) < 0.05
    assert abs((weight_noise[:, 0, 0] * weight_noise[:, 0, 1]).mean().item()) < 0.05


def test_noisy_layer_is_reproducible_and_mu_only_in_eval():
    torch.manual_seed(1)
    a = NoisyLinear(6, 4)
    b = NoisyLinear(6, 4)
    b.load_state_dict(a.state_dict())
    x = torch.randn(10, 6)
    a.reset_noise(torch.Generator().manual_seed(3))
    b.reset_noise(torch.Generator().manual_seed(3))
    assert torch.equal(a(x), b(x))
    b.reset_noise(torch.Generator().manual_seed(4))
    assert not torch.allclose(a(x), b(x))
    # the noise factors are buffers: a checkpoint holds the noise in use
    assert {"eps_in", "eps_out"} <= set(a.state_dict())
    a.eval()
    assert torch.equal(a(x), F.linear(x, a.weight_mu, a.bias_mu))
    a.reset_noise(torch.Generator().manual_seed(5))
    assert torch.equal(a(x), F.linear(x, a.weight_mu, a.bias_mu))  # no noise whatever was drawn
    a.train()
    assert not torch.allclose(a(x), F.linear(x, a.weight_mu, a.bias_mu))


def test_noisy_layer_learns_its_noise_scale():
    layer = NoisyLinear(3, 2)
    layer(torch.randn(4, 3)).sum().backward()
    assert layer.weight_sigma.grad.abs().sum() > 0 and layer.bias_sigma.grad.abs().sum() > 0
    layer.zero_grad()
    layer.eval()
    layer(torch.randn(4, 3)).sum().backward()
    assert layer.weight_sigma.grad is None or layer.weight_sigma.grad.abs().sum() == 0


def test_dueling_combine_by_hand():
    # C30: V = 1, A = (1, 2, 3) -> Q = 1 + (A - 2) = (0, 1, 2)
    q = dueling_combine(torch.tensor([[1.0]]), torch.tensor([[1.0, 2.0, 3.0]]))
    assert q.tolist() == [[0.0, 1.0, 2.0]]
    # per atom: [B, 1, N] and [B, A, N]
    value = torch.tensor([[[1.0, -1.0]]])
    advantage = torch.tensor([[[1.0, 0.0], [3.0, 4.0]]])
    assert dueling_combine(value, advantage).tolist() == [[[0.0, -3.0], [2.0, 1.0]]]


@pytest.mark.parametrize("n_atoms", [1, 5])
def test_dueling_head_mean_advantage_is_zero_and_gradients_reach_both_streams(n_atoms):
    torch.manual_seed(0)
    head = DuelingHead(8, n_actions=3, n_atoms=n_atoms, hidden_size=16)
    features = torch.randn(4, 8)
    q = head(features)
    assert q.shape == ((4, 3) if n_atoms == 1 else (4, 3, n_atoms))
    value, advantage = head.streams(features)
    # mean_a Q = V, since the mean advantage is subtracted
    torch.testing.assert_close(q.reshape(4, 3, n_atoms).mean(1), value.squeeze(1))
    torch.testing.assert_close(q.reshape(4, 3, n_atoms), value + advantage - advantage.mean(1, keepdim=True))
    # a loss on one action's value moves both streams (on the sum over actions A's gradient would cancel)
    q[:, 0].sum().backward()
    for stream in (head.value, head.advantage):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stream.parameters())


def test_q_network_on_vectors():
    space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
    obs = torch.randn(5, 4)
    net = q_network(space, 2, hidden_sizes=(32, 32))
    assert isinstance(net.encoder, FlattenEncoder) and not net.noisy
    assert net(obs).shape == (5, 2)
    distributional = q_network(space, 2, hidden_sizes=(32,), n_atoms=51)
    assert distributional(obs).shape == (5, 2, 51)
    # dueling: the last hidden layer goes to each stream, the ones before it are shared
    dueling = q_network(space, 3, hidden_sizes=(32, 16), dueling=True, n_atoms=4)
    assert dueling(obs).shape == (5, 3, 4)
    assert [m.out_features for m in dueling.torso if hasattr(m, "out_features")] == [32]
    assert dueling.head.value[0].out_features == 16 and dueling.head.advantage[-1].out_features == 12
    assert q_network(space, 3, hidden_sizes=(), dueling=True)(obs).shape == (5, 3)
    with pytest.raises(ValueError):
        q_network(space, 0)


def test_noisy_q_network_resamples_reproducibly_and_is_deterministic_in_eval():
    space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
    obs = torch.randn(5, 4)
    torch.manual_seed(0)
    net = q_network(space, 2, hidden_sizes=(32,), dueling=True, noisy=True, n_atoms=3)
    noisy_layers = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    assert net.noisy and len(noisy_layers) == 4  # the two layers of each stream
    net.reset_noise(torch.Generator().manual_seed(1))
    first = net(obs)
    assert torch.equal(net(obs), first)  # the noise changes only when resampled
    net.reset_noise(torch.Generator().manual_seed(2))
    assert not torch.allclose(net(obs), first)
    net.reset_noise(torch.Generator().manual_seed(1))
    assert torch.equal(net(obs), first)
    net.eval()
    mean_only = net(obs)
    net.reset_noise(torch.Generator().manual_seed(2))
    assert torch.equal(net(obs), mean_only)


def test_q_network_on_image_stacks_scales_bytes_inside():
    space = gym.spaces.Box(0, 255, (4, 36, 36), dtype=np.uint8)
    torch.manual_seed(0)
    net = q_network(space, 6, hidden_sizes=())
    assert isinstance(net.encoder, ImageEncoder)
    frames = torch.randint(0, 256, (2, 4, 36, 36), dtype=torch.uint8)
    q = net(frames)
    assert q.shape == (2, 6)
    torch.testing.assert_close(q, net(frames.float() / 255.0))
