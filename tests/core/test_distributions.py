import math

import pytest
import torch
from torch.distributions import Normal

from thorndike.core.distributions import Categorical, DiagGaussian, TanhGaussian

# ---------------------------------------------------------------- Categorical


def test_categorical_uniform_entropy():
    # uniform over 4: ln 4 = 1.386294
    assert Categorical(torch.zeros(4)).entropy().item() == pytest.approx(1.386294, abs=1e-6)


def test_categorical_hand_numbers():
    # logits [0, ln 3] -> probs [.25, .75]
    # log_prob: [ln .25, ln .75] = [-1.386294, -0.287682]
    # entropy: -(.25 ln .25 + .75 ln .75) = .346574 + .215762 = .562335
    d = Categorical(torch.tensor([0.0, math.log(3.0)]).expand(2, 2))  # batch of 2 identical rows
    torch.testing.assert_close(d.probs, torch.tensor([[0.25, 0.75], [0.25, 0.75]]))
    torch.testing.assert_close(d.log_prob(torch.tensor([0, 1])), torch.tensor([-1.386294, -0.287682]))
    torch.testing.assert_close(d.entropy(), torch.tensor([0.562335, 0.562335]))
    assert d.mode().tolist() == [1, 1]


def test_categorical_batch_shapes():
    d = Categorical(torch.randn(2, 3, 5))
    a = d.sample()
    assert a.shape == (2, 3) and a.dtype == torch.long
    assert d.log_prob(a).shape == (2, 3)
    assert d.entropy().shape == (2, 3)
    assert d.mode().shape == (2, 3)
    torch.testing.assert_close(d.probs.sum(-1), torch.ones(2, 3))


def test_categorical_large_logits_stable():
    # softmax([1000, 0]) = [1, e^-1000]: log_prob = [0, -1000], entropy ~ 0
    d = Categorical(torch.tensor([1000.0, 0.0]).expand(2, 2))
    torch.testing.assert_close(d.log_prob(torch.tensor([0, 1])), torch.tensor([0.0, -1000.0]))
    torch.testing.assert_close(d.entropy(), torch.zeros(2))


def test_categorical_masked_action():
    # logits [0, -inf, 0]: uniform over two actions, entropy ln 2 = .693147, masked action never drawn
    d = Categorical(torch.tensor([0.0, -math.inf, 0.0]).expand(1000, 3))
    assert torch.isfinite(d.entropy()).all()
    assert d.entropy()[0].item() == pytest.approx(0.693147, abs=1e-6)
    assert (d.sample(torch.Generator().manual_seed(0)) != 1).all()


def test_categorical_frequencies_match_probs():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 20_000
    a = Categorical(probs.log().expand(n, 4)).sample(torch.Generator().manual_seed(123))
    freq = torch.bincount(a, minlength=4).float() / n
    # binomial std <= sqrt(.4*.6/20000) = .0035; allow ~4 sigma
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


def test_categorical_reproducible():
    d = Categorical(torch.randn(64, 6, generator=torch.Generator().manual_seed(0)))
    a1 = d.sample(torch.Generator().manual_seed(7))
    a2 = d.sample(torch.Generator().manual_seed(7))
    a3 = d.sample(torch.Generator().manual_seed(8))
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, a3)


def test_categorical_log_prob_gradient():
    logits = torch.tensor([0.0, math.log(3.0)], requires_grad=True)
    Categorical(logits).log_prob(torch.tensor(1)).backward()
    # d log softmax_1 / d logits = onehot(1) - probs = [-.25, .25]
    torch.testing.assert_close(logits.grad, torch.tensor([-0.25, 0.25]))


# ---------------------------------------------------------------- DiagGaussian


def test_diag_gaussian_hand_numbers():
    # standard normal in 2-D at x = 0: 2 * (-0.5 ln 2pi) = -ln 2pi = -1.837877
    d = DiagGaussian(torch.zeros(2), torch.zeros(2))
    assert d.log_prob(torch.zeros(2)).item() == pytest.approx(-1.837877, abs=1e-6)
    # entropy: 2 * (0.5 + 0.5 ln 2pi) = 1 + 1.837877 = 2.837877
    assert d.entropy().item() == pytest.approx(2.837877, abs=1e-6)


