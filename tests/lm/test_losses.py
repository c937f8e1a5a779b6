import math

import pytest
import torch

from thorndike.config import ConfigError
from thorndike.core.losses import clipped_surrogate
from thorndike.lm.losses import (
    bradley_terry_loss,
    clipped_fraction,
    clipped_token_objective,
    dpo_implicit_rewards,
    dpo_loss,
    group_advantages,
    masked_mean,
    masked_sum,
    per_token_kl,
    preference_accuracy,
    sequence_logprob,
)


def t(values):
    return torch.tensor(values, dtype=torch.float64)


# ---------------------------------------------------------------- DPO


def test_dpo_loss_and_implicit_rewards_worked_example():
    # Pair 1: pc=-1, pr=-2, rc=-1.5, rr=-1.2, beta=0.1: the policy moved +0.5 on the chosen and -0.8 on the rejected,
    # margin 1.3, beta * margin = 0.13, loss = -log sigmoid(0.13) = log(1 + e^-0.13).
    # Pair 2: pc=-3, pr=-1, rc=-2, rr=-2: -1 on the chosen, +1 on the rejected, beta * margin = -0.2.
    pc, pr, rc, rr = t([-1.0, -3.0]), t([-2.0, -1.0]), t([-1.5, -2.0]), t([-1.2, -2.0])
    loss = dpo_loss(pc, pr, rc, rr, beta=0.1)
    torch.testing.assert_close(loss, t([math.log(1 + math.exp(-0.13)), math.log(1 + math.exp(0.2))]))
    chosen, rejected = dpo_implicit_rewards(pc, pr, rc, rr, beta=0.1)
    torch.testing.assert_close(chosen, t([0.05, -0.1]))
    torch.testing.assert_close(rejected, t([-0.08, 0.1]))


def test_dpo_loss_gradient_by_hand():
    # d/d pc of -log sigmoid(beta m) = -beta sigmoid(-beta m) = -beta / (1 + e^(beta m)); d/d pr is its opposite.
    pc, pr = t([-1.0]).requires_grad_(), t([-2.0]).requires_grad_()
    dpo_loss(pc, pr, t([-1.5]), t([-1.2]), beta=0.1).sum().backward()
    expected = -0.1 / (1 + math.exp(0.13))
    assert pc.grad.item() == pytest.approx(expected, rel=1e-12)
    assert pr.grad.item() == pytest.approx(-expected, rel=1e-12)


def test_dpo_loss_is_log2_at_the_reference():
    logps = t([-4.0, -0.3, -12.0])
    torch.testing.assert_close(dpo_loss(logps, logps - 1.0, logps, logps - 1.0, beta=0.5),
                               torch.full((3,), math.log(2.0), dtype=torch.float64))


# ---------------------------------------------------------------- Bradley-Terry


def test_bradley_terry_loss_and_accuracy():
    chosen, rejected = t([2.0, 0.0, -1.0]), t([1.0, 0.0, 3.0])
    torch.testing.assert_close(bradley_terry_loss(chosen, rejected),
                               t([math.log(1 + math.exp(-1.0)), math.log(2.0), math.log(1 + math.exp(4.0))]))
    # The tie counts as wrong: one pair of three is right.
    assert preference_accuracy(chosen, rejected).item() == pytest.approx(1 / 3)


def test_bradley_terry_loss_stays_finite_on_a_huge_margin():
    loss = bradley_terry_loss(torch.tensor([-100.0]), torch.tensor([100.0]))
    assert loss.item() == pytest.approx(200.0)


# ---------------------------------------------------------------- group advantages


def test_group_advantages_hand_values():
    rewards = t([[1.0, 0.0, 0.0, 1.0],  # mean 1/2, population std 1/2
                 [0.0, 0.0, 0.0, 1.0],  # mean 1/4, population variance (3/16 + 9/16) / 4 = 3/16
                 [1.0, 2.0, 3.0, 4.0]])  # mean 5/2, population variance 5/4
    s3 = math.sqrt(3.0)
    expected = t([[1.0, -1.0, -1.0, 1.0],
                  [-1 / s3, -1 / s3, -1 / s3, s3],
                  [v / math.sqrt(1.25) for v in (-1.5, -0.5, 0.5, 1.5)]])
    torch.testing.assert_close(group_advantages(rewards), expected)


