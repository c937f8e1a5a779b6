"""TRPO's oracles: the natural step's closed-form size against an explicitly formed Fisher matrix, the line search
(backtracking when the full step breaks the KL radius; refusing steps that do not improve the surrogate), and a real
update on CartPole whose KL, measured here from the distributions before and after, is within delta."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import thorndike as th
from thorndike.core.distributions import DiagGaussian
from thorndike.core.losses import kl_divergence
from thorndike.core.natural_gradient import natural_step_size
from thorndike.policy_gradient.trpo import trust_region_step

QUIET = dict(progress=False, tensorboard=False, pictures=False)


def gaussian_policy(dim: int) -> tuple[nn.Parameter, nn.Parameter]:
    generator = torch.Generator().manual_seed(0)
    return (nn.Parameter(torch.randn(dim, generator=generator, dtype=torch.float64)),
            nn.Parameter(0.3 * torch.randn(dim, generator=generator, dtype=torch.float64)))


def test_the_step_before_the_line_search_has_the_closed_form_size() -> None:
    # A one-state Gaussian policy, theta = (mean, log_std): its Fisher matrix is formed exactly here, by the KL's
    # Hessian, and checked against the textbook diag(1/sigma^2, 2).
    mean, log_std = gaussian_policy(3)
    params = [mean, log_std]
    old = DiagGaussian(mean.detach().clone(), log_std.detach().clone())
    generator = torch.Generator().manual_seed(1)
    actions = old.mean + old.std * torch.randn(64, 3, generator=generator, dtype=torch.float64)
    advantages = torch.randn(64, generator=generator, dtype=torch.float64)
    old_log_probs = old.log_prob(actions)

    def objective() -> torch.Tensor:
        return ((DiagGaussian(mean, log_std).log_prob(actions) - old_log_probs).exp() * advantages).mean()

    def mean_kl() -> torch.Tensor:
        return kl_divergence(old, DiagGaussian(mean, log_std)).mean()

    def kl_of(theta: torch.Tensor) -> torch.Tensor:
        return kl_divergence(old, DiagGaussian(theta[:3], theta[3:])).mean()

    start = torch.cat([mean.detach(), log_std.detach()])
    fisher = torch.autograd.functional.hessian(kl_of, start)
    torch.testing.assert_close(fisher, torch.diag(torch.cat([(-2 * old.log_std).exp(), torch.full((3,), 2.0,
                                                                                            dtype=torch.float64)])))
    g = torch.cat(torch.autograd.grad(objective(), params))
    damping, delta = 0.1, 0.01
    natural = torch.linalg.solve(fisher + damping * torch.eye(6, dtype=torch.float64), g)
    expected = natural_step_size(g, natural, delta)

    step = trust_region_step(params, objective, mean_kl, delta, cg_iterations=6, damping=damping)
    assert step.step_size == pytest.approx(float(expected), rel=1e-6)
    assert step.step_size == pytest.approx(math.sqrt(2 * delta / float(g @ natural)), rel=1e-6)
    assert step.accepted
    moved = torch.cat([mean.detach(), log_std.detach()]) - start
    torch.testing.assert_close(moved, 0.8**step.backtracks * float(expected) * natural)
    assert 0 < step.kl <= delta
    assert float(mean_kl().detach()) == pytest.approx(step.kl)


def test_the_line_search_backtracks_when_the_full_step_breaks_the_kl_radius() -> None:
    # Objective -log_std: the natural step shrinks the std. The KL of a log-std change u, (e^(-2u) - 1 + 2u) / 2,
    # grows faster than its quadratic model u^2 for u < 0, so the full step, sized for the model, overshoots delta.
    log_std = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    mean = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    old = DiagGaussian(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))

    def mean_kl() -> torch.Tensor:
        return kl_divergence(old, DiagGaussian(mean, log_std)).mean()

    delta = 0.5
    step = trust_region_step([mean, log_std], lambda: -log_std.sum(), mean_kl, delta, cg_iterations=2, damping=0.0)
    full = -math.sqrt(2 * delta / 0.5) * 0.5  # g = -1, F = 2: x = -1/2, g^T x = 1/2
    assert step.step_size * -0.5 == pytest.approx(full)
    assert 0.5 * (math.exp(-2 * full) - 1 + 2 * full) > delta  # the full step is outside the trust region
    assert step.accepted and step.backtracks == 1
    assert float(log_std.detach()) == pytest.approx(0.8 * full)
    assert step.kl == pytest.approx(0.5 * (math.exp(-1.6 * full) - 1 + 1.6 * full)) and step.kl <= delta
    assert step.improvement == pytest.approx(-0.8 * full)


def test_the_line_search_keeps_the_policy_when_no_step_improves_the_surrogate() -> None:
    # -u - 100 u^2 rises only for |u| < 0.01 along u < 0, and even the 10th try (0.8^9 of the full step 0.1) is
    # longer: nothing is accepted, and the parameters are restored.
    log_std = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    mean = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    old = DiagGaussian(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    step = trust_region_step([mean, log_std], lambda: (-log_std - 100 * log_std.square()).sum(),
                             lambda: kl_divergence(old, DiagGaussian(mean, log_std)).mean(), 0.01, damping=0.0)
    assert not step.accepted and step.backtracks == 10 and step.kl == 0.0
    assert float(log_std.detach()) == 0.0 and float(mean.detach()) == 0.0


def test_a_real_update_stays_within_delta_and_improves_the_surrogate(tmp_path: Path) -> None:
    agent = th.make("trpo", env="CartPole-v1", seed=0, n_envs=2, n_steps=64, max_kl=0.005, run_root=str(tmp_path),
                    **QUIET)
    for _ in range(2):
        agent.collect()
        advantages, returns = agent.targets()
        obs = agent.buffer.flat()["obs"]
        with torch.no_grad():
            before = agent.model.distribution(obs)
        stats = agent.update(advantages, returns)
        with torch.no_grad():
            measured = float(kl_divergence(before, agent.model.distribution(obs)).mean())
        assert stats["accepted"] == 1.0
        assert stats["kl"] == pytest.approx(measured, rel=1e-4)
        assert 0 < measured <= 0.005
        assert stats["surrogate_improvement"] > 0


def test_the_run_logs_the_kl_of_every_step(tmp_path: Path) -> None:
    agent = th.make("trpo", env="CartPole-v1", seed=1, n_envs=2, n_steps=64, run_root=str(tmp_path), **QUIET)
    agent.learn(640)
    rows = list(csv.DictReader((agent.run.run_dir / "progress.csv").open()))
    assert len(rows) == 5 and all(0 <= float(row["kl"]) <= agent.config.max_kl for row in rows)
