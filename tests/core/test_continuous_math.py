"""Oracles of the continuous learners' shared math: the tanh-Gaussian's log-probability against a numerical
change of variables, reparameterised against score-function gradients, TD3's and SAC's targets by hand, the
temperature's direction, action scaling on an asymmetric Box, the batched twin critics, and the OU noise."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thorndike.core.action_noise import ActionNoise
from thorndike.core.distributions import TanhGaussian
from thorndike.core.entropy import Temperature, discrete_target_entropy, temperature_loss
from thorndike.core.off_policy import joint_step, optimizer_step
from thorndike.core.off_policy_networks import Critics, EnsembleLinear
from thorndike.core.spaces import check_bounded_box, scale_action, unscale_action
from thorndike.core.targets import discrete_soft_value, smoothed_target_action, soft_q_target, td3_target

# ---- the tanh-Gaussian ---------------------------------------------------------------------------------------------


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_tanh_gaussian_log_prob_equals_a_numerical_change_of_variables():
    # p(a) per dimension is the probability of the small interval [a - h, a + h] divided by its width: the interval
    # maps back through atanh to [atanh(a - h), atanh(a + h)], whose probability is a difference of the Gaussian's
    # CDF. Nothing of the Jacobian formula enters this computation.
    mean, log_std = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64), torch.tensor([[-0.5, 0.2, 0.0]],
                                                                                         dtype=torch.float64)
    actions = torch.tensor([[0.1, -0.9, 0.97]], dtype=torch.float64)
    h = 1e-6
    numerical = 0.0
    for a, mu, s in zip(actions[0].tolist(), mean[0].tolist(), log_std[0].exp().tolist(), strict=True):
        mass = normal_cdf((math.atanh(a + h) - mu) / s) - normal_cdf((math.atanh(a - h) - mu) / s)
        numerical += math.log(mass / (2 * h))
    assert TanhGaussian(mean, log_std).log_prob(actions).item() == pytest.approx(numerical, rel=1e-6)


def test_tanh_gaussian_sample_log_prob_is_finite_where_tanh_saturates():
    # At u = 20, 1 - tanh(u)^2 underflows to 0 in float32; the stable form still gives the exact log-density.
    dist = TanhGaussian(torch.tensor([[20.0]]), torch.tensor([[-30.0]]))
    action, log_prob = dist.sample()
    assert action.item() == 1.0 and math.isfinite(log_prob.item())
    u = 20.0  # log N(u; u, e^-30) + log 1/(1 - tanh(u)^2) = -(-30) - log sqrt(2 pi) - log(4 e^-40 / (1 + e^-40)^2)
    expected = 30.0 - 0.5 * math.log(2 * math.pi) - (math.log(4.0) - 2 * u)
    assert log_prob.item() == pytest.approx(expected, rel=1e-5)


def test_reparameterised_gradient_matches_the_score_function_estimate_on_a_quadratic():
    # d/d mu E[(a - c)^2], a = tanh(u), u ~ N(mu, sigma^2): the reparameterised estimator differentiates through the
    # sample; the score-function (REINFORCE) estimator weighs f(a) by d log p(a)/d mu with the sample held fixed.
    # Same expectation, different variance (003 L1277-L1321).
    torch.manual_seed(0)
    n, c = 400_000, 0.3
    mean = torch.tensor([[0.2]], dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor([[-0.4]], dtype=torch.float64)
    dist = TanhGaussian(mean.expand(n, 1), log_std.expand(n, 1))
    actions, _ = dist.rsample()
    f = (actions - c).square().squeeze(-1)
    (reparameterised,) = torch.autograd.grad(f.mean(), mean)
    held = actions.detach()
    log_prob = TanhGaussian(mean.expand(n, 1), log_std.expand(n, 1)).log_prob(held)
    f_held = (held - c).square().squeeze(-1)
    (score,) = torch.autograd.grad(((f_held - f_held.mean()) * log_prob).mean(), mean)  # with a baseline
    assert reparameterised.item() == pytest.approx(score.item(), rel=0.03)
    assert abs(reparameterised.item()) > 0.05  # not both near zero


# ---- targets -------------------------------------------------------------------------------------------------------


def test_td3_target_by_hand():
    reward, discount = torch.tensor([1.0, 0.5, -2.0]), torch.tensor([0.99, 0.0, 0.5])
    q_next = torch.tensor([[3.0, -1.0, 4.0], [2.0, 4.0, 6.0]])  # [twins, batch]
    # min of twins: 2, -1, 4; y = 1 + .99 * 2, 0.5 (terminal), -2 + .5 * 4
    torch.testing.assert_close(td3_target(reward, discount, q_next), torch.tensor([2.98, 0.5, 0.0]))
    torch.testing.assert_close(td3_target(reward, discount, q_next[:1]), torch.tensor([3.97, 0.5, 0.0]))  # DDPG


def test_target_policy_smoothing_clips_the_noise_and_the_action_with_a_fixed_generator():
    mu = torch.tensor([[0.8, -0.2], [0.0, 0.95]])
    std, clip = 0.7, 0.5
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    expected = [[min(max(m + min(max(e * std, -clip), clip), -1.0), 1.0) for m, e in zip(mr, er, strict=True)]
                for mr, er in zip(mu.tolist(), eps.tolist(), strict=True)]
    smoothed = smoothed_target_action(mu, std, clip, torch.Generator().manual_seed(5))
    torch.testing.assert_close(smoothed, torch.tensor(expected))
    assert (smoothed - mu).abs().max() <= clip + 1e-6 and smoothed.abs().max() <= 1.0
    # noise 0: the target action itself
    assert torch.equal(smoothed_target_action(mu, 0.0, clip, torch.Generator().manual_seed(5)), mu)


def test_td3_target_on_a_hand_computed_batch_with_smoothing():
    # Q'_1(s', a) = 2a, Q'_2(s', a) = a + 0.5; mu'(s') = 0.9 for both rows; noise sigma 10 is always clipped to +-0.4,
    # so a' is 1 (0.9 + 0.4 clipped to the bound) or 0.5 by the sign of the generator's draw.
    mu = torch.tensor([[0.9], [0.9]])
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    a_next = torch.where(eps > 0, 1.0, 0.5)
    smoothed = smoothed_target_action(mu, 10.0, 0.4, torch.Generator().manual_seed(1))
    torch.testing.assert_close(smoothed, a_next)
    q_next = torch.stack([2 * smoothed.squeeze(-1), smoothed.squeeze(-1) + 0.5])
    y = td3_target(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.5]), q_next)
    # a' = 1: min(2, 1.5) = 1.5 -> 1.75; a' = 0.5: min(1, 1) = 1 -> 1.5
    torch.testing.assert_close(y, torch.where(a_next.squeeze(-1) == 1.0, 1.75, 1.5))


def test_soft_q_target_by_hand():
    reward, discount = torch.tensor([1.0, 2.0]), torch.tensor([0.9, 0.0])
    q_next = torch.tensor([[3.0, 5.0], [4.0, 1.0]])
    log_prob = torch.tensor([-1.0, 7.0])
    # min 3, 1; soft value 3 - .2 (-1) = 3.2; y = 1 + .9 * 3.2 = 3.88; terminal: 2
    torch.testing.assert_close(soft_q_target(reward, discount, q_next, log_prob, 0.2), torch.tensor([3.88, 2.0]))
    # alpha = 0: the clipped double-Q target
    torch.testing.assert_close(soft_q_target(reward, discount, q_next, log_prob, 0.0),
                               td3_target(reward, discount, q_next))


def test_discrete_soft_value_by_hand():
    probs = torch.tensor([[0.25, 0.75]])
    q = torch.tensor([[[1.0, 4.0]], [[2.0, 3.0]]])  # min over twins: 1, 3
    value = discrete_soft_value(probs, probs.log(), q, 0.5)
    expected = 0.25 * (1 - 0.5 * math.log(0.25)) + 0.75 * (3 - 0.5 * math.log(0.75))
    assert value.item() == pytest.approx(expected)


# ---- the temperature -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entropy, moves", [(3.0, "down"), (-3.0, "up")])
def test_the_temperature_loss_moves_alpha_toward_the_target_entropy(entropy: float, moves: str):
    # Entropy above the target (-1): alpha falls (less weight on entropy); below: alpha rises.
    temperature = Temperature(0.5)
    optimizer = torch.optim.SGD(temperature.parameters(), lr=0.1)
    log_prob = torch.full((16,), -entropy)
    before = temperature.alpha.item()
    optimizer.zero_grad()
    temperature_loss(temperature.log_alpha, log_prob, target_entropy=-1.0).backward()
    optimizer.step()
    after = temperature.alpha.item()
    assert (after < before) if moves == "down" else (after > before)
    # the step is lr * (log pi + H_bar) in log alpha: -0.1 * (-entropy - 1) with the sign of the gradient
    assert math.log(after) - math.log(before) == pytest.approx(0.1 * (-entropy - 1.0))


def test_discrete_target_entropy_is_a_fraction_of_the_uniform_policys():
    assert discrete_target_entropy(4, 0.5) == pytest.approx(0.5 * math.log(4))


# ---- action scaling ------------------------------------------------------------------------------------------------


def test_action_scaling_round_trips_and_respects_an_asymmetric_box():
    space = gym.spaces.Box(np.array([-2.0, 0.0, -1.0], np.float32), np.array([1.0, 5.0, 3.0], np.float32))
    ends = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(scale_action(ends, space), torch.tensor([[-2.0, 0.0, -1.0], [1.0, 5.0, 3.0],
                                                                        [-0.5, 2.5, 1.0]]))
    inside = torch.rand(1000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scaled = scale_action(inside, space)
    assert (scaled >= torch.from_numpy(space.low)).all() and (scaled <= torch.from_numpy(space.high)).all()
    torch.testing.assert_close(unscale_action(scaled, space), inside)
    env_actions = torch.from_numpy(np.stack([space.sample() for _ in range(100)]))
    torch.testing.assert_close(scale_action(unscale_action(env_actions, space), space), env_actions)


def test_unbounded_or_discrete_action_spaces_are_refused():
    with pytest.raises(ValueError, match="infinite bounds"):
        check_bounded_box(gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    with pytest.raises(ValueError, match="not a Box of floats"):
        check_bounded_box(gym.spaces.Discrete(3))


# ---- the batched critics ---------------------------------------------------------------------------------------------


def test_twin_critics_in_one_batched_forward_equal_each_critic_alone():
    torch.manual_seed(0)
    obs_space, action_space = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    critics = Critics(obs_space, action_space, (8, 8), n_critics=2)
    obs, actions = torch.randn(5, 3), torch.rand(5, 2) * 2 - 1
    q = critics(obs, actions)
    assert q.shape == (2, 5)
    for k in range(2):  # critic k by itself: ReLU MLP on [s, a] with member k's weights
        h = torch.cat([obs, actions], -1)
        for i, layer in enumerate(critics.layers):
            h = F.linear(h, layer.weight[k].T, layer.bias[k, 0])
            h = torch.relu(h) if i < len(critics.layers) - 1 else h
        torch.testing.assert_close(q[k], h.squeeze(-1))
    assert not torch.equal(critics.layers[0].weight[0], critics.layers[0].weight[1])  # independent initialisations


def test_frozen_critics_pass_gradients_to_the_actions_only():
    critics = Critics(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32), (8,))
    actions = torch.zeros(4, 2, requires_grad=True)
    critics(torch.randn(4, 3), actions, frozen=True).sum().backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0
    assert all(p.grad is None for p in critics.parameters())


def test_selected_critics_equal_those_rows_of_all_critics():
    torch.manual_seed(1)
    critics = Critics(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32), (8, 8),
                      n_critics=3)
    obs, actions = torch.randn(5, 3), torch.rand(5, 2) * 2 - 1
    q = critics(obs, actions)
    torch.testing.assert_close(critics(obs, actions, members=slice(0, 1)), q[:1])
    torch.testing.assert_close(critics(obs, actions, frozen=True, members=slice(1, 3)), q[1:])


def test_joint_step_equals_one_step_per_optimiser():
    """One backward through the sum of two losses over disjoint parameters moves each as its own step would."""
    def run(joint: bool) -> list[torch.Tensor]:
        torch.manual_seed(2)
        a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
        opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=0.1), torch.optim.Adam(b.parameters(), lr=0.1)
        x = torch.randn(4, 3)
        for _ in range(3):
            out_a = a(x)
            loss_a = out_a.square().mean()
            loss_b = (b(x) * out_a.detach()).mean()  # b's loss sees a's output detached, as SAC's alpha loss log pi
            if joint:
                joint_step([(opt_a, loss_a), (opt_b, loss_b)])
            else:
                optimizer_step(opt_a, loss_a)
                optimizer_step(opt_b, loss_b)
        return [p.detach() for p in (*a.parameters(), *b.parameters())]

    for together, apart in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(together, apart, rtol=0, atol=0)


def test_discrete_critics_give_every_actions_value():
    critics = Critics(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(4), (8,))
    assert critics(torch.randn(6, 3)).shape == (2, 6, 4)


def test_ensemble_linear_is_one_linear_layer_per_member():
    layer = EnsembleLinear(3, 4, 2)
    x = torch.randn(3, 5, 4)
    for k in range(3):
        torch.testing.assert_close(layer(x)[k], x[k] @ layer.weight[k] + layer.bias[k])


@pytest.mark.parametrize("out_features", [1, 2])
def test_ensemble_linear_gradients_are_each_members_own(out_features):
    """The scalar-output layer computes elementwise (not with bmm): its output and its gradients with respect to
    the input, the weights and the bias equal those of K separate linear layers; frozen weights get none."""
    layer = EnsembleLinear(3, 6, out_features)
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    layer.double()
    upstream = torch.randn(3, 5, out_features, dtype=torch.float64)
    (layer(x) * upstream).sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    weight, bias = layer.weight.detach().clone().requires_grad_(True), layer.bias.detach().clone().requires_grad_(True)
    reference = torch.stack([x_ref[k] @ weight[k] + bias[k] for k in range(3)])
    (reference * upstream).sum().backward()
    for got, expected in ((x.grad, x_ref.grad), (layer.weight.grad, weight.grad), (layer.bias.grad, bias.grad)):
        torch.testing.assert_close(got, expected)
    layer.zero_grad(set_to_none=True)
    x_two = x.detach()[1:].clone().requires_grad_(True)
    (layer(x_two, frozen=True, members=slice(1, 3)) * upstream[1:]).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is None
    torch.testing.assert_close(x_two.grad, torch.stack([upstream[k] @ weight[k].T for k in (1, 2)]))


# ---- exploration noise -----------------------------------------------------------------------------------------------


def test_ornstein_uhlenbeck_noise_follows_its_recursion_and_resets_per_copy():
    noise = ActionNoise("ou", n_envs=3, action_shape=(2,), sigma=0.3, theta=0.15, dt=0.01)
    generator = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 2)
    replay = torch.Generator().manual_seed(0)
    for _ in range(5):
        eps = torch.randn(3, 2, generator=replay)
        x = x - 0.15 * x * 0.01 + 0.3 * math.sqrt(0.01) * eps
        torch.testing.assert_close(noise.sample(generator), x)
    noise.reset(torch.tensor([False, True, False]))
    assert torch.equal(noise.state[1], torch.zeros(2))
    torch.testing.assert_close(noise.state[0], x[0])
    gaussian = ActionNoise("gaussian", 2, (1,), sigma=0.5)
    draws = gaussian.sample(torch.Generator().manual_seed(3))
    torch.testing.assert_close(draws, 0.5 * torch.randn(2, 1, generator=torch.Generator().manual_seed(3)))
