"""C51's projection and QR-DQN's quantile Huber loss against hand computations (INVENTORY A60, A61, C32, C33)."""

import math

import pytest
import torch

from thorndike.core.distributional import (
    action_distribution,
    categorical_cross_entropy,
    categorical_expectation,
    categorical_projection,
    categorical_support,
    quantile_huber_loss,
    quantile_midpoints,
)


def test_categorical_support_is_the_notes_grid():
    # C32: N = 51 on [-10, 10]: dz = 0.4, z_1 = -10, z_26 = 0, z_51 = 10
    z = categorical_support(-10.0, 10.0, 51)
    assert z.shape == (51,) and z.dtype == torch.float32
    assert z[0].item() == -10.0 and z[-1].item() == 10.0 and abs(z[25].item()) < 1e-6
    torch.testing.assert_close(z.diff(), torch.full((50,), 0.4), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="at least 2 atoms"):
        categorical_support(-1.0, 1.0, 1)
    with pytest.raises(ValueError, match="v_min < v_max"):
        categorical_support(1.0, 1.0, 5)


def test_quantile_midpoints():
    assert quantile_midpoints(2).tolist() == [0.25, 0.75]
    torch.testing.assert_close(quantile_midpoints(4, dtype=torch.float64),
                               torch.tensor([1 / 8, 3 / 8, 5 / 8, 7 / 8], dtype=torch.float64))
    with pytest.raises(ValueError):
        quantile_midpoints(0)