def test_group_advantages_all_equal_group_is_zero_and_other_rows_are_unit():
    # 0.1 four times: the mean is not exactly 0.1 in floating point, so a plain (r - mean) / (std + eps) would not
    # give exact zeros.
    rewards = torch.cat([torch.full((1, 6), 0.1), torch.zeros(1, 6),
                         torch.rand(5, 6, generator=torch.Generator().manual_seed(0))])
    rewards.requires_grad_()
    advantages = group_advantages(rewards)
    assert (advantages[:2] == 0).all()
    torch.testing.assert_close(advantages[2:].mean(-1), torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(advantages[2:].std(-1, correction=0), torch.ones(5))
    advantages.sum().backward()
    assert torch.isfinite(rewards.grad).all()


# ---------------------------------------------------------------- per-token KL


def test_per_token_kl_hand_values():
    # pi = 1/2, pi_ref = 1/4 at the sampled token: d = log(pi_ref / pi) = -log 2.
    logp, ref_logp = t([math.log(0.5)]), t([math.log(0.25)])
    ln2 = math.log(2.0)
    assert per_token_kl(logp, ref_logp, "k1").item() == pytest.approx(ln2)
    assert per_token_kl(logp, ref_logp, "k2").item() == pytest.approx(0.5 * ln2**2)
    assert per_token_kl(logp, ref_logp, "k3").item() == pytest.approx(0.5 + ln2 - 1.0)
    with pytest.raises(ConfigError, match="estimator='k4'.*k1"):
        per_token_kl(logp, ref_logp, "k4")


def test_per_token_kl_estimators_match_the_exact_kl_on_samples():
    p = [0.4, 0.3, 0.15, 0.1, 0.05]  # pi, which samples
    q = [0.1, 0.15, 0.25, 0.25, 0.25]  # pi_ref
    exact_kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    exact_k2 = sum(pi * 0.5 * math.log(pi / qi) ** 2 for pi, qi in zip(p, q))
    tokens = torch.multinomial(t(p), 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    logp, ref_logp = t(p).log()[tokens], t(q).log()[tokens]
    for estimator, target in (("k1", exact_kl), ("k3", exact_kl), ("k2", exact_k2)):
        values = per_token_kl(logp, ref_logp, estimator)
        standard_error = values.std().item() / math.sqrt(len(values))
        assert abs(values.mean().item() - target) < 4 * standard_error, estimator
    # k3 is the lower-variance unbiased one here: its spread is about half k1's.
    k1_std = per_token_kl(logp, ref_logp, "k1").std().item()
    assert per_token_kl(logp, ref_logp, "k3").std().item() < 0.6 * k1_std
    # k2 is biased: its mean is E[(log ratio)^2] / 2, many standard errors away from the KL here.
    k2 = per_token_kl(logp, ref_logp, "k2")
    assert abs(k2.mean().item() - exact_kl) > 20 * k2.std().item() / math.sqrt(len(k2))
    assert (per_token_kl(logp, ref_logp, "k1") < 0).any()
    assert (per_token_kl(logp, ref_logp, "k3") >= 0).all()


def test_k3_is_never_negative():
    g = torch.Generator().manual_seed(1)
    logp, ref_logp = torch.randn(10_000, generator=g) * 10, torch.randn(10_000, generator=g) * 10
    assert (per_token_kl(logp, ref_logp, "k3") >= 0).all()
    assert (per_token_kl(logp, ref_logp, "k2") >= 0).all()


# ---------------------------------------------------------------- masking


MASK = torch.tensor([[True, True, False, False], [True, True, True, False], [False, False, False, False]])


def test_masked_reductions_hand_values():
    x = t([[1.0, 2.0, 50.0, 60.0], [3.0, 4.0, 5.0, 70.0], [80.0, 90.0, 1.0, 2.0]])
    torch.testing.assert_close(masked_sum(x, MASK, dim=-1), t([3.0, 12.0, 0.0]))
    torch.testing.assert_close(masked_mean(x, MASK, dim=-1), t([1.5, 4.0, 0.0]))  # an empty row gives 0
    assert masked_sum(x, MASK).item() == 15.0
    assert masked_mean(x, MASK).item() == 3.0
    torch.testing.assert_close(sequence_logprob(-x, MASK), t([-3.0, -12.0, 0.0]))


def _masked_losses(logp, old_logp, ref_logp):
    advantages = torch.tensor([1.0, -0.5, 2.0])
    objective = clipped_token_objective(logp, old_logp, advantages, MASK, clip=0.2)
    kl = per_token_kl(logp, ref_logp, "k3", mask=MASK)
    return torch.stack([masked_mean(objective, MASK, -1).mean(), masked_mean(objective, MASK),
                        masked_mean(kl, MASK), sequence_logprob(logp, MASK).sum()])


def test_padded_positions_change_nothing_and_get_no_gradient():
    g = torch.Generator().manual_seed(0)
    logp = (-torch.rand(3, 4, generator=g)).requires_grad_()
    old_logp = logp.detach() + 0.1 * torch.randn(3, 4, generator=g)
    ref_logp = logp.detach() + 0.1 * torch.randn(3, 4, generator=g)
    losses = _masked_losses(logp, old_logp, ref_logp)
    # Garbage at the padded positions (huge and infinite log-probabilities): same losses, finite gradients.
    garbage = torch.where(MASK, logp.detach(), torch.tensor(1e4)).requires_grad_()
    old_garbage = torch.where(MASK, old_logp, torch.tensor(-float("inf")))
    ref_garbage = torch.where(MASK, ref_logp, torch.tensor(float("inf")))
    torch.testing.assert_close(_masked_losses(garbage, old_garbage, ref_garbage), losses)
    for index in range(len(losses)):
        (grad,) = torch.autograd.grad(_masked_losses(garbage, old_garbage, ref_garbage)[index], garbage)
        assert (grad[~MASK] == 0).all() and torch.isfinite(grad).all()
        assert (grad[MASK] != 0).any()


# ---------------------------------------------------------------- the clipped token objective


def test_clipped_token_objective_per_token_and_aggregated():
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.5], [0.5, 1.1, 9.0]]))
    old_logp = torch.zeros(2, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    advantages = torch.tensor([1.0, -1.0])  # one per completion, given to each of its tokens
    objective = clipped_token_objective(logp, old_logp, advantages, mask, clip=0.2)
    # Row 0 (A = 1): min(1.5, 1.2) = 1.2, 1.0, min(0.5, 0.8) = 0.5. Row 1 (A = -1): min(-0.5, -0.8) = -0.8,
    # -1.1, padding 0.
    torch.testing.assert_close(objective, torch.tensor([[1.2, 1.0, 0.5], [-0.8, -1.1, 0.0]]))
    torch.testing.assert_close(objective[mask], clipped_surrogate(logp.exp(), advantages[:, None].expand(2, 3),
                                                                  0.2)[mask])
    # Per completion then over completions: (2.7 / 3 + -1.9 / 2) / 2; per token: 0.8 / 5.
    assert masked_mean(objective, mask, -1).mean().item() == pytest.approx((0.9 - 0.95) / 2)
    assert masked_mean(objective, mask).item() == pytest.approx(0.8 / 5)
    # Per-token advantages give the same as the broadcast ones.
    torch.testing.assert_close(clipped_token_objective(logp, old_logp, advantages[:, None].expand(2, 3), mask, 0.2),
                               objective)
    # Outside [0.8, 1.2]: 1.5 and 0.5 in row 0, 0.5 in row 1 (the padded 9.0 does not count): 3 of 5.
    assert clipped_fraction(logp, old_logp, mask, 0.2).item() == pytest.approx(3 / 5)
