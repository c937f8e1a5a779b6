"""The liquidation env: Gymnasium and native versions agree; the return is the cost plus the risk penalty, path by
path; simulated costs of the closed-form schedule match E[C] and Var[C] within their standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.envs.finance import (
    LIQUIDATION_ID,
    BatchedLiquidation,
    LiquidationParams,
    OptimalLiquidationEnv,
    almgren_chriss,
    paired_difference,
    schedule_cost,
    schedule_policy,
    simulate,
    twap,
)

P = LiquidationParams()
MARKET = {"X": P.X, "T": P.T, "N": P.N, "sigma": P.sigma, "eta": P.eta, "gamma": P.gamma}
COST = {k: MARKET[k] for k in ("T", "sigma", "eta", "gamma")}


class FixedNormals:
    """Stands in for the Gymnasium env's ``np_random``: standard_normal() returns the given draws in order."""

    def __init__(self, draws: np.ndarray):
        self._draws = iter(draws)

    def standard_normal(self) -> float:
        return float(next(self._draws))


def test_gymnasium_and_native_agree_on_the_same_actions_and_noise():
    n_envs, rng = 3, np.random.default_rng(0)
    noise = rng.standard_normal((P.N, n_envs))
    actions = rng.uniform(-0.3, 1.3, (P.N, n_envs, 1))  # out of [0, 1] on purpose: both clip
    native = BatchedLiquidation(n_envs, dtype=torch.float64)
    draws = iter(torch.as_tensor(noise))
    native._step_random = lambda: next(draws)  # the native env's only random input per step
    native_obs = [native.reset(seed=0)]
    native_rewards, native_terminated = [], []
    for k in range(P.N):
        obs, reward, terminated, truncated, info = native.step(torch.as_tensor(actions[k]))
        native_obs.append(info["final_obs"])
        native_rewards.append(reward)
        native_terminated.append(terminated)
        assert not truncated.any()
    for i in range(n_envs):
        env = OptimalLiquidationEnv()
        obs, _ = env.reset(seed=0)
        env.np_random = FixedNormals(noise[:, i])
        np.testing.assert_allclose(obs, native_obs[0][i].numpy(), atol=1e-7)
        for k in range(P.N):
            obs, reward, terminated, truncated, info = env.step(actions[k, i])
            np.testing.assert_allclose(obs, native_obs[k + 1][i].numpy(), rtol=1e-6, atol=1e-7)
            assert reward == pytest.approx(float(native_rewards[k][i]), rel=1e-6, abs=1e-7)
            assert terminated == bool(native_terminated[k][i]) == (k == P.N - 1) and not truncated
        assert obs[0] == 0.0  # the last step sold what was left


def test_last_step_sells_the_rest_whatever_the_action():
    env = th.envs.make(LIQUIDATION_ID, n_envs=2, seed=0)
    assert isinstance(env, BatchedLiquidation)
    for _ in range(P.N):
        obs, _, terminated, _, info = env.step(torch.zeros(2, 1))  # never sell
    assert terminated.all() and (info["final_obs"][:, 0] == 0).all()
    assert torch.equal(obs[:, :2], torch.ones(2, 2))  # reset: all held, all the time left


def test_make_passes_env_kwargs_to_either_backend():
    native = th.envs.make(LIQUIDATION_ID, n_envs=2, seed=0, env_kwargs={"lam": 2e-6, "N": 5, "n_returns": 1})
    assert isinstance(native, BatchedLiquidation) and native.params.lam == 2e-6
    assert native.single_observation_space.shape == (3,)
    gym_env = th.envs.make(LIQUIDATION_ID, n_envs=2, seed=0, backend="gymnasium", env_kwargs={"N": 5})
    assert gym_env.single_observation_space.shape == (5,)
    th.envs.check(LIQUIDATION_ID, steps=50)