def test_categorical_projection_by_hand():
    support = categorical_support(-2.0, 2.0, 5, dtype=torch.float64)  # atoms -2, -1, 0, 1, 2; dz = 1
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2],
                          [0.1, 0.2, 0.3, 0.2, 0.2],
                          [0.1, 0.2, 0.3, 0.25, 0.15]], dtype=torch.float64)
    rewards = torch.tensor([0.5, 0.3, 0.25], dtype=torch.float64)
    discounts = torch.tensor([0.5, 0.0, 2.0], dtype=torch.float64)  # row 1 is terminal
    projected = categorical_projection(probs, rewards, discounts, support)
    expected = torch.tensor([
        # r + 0.5 z = -0.5, 0, 0.5, 1, 1.5: the atoms at 0 and 1 land exactly on support points and keep all their
        # mass there; -0.5 -> half of 0.1 to -1 and to 0; 0.5 -> 0.15 to 0 and to 1; 1.5 -> 0.1 to 1 and to 2
        [0.0, 0.05, 0.05 + 0.2 + 0.15, 0.15 + 0.2 + 0.1, 0.1],
        # terminal: every atom goes to r = 0.3, split 0.7 to atom 0 and 0.3 to atom 1
        [0.0, 0.0, 0.7, 0.3, 0.0],
        # r + 2 z = -3.75, -1.75, 0.25, 2.25, 4.25: the first is clipped to V_min = -2, the last two to V_max = 2;
        # -1.75 -> 0.75 * 0.2 to -2 and 0.25 * 0.2 to -1; 0.25 -> 0.225 to 0 and 0.075 to 1
        [0.1 + 0.15, 0.05, 0.225, 0.075, 0.25 + 0.15],
    ], dtype=torch.float64)
    torch.testing.assert_close(projected, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(projected.sum(-1), torch.ones(3, dtype=torch.float64))
    # Without clipping the mean moves exactly as r + discount * mean (C32): row 0, 0.5 + 0.5 * 0.2 = 0.6
    assert (projected[0] * support).sum().item() == pytest.approx(0.6, abs=1e-12)


def test_an_atom_on_a_support_point_keeps_its_mass():
    # The classic floor/ceil bug: b = 1 exactly gives l = u = 1 and weights u - b = b - l = 0, losing the mass.
    support = categorical_support(0.0, 2.0, 3)
    for reward, discount, target in ((1.0, 1.0, [0.0, 1.0, 0.0]),  # 1 + 0 lands on atom 1
                                     (0.0, 1.0, [1.0, 0.0, 0.0]),  # 0 + 0 on V_min
                                     (2.0, 0.0, [0.0, 0.0, 1.0])):  # terminal, r = V_max
        projected = categorical_projection(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([reward]),
                                           torch.tensor([discount]), support)
        assert projected.tolist() == [target]


def test_a_nan_reward_gives_a_nan_target_not_an_index_error():
    # bad env data is named by the env checks later; the projection must not fail first on a garbage index
    support = categorical_support(0.0, 2.0, 3)
    probs = torch.tensor([[0.2, 0.4, 0.4], [0.2, 0.4, 0.4]])
    projected = categorical_projection(probs, torch.tensor([math.nan, 0.5]), torch.tensor([0.5, 0.5]), support)
    assert projected[0].sum().isnan()  # its loss is NaN too, never a finite number built on garbage
    torch.testing.assert_close(projected[1], torch.tensor([0.1, 0.7, 0.2]))


def test_categorical_projection_conserves_mass_and_mean_on_random_batches():
    g = torch.Generator().manual_seed(0)
    support = categorical_support(-10.0, 10.0, 51, dtype=torch.float64)
    probs = torch.rand(64, 51, generator=g, dtype=torch.float64).softmax(-1)
    rewards = torch.rand(64, generator=g, dtype=torch.float64) * 40 - 20  # many shifted atoms fall outside
    discounts = torch.where(torch.rand(64, generator=g) < 0.2, 0.0, 0.99).to(torch.float64)
    projected = categorical_projection(probs, rewards, discounts, support)
    assert (projected >= 0).all()
    torch.testing.assert_close(projected.sum(-1), torch.ones(64, dtype=torch.float64))
    # the mean of the projection equals that of the clipped shifted atoms (the split preserves it)
    clipped = (rewards[:, None] + discounts[:, None] * support).clamp(-10.0, 10.0)
    torch.testing.assert_close((projected * support).sum(-1), (probs * clipped).sum(-1))


def test_expectation_and_the_target_distribution_of_the_greedy_action():
    support = categorical_support(-1.0, 1.0, 3)
    # two actions in one state: Q = -0.5 and 0.2 (F3 L591), so a* = 1 and its distribution is the target's
    probs = torch.tensor([[[0.6, 0.3, 0.1], [0.2, 0.4, 0.4]]])
    q = categorical_expectation(probs, support)
    torch.testing.assert_close(q, torch.tensor([[-0.5, 0.2]]))
    torch.testing.assert_close(action_distribution(probs, q.argmax(-1)), torch.tensor([[0.2, 0.4, 0.4]]))
    quantiles = torch.arange(12.0).view(2, 3, 2)
    assert action_distribution(quantiles, torch.tensor([2, 0])).tolist() == [[4.0, 5.0], [6.0, 7.0]]


def test_categorical_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    # -log(1/2); -(0.5 log 3/4 + 0.5 log 1/4)
    expected = torch.tensor([math.log(2.0), -0.5 * (math.log(0.75) + math.log(0.25))])
    torch.testing.assert_close(categorical_cross_entropy(logits, target), expected)


def test_quantile_huber_loss_by_hand():
    # taus 0.25, 0.75; predictions 0, 1; targets 0.5, 3. The pairs u = target - pred:
    #   i = 0 (tau 0.25): u = 0.5 (Huber 0.125, weight 0.25), u = 3 (|u| > kappa: 2.5, weight 0.25) -> mean 0.328125
    #   i = 1 (tau 0.75): u = -0.5 (0.125, weight |0.75 - 1| = 0.25), u = 2 (1.5, weight 0.75) -> mean 0.578125
    # summed over i: 0.90625
    taus = quantile_midpoints(2, dtype=torch.float64)
    pred = torch.tensor([[0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.5, 3.0]], dtype=torch.float64)
    loss = quantile_huber_loss(pred, target, taus)
    assert loss.item() == pytest.approx(0.90625, abs=1e-12)
    # kappa = 0, the pinball loss: i = 0: 0.25 (0.5 + 3) / 2 = 0.4375; i = 1: (0.25 * 0.5 + 0.75 * 2) / 2 = 0.8125
    assert quantile_huber_loss(pred, target, taus, kappa=0.0).item() == pytest.approx(1.25, abs=1e-12)
    # kappa = 3: both pairs quadratic: i = 0: 0.25 (0.125 + 4.5) / 2; i = 1: (0.25 * 0.125 + 0.75 * 2) / 2
    assert quantile_huber_loss(pred, target, taus, kappa=3.0).item() == pytest.approx(
        0.578125 + 0.765625, abs=1e-12)
    # the gradient, -mean_j weight * clip(u, -1, 1): i = 0: -(0.25 * 0.5 + 0.25 * 1) / 2 = -0.1875;
    # i = 1: -(0.25 * -0.5 + 0.75 * 1) / 2 = -0.3125; both negative, so descent raises both toward the targets
    loss.backward()
    torch.testing.assert_close(pred.grad, torch.tensor([[-0.1875, -0.3125]], dtype=torch.float64))


def test_quantile_huber_loss_reductions_and_batch_mean():
    taus = quantile_midpoints(2)
    pred = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    target = torch.tensor([[0.5, 3.0], [2.0, 2.0]])  # the second sample is fitted exactly: loss 0
    per_sample = quantile_huber_loss(pred, target, taus, reduction="none")
    torch.testing.assert_close(per_sample, torch.tensor([0.90625, 0.0]))
    torch.testing.assert_close(quantile_huber_loss(pred, target, taus), torch.tensor(0.90625 / 2))
    with pytest.raises(ValueError, match="kappa"):
        quantile_huber_loss(pred, target, taus, kappa=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        quantile_huber_loss(pred, target, taus, reduction="sum")


def test_gradient_descent_moves_each_quantile_to_its_level():
    # C33: the minimiser of the pinball loss over samples at level tau is the tau-quantile. Targets 0..99,
    # levels 1/8, 3/8, 5/8, 7/8: 100 tau = 12.5, 37.5, ... so the minimisers are the samples 12, 37, 62 and 87 (the
    # subgradient there changes sign: +-0.005), and plain descent ends within a step (lr * 0.005) of them.
    taus = quantile_midpoints(4)
    targets = torch.arange(100.0).unsqueeze(0)
    pred = torch.full((1, 4), 50.0, requires_grad=True)
    optimizer = torch.optim.SGD([pred], lr=20.0)
    for _ in range(200):
        optimizer.zero_grad()
        quantile_huber_loss(pred, targets, taus, kappa=0.0).backward()
        optimizer.step()
    for value, low in zip(pred.detach()[0].tolist(), (12, 37, 62, 87)):
        assert abs(value - low) <= 0.2, (value, low)
