"""Hand-checked math of the preference learners: the reward model's last-token read-out, RLHF-PPO's per-token reward
shaping, token GAE and KL controller, and SCST's self-critical advantage."""

import pytest
import torch

from thorndike.core.returns import gae
from thorndike.lm.losses import bradley_terry_loss, preference_accuracy
from thorndike.lm.reward_model import last_token_hidden, last_token_index
from thorndike.lm.rlhf_ppo import adaptive_kl_coef, shaped_rewards, token_gae
from thorndike.lm.scst import scst_loss, self_critical_advantages


def t(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def test_last_token_index_with_left_and_right_padding():
    mask = torch.tensor([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.bool)
    assert last_token_index(mask).tolist() == [3, 4, 2]
    hidden = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    torch.testing.assert_close(last_token_hidden(hidden, mask[:2]), torch.stack((hidden[0, 3], hidden[1, 4])))


def test_bradley_terry_on_a_separable_toy_learns_to_rank():
    # Scores s = w . x on points where the chosen one always has the larger first coordinate: the loss falls from
    # log 2 (w = 0), and the learned w ranks fresh pairs almost perfectly (w's first coordinate dominates).
    generator = torch.Generator().manual_seed(0)

    def pairs(n):
        a, b = torch.randn(n, 2, generator=generator), torch.randn(n, 2, generator=generator)
        first = (a[:, 0] > b[:, 0])[:, None]
        return torch.where(first, a, b), torch.where(first, b, a)

    chosen, rejected = pairs(256)
    w = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.5)
    first = bradley_terry_loss(chosen @ w, rejected @ w).mean().item()
    assert first == pytest.approx(0.6931, abs=1e-4)
    for _ in range(100):
        optimizer.zero_grad()
        bradley_terry_loss(chosen @ w, rejected @ w).mean().backward()
        optimizer.step()
    with torch.no_grad():
        assert bradley_terry_loss(chosen @ w, rejected @ w).mean().item() < 0.3
        assert preference_accuracy(chosen @ w, rejected @ w).item() > 0.97
        fresh_chosen, fresh_rejected = pairs(1024)
        assert preference_accuracy(fresh_chosen @ w, fresh_rejected @ w).item() > 0.97
        assert preference_accuracy(fresh_rejected @ w, fresh_chosen @ w).item() < 0.03  # the labels matter
        assert abs(w[1].item()) < 0.2 * w[0].item()


def test_shaped_rewards_equal_a_hand_computation():
    # Row 0: completion at columns 1..3 (prompt at 0, padding at 4); row 1: columns 2..4.
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    logp = t([[-9.0, -1.0, -0.5, -2.0, 7.0], [-9.0, -9.0, -0.1, -0.2, -0.3]])
    ref_logp = t([[3.0, -1.5, -0.5, -1.0, -7.0], [1.0, 2.0, -0.4, -0.2, -1.3]])
    scores = t([2.0, -1.0])
    rewards, kl = shaped_rewards(logp, ref_logp, scores, mask, kl_coef=0.1)
    # kl = logp - ref_logp on completion tokens: row 0: 0.5, 0, -1; row 1: 0.3, 0, 1
    torch.testing.assert_close(kl, t([[0.0, 0.5, 0.0, -1.0, 0.0], [0.0, 0.0, 0.3, 0.0, 1.0]]))
    expected = t([[0.0, -0.05, 0.0, 0.1 + 2.0, 0.0], [0.0, 0.0, -0.03, 0.0, -0.1 - 1.0]])
    torch.testing.assert_close(rewards, expected)


def test_shaped_rewards_ignore_padding_values_even_infinite():
    mask = torch.tensor([[0, 1, 1, 0]], dtype=torch.bool)
    logp = t([[float("-inf"), -1.0, -2.0, float("nan")]]).requires_grad_()
    ref = t([[0.0, -1.0, -1.0, float("inf")]])
    rewards, _ = shaped_rewards(logp, ref, t([1.0]), mask, kl_coef=0.5)
    torch.testing.assert_close(rewards, t([[0.0, 0.0, 0.5 + 1.0, 0.0]]))  # kl = -2 - (-1) = -1 at column 2
    rewards.sum().backward()
    assert torch.equal(logp.grad, t([[0.0, -0.5, -0.5, 0.0]]))


def test_token_gae_equals_core_gae_and_a_hand_case():
    gamma, lam = 0.9, 0.8
    rewards = t([[0.0, 1.0, 0.0, 2.0, 0.0]])
    values = t([[5.0, 0.5, 1.0, 1.5, 9.0]])
    mask = torch.tensor([[0, 1, 1, 1, 0]], dtype=torch.bool)
    advantages = token_gae(rewards, values, mask, gamma, lam)
    # By hand over the completion (tokens 1..3), the value after the last token is 0:
    d3 = 2.0 - 1.5
    d2 = 0.0 + gamma * 1.5 - 1.0
    d1 = 1.0 + gamma * 1.0 - 0.5
    a3 = d3
    a2 = d2 + gamma * lam * a3
    a1 = d1 + gamma * lam * a2
    torch.testing.assert_close(advantages, t([[0.0, a1, a2, a3, 0.0]]))
    # Core's GAE on the unpadded episode gives the same numbers.
    core = gae(t([1.0, 0.0, 2.0]), t([0.5, 1.0, 1.5]), t([1.0, 1.5, 0.0]), torch.tensor([False, False, True]),
               torch.zeros(3, dtype=torch.bool), gamma, lam)
    torch.testing.assert_close(advantages[0, 1:4], core)


def test_token_gae_padding_contributes_nothing():
    gamma, lam = 1.0, 0.95
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    rewards, values = t([[1.0, 2.0, 0.0, 0.0], [0.5, 0.0, 0.0, 1.0]]), t([[0.1, 0.2, 0.0, 0.0], [0.3, 0.2, 0.1, 0.0]])
    base = token_gae(rewards, values, mask, gamma, lam)
    junk_rewards, junk_values = rewards.clone(), values.clone()
    junk_rewards[0, 2:], junk_values[0, 2:] = 100.0, -50.0
    torch.testing.assert_close(token_gae(junk_rewards, junk_values, mask, gamma, lam), base)
    # each row alone gives the same as in the batch
    torch.testing.assert_close(token_gae(rewards[:1, :2], values[:1, :2], mask[:1, :2], gamma, lam), base[:1, :2])


def test_adaptive_kl_coef():
    assert adaptive_kl_coef(0.1, kl=6.0, target_kl=6.0, n_steps=64, horizon=10_000) == pytest.approx(0.1)
    assert adaptive_kl_coef(0.1, kl=12.0, target_kl=6.0, n_steps=100, horizon=1000) == pytest.approx(0.1 * 1.02)
    assert adaptive_kl_coef(0.1, kl=3.0, target_kl=6.0, n_steps=100, horizon=1000) == pytest.approx(0.1 * 0.98)
    assert adaptive_kl_coef(0.1, kl=5.7, target_kl=6.0, n_steps=100, horizon=1000) == pytest.approx(0.1 * 0.995)


def test_self_critical_advantage_is_sample_minus_greedy_reward():
    sample = t([[1.0, 0.0, 0.5], [0.0, 0.0, 1.0]])
    greedy = t([0.5, 1.0])
    torch.testing.assert_close(self_critical_advantages(sample, greedy), t([[0.5, -0.5, 0.0], [-1.0, -1.0, 0.0]]))
    torch.testing.assert_close(self_critical_advantages(t([1.0, 0.0]), greedy), t([0.5, -1.0]))


def test_scst_loss_hand_batch_and_masking():
    token_logps = t([[0.0, -1.0, -2.0, 0.0], [0.0, 0.0, -0.5, -0.5]]).requires_grad_()
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    advantages = t([2.0, -1.0])
    loss = scst_loss(token_logps, mask, advantages)
    # -(2 * (-3) + (-1) * (-1)) / 2 = 2.5
    assert loss.item() == pytest.approx(2.5)
    loss.backward()
    torch.testing.assert_close(token_logps.grad, t([[0.0, -1.0, -1.0, 0.0], [0.0, 0.0, 0.5, 0.5]]))
