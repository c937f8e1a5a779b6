import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thorndike.core.distributions import Categorical, DiagGaussian
from thorndike.core.losses import (
    approx_kl,
    clipped_surrogate,
    importance_ratio,
    kl_divergence,
    kl_penalized_surrogate,
    surrogate,
    value_loss,
)

# ---------------------------------------------------------------- clipped_surrogate


@pytest.mark.parametrize(
    "ratio, adv, expected",
    [
        (1.5, 1.0, 1.2),  # min(1.5, 1.2*1)
        (0.5, 1.0, 0.5),  # min(0.5, 0.8*1)
        (0.5, -1.0, -0.8),  # min(-0.5, 0.8*-1)
        (1.5, -1.0, -1.5),  # min(-1.5, 1.2*-1)
        (1.0, 3.0, 3.0),  # inside the clip range both terms equal ratio*A
        (1.0, -2.5, -2.5),
    ],
)
def test_clipped_surrogate_oracles(ratio, adv, expected):
    out = clipped_surrogate(torch.tensor(ratio), torch.tensor(adv), 0.2)
    assert out.item() == pytest.approx(expected, abs=1e-6)


def test_clipped_surrogate_gradient():
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.1], requires_grad=True)
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0, 2.0])
    clipped_surrogate(ratio, adv, 0.2).sum().backward()
    # clipped on the good side (ratio>1.2,A>0 / ratio<0.8,A<0): no gradient;
    # the pessimistic side keeps the unclipped term, so d/d ratio = A; inside the range also A.
    torch.testing.assert_close(ratio.grad, torch.tensor([0.0, 0.0, -1.0, 1.0, 2.0]))


@settings(max_examples=50, deadline=None)
@given(
    ratio=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=20),
    clip=st.floats(0.01, 0.5),
    seed=st.integers(0, 1000),
)
def test_clipped_never_exceeds_unclipped(ratio, clip, seed):
    r = torch.tensor(ratio, dtype=torch.float64)
    a = torch.randn(len(ratio), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert (clipped_surrogate(r, a, clip) <= r * a).all()


# ---------------------------------------------------------------- value_loss


def test_value_loss_unclipped():
    # (V-R)^2 = [1, 4] -> 0.5 * 2.5 = 1.25
    v, r = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])
    assert value_loss(v, r).item() == pytest.approx(1.25)
    # old values without clip change nothing
    assert value_loss(v, r, old_values=torch.tensor([9.0, 9.0])).item() == pytest.approx(1.25)


def test_value_loss_clipped():
    # V = [1, 2], R = [1.5, 1], old = [0, 3], clip .2
    # unclipped sq: [.25, 1]; V_clip = old + clamp(V-old) = [0 + .2, 3 - .2] = [.2, 2.8]
    # clipped sq: [(.2-1.5)^2, (2.8-1)^2] = [1.69, 3.24]; max -> [1.69, 3.24]; 0.5*mean = 1.2325
    v, r, old = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.0]), torch.tensor([0.0, 3.0])
    assert value_loss(v, r, old, 0.2).item() == pytest.approx(1.2325)
    # V = [1, 2], R = [0, 4], old = [.5, 2.5]: V_clip = [.7, 2.3], sq_clip = [.49, 2.89] < [1, 4] -> 1.25
    v, r, old = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]), torch.tensor([0.5, 2.5])
    assert value_loss(v, r, old, 0.2).item() == pytest.approx(1.25)


def test_value_loss_clip_needs_old_values():
    with pytest.raises(ValueError):
        value_loss(torch.zeros(2), torch.zeros(2), clip=0.2)


# ---------------------------------------------------------------- approx_kl


def test_approx_kl_zero_and_hand():
    assert approx_kl(torch.zeros(5)).item() == 0.0
    # r = [2, 1/2]: (2-1-ln2) + (.5-1+ln2) = .5 -> mean .25
    lr = torch.tensor([math.log(2.0), -math.log(2.0)], dtype=torch.float64)
    assert approx_kl(lr).item() == pytest.approx(0.25, abs=1e-12)


def test_approx_kl_non_negative():
    g = torch.Generator().manual_seed(0)
    for scale in (1e-4, 0.1, 3.0):
        lr = torch.randn(100, generator=g) * scale
        # each term (r - 1 - log r) >= 0, so even a single sample is non-negative
        assert approx_kl(lr).item() >= 0.0
        assert (torch.stack([approx_kl(x) for x in lr]) >= 0).all()


def test_approx_kl_estimates_true_kl():
    p_logits = torch.tensor([0.0, 0.5, 1.0, -0.3], dtype=torch.float64)
    q_logits = p_logits + torch.tensor([0.1, -0.1, 0.05, 0.2], dtype=torch.float64)
    logp, logq = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    true_kl = (logp.exp() * (logp - logq)).sum()  # KL(p || q), p = old policy
    old = Categorical(p_logits.expand(200_000, 4))
    a = old.sample(torch.Generator().manual_seed(0))
    est = approx_kl(logq[a] - logp[a])
    assert est.item() == pytest.approx(true_kl.item(), rel=0.05)


# ---- the surrogate, the importance ratio and the exact KL (TRPO) -----------------------------------------------------