def test_return_is_cost_plus_risk_penalty_path_by_path():
    s = almgren_chriss(**MARKET, lam=P.lam)
    paths = simulate(schedule_policy(s.holdings), 500, seed=1)
    # the float32 rewards summed, against the float64 cost rebuilt from the states
    np.testing.assert_allclose(-paths.returns * P.scale, paths.cost + paths.penalty, rtol=1e-5, atol=P.scale * 1e-5)
    np.testing.assert_allclose(paths.holdings, np.broadcast_to(s.holdings, (500, P.N + 1)), rtol=1e-6, atol=1e-3)
    # a static schedule's penalty is lam Var[C] on every path
    np.testing.assert_allclose(paths.penalty, P.lam * s.variance, rtol=1e-9)


@pytest.mark.parametrize("schedule", ["almgren_chriss", "twap", "front_loaded"])
def test_simulated_cost_matches_closed_form_within_standard_errors(schedule):
    if schedule == "almgren_chriss":
        holdings = almgren_chriss(**MARKET, lam=P.lam).holdings
    elif schedule == "twap":
        holdings = twap(P.X, P.N)
    else:
        holdings = P.X * np.concatenate([0.5 ** np.arange(P.N), [0.0]])
    expected, variance = schedule_cost(holdings, **COST)
    paths = simulate(schedule_policy(holdings), 40_000, seed=2)
    mean, mean_se = paths.mean_cost()
    var, var_se = paths.variance()
    assert abs(mean - expected) < 4 * mean_se
    assert abs(var - variance) < 4 * var_se
    # the expected return is -(E[C] + lam Var[C]) / scale for a static schedule
    ret = paths.returns.mean().item()
    ret_se = paths.returns.std().item() / math.sqrt(40_000)
    assert abs(ret + (expected + P.lam * variance) / P.scale) < 4 * ret_se
    objective, objective_se = paths.objective()
    assert abs(objective - (expected + P.lam * variance)) < 4 * objective_se


def test_paired_scoring_ranks_closed_form_above_twap():
    lam = 1e-6
    s = almgren_chriss(**MARKET, lam=lam)
    e, v = schedule_cost(twap(P.X, P.N), **COST)
    ac = simulate(schedule_policy(s.holdings), 4000, seed=3, lam=lam)
    tw = simulate(schedule_policy(twap(P.X, P.N)), 4000, seed=3, lam=lam)
    diff, se = paired_difference(ac, tw)
    assert abs(diff - (s.objective(lam) - (e + lam * v))) < 4 * se
    assert diff + 4 * se < 0
    # pairing: both saw the same noise, so the difference's error is below that of two independent estimates
    assert se < 0.8 * math.hypot(ac.objective()[1], tw.objective()[1])


def test_an_agent_is_scored_through_its_act(tmp_path):
    # the benchmark's machinery on an untrained agent: the holdings it produces are its actions applied in turn
    agent = th.make("sac", env=LIQUIDATION_ID, env_kwargs={"N": 4}, seed=0, progress=False, tensorboard=False,
                    pictures=False, run_root=str(tmp_path), hidden_sizes=[8])
    paths = simulate(lambda obs: agent.act(obs), 16, seed=0, N=4)
    fractions = 1 - paths.holdings[:, 1:] / paths.holdings[:, :-1]
    assert torch.all((fractions >= 0) & (fractions <= 1)) and torch.all(paths.holdings[:, -1] == 0)
    assert torch.allclose(fractions[:, -1], torch.ones(16, dtype=torch.float64))


@pytest.mark.parametrize("bad, match", [({"n_returns": -1}, "n_returns"), ({"reward_scale": 0.0}, "reward_scale"),
                                        ({"sigma": 0.0}, "sigma"), ({"N": 0}, "N")])
def test_bad_parameters_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        LiquidationParams(**bad)