def test_diag_gaussian_matches_torch_normal():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=g, dtype=torch.float64)
    log_std = torch.randn(3, generator=g, dtype=torch.float64) * 0.5  # broadcasts over the batch
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    d, ref = DiagGaussian(mean, log_std), Normal(mean, log_std.exp())
    torch.testing.assert_close(d.log_prob(x), ref.log_prob(x).sum(-1))
    torch.testing.assert_close(d.entropy(), ref.entropy().sum(-1))
    assert d.mode() is mean


def test_diag_gaussian_sampling():
    mean = torch.tensor([1.0, -2.0], requires_grad=True)
    log_std = torch.tensor([math.log(0.5), math.log(2.0)])
    d = DiagGaussian(mean.expand(20_000, 2), log_std)
    x = d.rsample(torch.Generator().manual_seed(0))
    assert x.requires_grad
    # std error of the mean <= 2/sqrt(20000) = .014
    torch.testing.assert_close(x.mean(0), torch.tensor([1.0, -2.0]), atol=0.06, rtol=0)
    torch.testing.assert_close(x.std(0), torch.tensor([0.5, 2.0]), atol=0.05, rtol=0)
    s1 = d.sample(torch.Generator().manual_seed(3))
    s2 = d.sample(torch.Generator().manual_seed(3))
    assert not s1.requires_grad and torch.equal(s1, s2)


# ---------------------------------------------------------------- TanhGaussian


def change_of_variables_log_prob(mean, log_std, a):
    # p_a(a) = p_u(atanh a) * |du/da|, du/da = 1 / (1 - a^2)
    u = torch.atanh(a)
    return (Normal(mean, log_std.exp()).log_prob(u) - torch.log1p(-a.square())).sum(-1)


def test_tanh_gaussian_log_prob_change_of_variables():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(6, 2, generator=g, dtype=torch.float64)
    log_std = torch.randn(6, 2, generator=g, dtype=torch.float64) * 0.3
    a = torch.rand(6, 2, generator=g, dtype=torch.float64) * 1.8 - 0.9
    d = TanhGaussian(mean, log_std)
    torch.testing.assert_close(d.log_prob(a), change_of_variables_log_prob(mean, log_std, a))


def test_tanh_gaussian_rsample_consistent():
    mean = torch.tensor([[0.2, -0.4]], dtype=torch.float64).expand(100, 2).requires_grad_()
    log_std = torch.tensor([-0.5, 0.0], dtype=torch.float64)
    d = TanhGaussian(mean, log_std)
    a, logp = d.rsample(torch.Generator().manual_seed(0))
    assert a.shape == (100, 2) and logp.shape == (100,)
    assert (a.abs() < 1).all() and a.requires_grad and logp.requires_grad
    torch.testing.assert_close(logp, d.log_prob(a))
    a2, _ = d.sample(torch.Generator().manual_seed(0))
    assert torch.equal(a2, a.detach())
    torch.testing.assert_close(d.mode(), torch.tanh(mean))


def test_tanh_gaussian_stable_for_saturated_actions():
    # u ~ 20: tanh(u) rounds to 1 in float32 and the naive log(1 - tanh^2) would be -inf.
    d = TanhGaussian(torch.full((4, 3), 20.0, requires_grad=True), torch.zeros(3))
    a, logp = d.rsample(torch.Generator().manual_seed(0))
    assert torch.isfinite(logp).all()
    mean = d.base.mean
    logp.sum().backward()
    assert torch.isfinite(mean.grad).all()
    assert torch.isfinite(d.log_prob(torch.ones(4, 3))).all()


def test_tanh_gaussian_density_integrates_to_one():
    f64 = torch.float64
    d = TanhGaussian(torch.tensor([0.3], dtype=f64), torch.tensor([math.log(0.5)], dtype=f64))
    a = torch.linspace(-1, 1, 200_001, dtype=torch.float64)[1:-1].unsqueeze(-1)
    density = d.log_prob(a).exp()
    assert torch.trapezoid(density, a.squeeze(-1)).item() == pytest.approx(1.0, abs=1e-3)