def test_the_surrogate_gradient_at_ratio_one_is_the_policy_gradient() -> None:
    # 004 (C47): with pi_theta' = pi_theta the surrogate's gradient is the vanilla policy gradient grad log pi A.
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    actions = torch.tensor([0, 2, 1, 1, 0])
    advantages = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0])
    log_probs = Categorical(logits).log_prob(actions)
    ratio = importance_ratio(log_probs - log_probs.detach())
    assert torch.equal(ratio, torch.ones(5))
    (surrogate_gradient,) = torch.autograd.grad(surrogate(ratio, advantages).mean(), logits, retain_graph=True)
    (policy_gradient,) = torch.autograd.grad((log_probs * advantages).mean(), logits)
    torch.testing.assert_close(surrogate_gradient, policy_gradient)


def test_clipped_surrogate_is_the_surrogate_inside_the_clip_range() -> None:
    ratio = torch.tensor([0.9, 1.1, 1.0])
    advantages = torch.tensor([2.0, -1.0, 0.5])
    torch.testing.assert_close(clipped_surrogate(ratio, advantages, 0.2), surrogate(ratio, advantages))


def test_exact_kl_of_categoricals_matches_torch_and_the_notes_properties() -> None:
    generator = torch.Generator().manual_seed(1)
    p, q = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    kl = kl_divergence(Categorical(p), Categorical(q))
    expected = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=p),
                                                 torch.distributions.Categorical(logits=q))
    torch.testing.assert_close(kl, expected)
    assert (kl >= 0).all()
    torch.testing.assert_close(kl_divergence(Categorical(p), Categorical(p)), torch.zeros(6))
    # 003 L1081-L1084 (Pinsker): |p(a) - q(a)| <= sqrt(KL(p || q) / 2) for every action
    gap = (Categorical(p).probs - Categorical(q).probs).abs()
    assert (gap <= (kl / 2).sqrt().unsqueeze(-1) + 1e-6).all()


def test_exact_kl_of_diagonal_gaussians_matches_torch() -> None:
    generator = torch.Generator().manual_seed(2)
    m1, m2, s1, s2 = (torch.randn(5, 3, generator=generator) for _ in range(4))
    kl = kl_divergence(DiagGaussian(m1, s1), DiagGaussian(m2, s2))
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(m1, s1.exp()),
                                                 torch.distributions.Normal(m2, s2.exp())).sum(-1)
    torch.testing.assert_close(kl, expected)
    torch.testing.assert_close(kl_divergence(DiagGaussian(m1, s1), DiagGaussian(m1, s1)), torch.zeros(5))
    with pytest.raises(TypeError, match="no closed form"):
        kl_divergence(DiagGaussian(m1, s1), Categorical(m2))


def test_kl_penalized_surrogate_by_hand() -> None:
    # pi_old(.|s) = (0.5, 0.5), pi(.|s) = (0.8, 0.2), action 0 taken with A = 1, beta = 2:
    # r = 0.8 / 0.5 = 1.6, KL(old || new) = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2) = 0.5 ln(1.5625) = 0.2231436,
    # so r A - beta KL = 1.6 - 0.4462871 = 1.1537129.
    old, new = Categorical(torch.tensor([[0.5, 0.5]]).log()), Categorical(torch.tensor([[0.8, 0.2]]).log())
    action = torch.tensor([0])
    ratio = importance_ratio(new.log_prob(action) - old.log_prob(action))
    kl = kl_divergence(old, new)
    assert float(kl) == pytest.approx(0.5 * math.log(1.5625), abs=1e-6)
    value = kl_penalized_surrogate(ratio, torch.tensor([1.0]), kl, 2.0)
    assert float(value) == pytest.approx(1.1537129, abs=1e-6)
    # per sample, with beta as a 0-d tensor (as PPO keeps it): [1.2 * 2 - 0.5 * 0.1, 0.5 * -1 - 0.5 * 0.3]
    per_sample = kl_penalized_surrogate(torch.tensor([1.2, 0.5]), torch.tensor([2.0, -1.0]), torch.tensor([0.1, 0.3]),
                                        torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(per_sample, torch.tensor([2.35, -0.65]))


def test_the_kl_penalty_adds_no_gradient_at_the_old_policy() -> None:
    # KL(pi_old || pi) is minimal (0) at pi = pi_old, so there the penalised surrogate's gradient is the surrogate's,
    # the vanilla policy gradient, whatever beta; one step away the penalty pulls back towards pi_old.
    torch.manual_seed(0)
    old_logits = torch.randn(5, 3)
    actions, adv = torch.randint(0, 3, (5,)), torch.randn(5)
    old = Categorical(old_logits)

    def gradient(logits: torch.Tensor, beta: float) -> torch.Tensor:
        logits = logits.clone().requires_grad_(True)
        new = Categorical(logits)
        ratio = importance_ratio(new.log_prob(actions) - old.log_prob(actions))
        objective = kl_penalized_surrogate(ratio, adv, kl_divergence(old, new), beta).mean()
        (grad,) = torch.autograd.grad(objective, logits)
        return grad

    torch.testing.assert_close(gradient(old_logits, 10.0), gradient(old_logits, 0.0))
    moved = old_logits + 0.5 * torch.randn(5, 3)
    assert not torch.allclose(gradient(moved, 10.0), gradient(moved, 0.0))