def test_control_estimator_is_exact_for_static_schedules_and_agrees_with_sample_for_adaptive_ones():
    lam = 1e-6
    s = almgren_chriss(**MARKET, lam=lam)
    paths = simulate(schedule_policy(s.holdings), 200, seed=4, lam=lam)
    estimate, se = paths.objective("control")
    assert estimate == pytest.approx(s.objective(lam), rel=1e-9) and se < 1e-6 * estimate
    np.testing.assert_allclose(paths.cost, paths.impact + paths.noise)

    # a policy that reacts to the last move (sells more after a rise): both estimators target the same number
    def adaptive(obs: torch.Tensor) -> torch.Tensor:
        return (0.2 + 0.1 * obs[:, 2:3]).clamp(0.0, 1.0)

    paths = simulate(adaptive, 40_000, seed=5, lam=lam)
    assert paths.risk.std() > 0.05 * paths.risk.mean()  # it is adaptive: the risk differs from path to path
    gap = paths.influence("sample") - paths.influence("control")
    assert abs(gap.mean()) < 4 * gap.std() / math.sqrt(gap.numel())
    assert paths.objective("control")[1] < 0.5 * paths.objective("sample")[1]
    with pytest.raises(ValueError, match="estimator"):
        paths.objective("bootstrap")


def test_expected_reward_keeps_every_policys_mean_return_and_cuts_its_variance():
    # a policy that reacts to the prices (sells more after a rise): still non-anticipating, so the dropped noise
    # term x_k xi_k has mean 0 and both rewards give the same expected return, path pairs differing by noise only
    def adaptive(obs: torch.Tensor) -> torch.Tensor:
        return (0.15 + 0.1 * obs[:, 2:3]).clamp(0.0, 1.0)

    realised = simulate(adaptive, 20_000, seed=6, lam=3e-8)
    expected = simulate(adaptive, 20_000, seed=6, lam=3e-8, reward="expected")
    assert torch.equal(realised.holdings, expected.holdings)  # the same paths and actions: only the reward differs
    diff = realised.returns - expected.returns
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(diff.numel())
    assert diff.std() > 0.1 * realised.returns.abs().mean()  # the term dropped is not small
    assert expected.returns.var() < 0.05 * realised.returns.var()
    # and it is the impact and risk penalty exactly, path by path
    np.testing.assert_allclose(-expected.returns * P.scale, expected.impact + expected.penalty, rtol=1e-5)
    with pytest.raises(ValueError, match="reward"):
        LiquidationParams(reward="sampled")


def test_expected_reward_agrees_between_gymnasium_and_native():
    actions = np.linspace(0.05, 0.6, P.N)
    native = BatchedLiquidation(1, dtype=torch.float64, reward="expected")
    native.reset(seed=3)
    env = OptimalLiquidationEnv(reward="expected")
    env.reset(seed=3)
    for k in range(P.N):
        _, native_reward, *_ = native.step(torch.tensor([[actions[k]]]))
        _, reward, *_ = env.step(actions[k : k + 1])  # different noise on purpose: the reward does not see it
        assert reward == pytest.approx(float(native_reward[0]), rel=1e-6)


def test_benchmark_scores_a_known_schedule_at_its_analytic_objective():
    # benchmarks/liquidation.py's scoring, on a policy whose answer is known: the closed form and TWAP
    import runpy
    from pathlib import Path

    bench = runpy.run_path(str(Path(__file__).parents[2] / "benchmarks" / "liquidation.py"))
    lam = 3e-7
    s = almgren_chriss(**MARKET, lam=lam)
    scored = bench["score"](schedule_policy(s.holdings), lam, 300, 0)
    assert scored["control"][0] == pytest.approx(s.objective(lam), rel=1e-9)
    np.testing.assert_allclose(scored["mean_holdings"], s.holdings / P.X, atol=1e-6)
    e, v = schedule_cost(twap(P.X, P.N), **COST)
    assert bench["score"](schedule_policy(twap(P.X, P.N)), lam, 300, 0)["control"][0] == pytest.approx(e + lam * v)
