"""Exact dynamic programming against the notes' numbers and independent solutions.

Oracles: the notes' gridworld table (F0 L31-L35, inventory C1-C4), the discount/noise exercise (F0 L62), a
linear-programming solve (scipy) agreeing with VI, PI and MPI on random MDPs, the contraction and tail bounds (C5),
policy iteration's monotone improvement (C7, C9), MPI(k=1) = VI (C8), the soft Bellman equation and the one-step
max-ent solution (C10), and Monte-Carlo rollouts of the DP policy in Gymnasium's own FrozenLake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import thorndike as th
from thorndike.envs import gridworld, toy_text
from thorndike.envs.tabular import TabularMDP, random_mdp
from thorndike.planning import (
    PlanningResult,
    modified_policy_iteration,
    one_step_max_entropy,
    policy_evaluation,
    policy_iteration,
    q_value_iteration,
    soft_value_iteration,
    tail_bound,
    value_iteration,
)


def values_at(result: PlanningResult, mdp: TabularMDP, cells: list[tuple[int, int]]) -> list[float]:
    return [float(result.V[mdp.grid.state(*cell)]) for cell in cells]


def lp_values(mdp: TabularMDP, gamma: float) -> torch.Tensor:
    """V* by linear programming: minimise sum_s V(s) s.t. V(s) >= r(s, a) + gamma sum_s' P(s'|s, a) V(s') for every
    non-terminal s and every a, V(terminal) = 0. Independent of every iterative method under test."""
    S = mdp.n_states
    P = mdp.to_dense().P.numpy()
    r = mdp.expected_reward().numpy()
    live = np.flatnonzero(~mdp.terminal.numpy())
    A_ub = (gamma * P[live] - np.eye(S)[live][:, None, :]).reshape(-1, S)
    b_ub = -r[live].reshape(-1)
    bounds = [(0.0, 0.0) if mdp.terminal[s] else (None, None) for s in range(S)]
    res = linprog(np.ones(S), A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs-ds")
    assert res.status == 0, res.message
    return torch.from_numpy(res.x)


def hand_mdp() -> TabularMDP:
    """The 2-state MDP of tests/envs/test_tabular.py: r = [[1.5, 5], [0, 2.2]], state 2 terminal.

    (0, a0): 1/2 -> 0, 1/2 -> 1;  (0, a1): -> terminal;  (1, a0): -> 0;  (1, a1): 0.2 -> 1, 0.8 -> terminal.
    """
    P = torch.zeros(3, 2, 3, dtype=torch.float64)
    R = torch.zeros(3, 2, 3, dtype=torch.float64)
    P[0, 0, 0], P[0, 0, 1], R[0, 0, 0], R[0, 0, 1] = 0.5, 0.5, 1.0, 2.0
    P[0, 1, 2], R[0, 1, 2] = 1.0, 5.0
    P[1, 0, 0] = 1.0
    P[1, 1, 1], P[1, 1, 2], R[1, 1, 1], R[1, 1, 2] = 0.2, 0.8, -1.0, 3.0
    P[2, :, 2] = 1.0
    return TabularMDP(P, R, terminal=[2], start=[1.0, 0.0, 0.0])


# ---------------------------------------------------------------- the notes' gridworld table


CELLS = [(4, 3), (3, 3), (2, 3), (1, 1), (4, 2)]  # the table's columns


def test_gamma_1_horizon_100_deterministic_is_all_ones() -> None:
    # C1, F0 L33: | gamma = 1, H = 100 | 1 | 1 | 1 | 1 | -1 |
    mdp = gridworld.classic(noise=0.0)
    sol = value_iteration(mdp, gamma=1.0, horizon=100)
    assert values_at(sol, mdp, CELLS) == [1.0, 1.0, 1.0, 1.0, -1.0]
    others = [s for s in range(11) if mdp.grid.position(s) != (4, 2)]
    assert sol.V[others].tolist() == [1.0] * 10


def test_gamma_0_9_horizon_100_deterministic_discounts_by_distance() -> None:
    # C2, F0 L34: | gamma = 0.9, H = 100 | 1 | 0.9 | 0.9^2 | 0.9^5 | -1 |
    mdp = gridworld.classic(noise=0.0)
    sol = value_iteration(mdp, gamma=0.9, horizon=100)
    assert values_at(sol, mdp, CELLS) == pytest.approx([1.0, 0.9, 0.81, 0.9**5, -1.0], abs=1e-12)
    # the whole table: every cell is 0.9^(moves to the +1 exit), the -1 exit is -1
    table = {(1, 3): 0.729, (2, 3): 0.81, (3, 3): 0.9, (4, 3): 1.0, (1, 2): 0.6561, (3, 2): 0.81, (4, 2): -1.0,
             (1, 1): 0.59049, (2, 1): 0.6561, (3, 1): 0.729, (4, 1): 0.6561}
    assert values_at(sol, mdp, list(table)) == pytest.approx(list(table.values()), abs=1e-12)


@pytest.mark.parametrize("horizon", [100, None])
def test_gamma_0_9_noise_0_2_satisfies_the_notes_identity(horizon: int | None) -> None:
    # C3, F0 L35: V*(3,3) = 0.9 * 0.8 * 1 + 0.9 * 0.1 * V*(3,3) + 0.9 * 0.1 * V*(3,2)
    mdp = gridworld.classic(noise=0.2)
    sol = value_iteration(mdp, gamma=0.9, horizon=horizon)
    v33, v32 = values_at(sol, mdp, [(3, 3), (3, 2)])
    assert abs(v33 - (0.9 * 0.8 * 1 + 0.9 * 0.1 * v33 + 0.9 * 0.1 * v32)) < 1e-9
    assert values_at(sol, mdp, [(4, 3), (4, 2)]) == [1.0, -1.0]


def test_noisy_gridworld_vi_pi_mpi_lp_agree() -> None:
    mdp = gridworld.classic(noise=0.2)
    V_star = lp_values(mdp, 0.9)
    for sol in (value_iteration(mdp, gamma=0.9), policy_iteration(mdp, gamma=0.9),
                modified_policy_iteration(mdp, gamma=0.9, k=5), q_value_iteration(mdp, gamma=0.9)):
        torch.testing.assert_close(sol.V, V_star, atol=1e-8, rtol=0)
    # the classic optimal policy: up the left side and along the top, away from the -1 exit
    assert gridworld.intended_path(mdp, value_iteration(mdp, gamma=0.9).policy) == [
        (1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (4, 3)]


def test_horizon_0_is_all_zeros() -> None:
    # C4, F0 L38: "when H=0, there is no time left to move, so reward V* is 0"
    sol = value_iteration(gridworld.classic(), horizon=0)
    assert sol.V.tolist() == [0.0] * 12 and sol.V_history.shape == (1, 12) and sol.sweeps == 0


def test_finite_horizon_keeps_every_step_and_time_indexed_policy() -> None:
    # C6 by hand, gamma = .9. V_1 = max(r) = [5, 2.2]. V_2(0) = max(1.5 + .9 (.5*5 + .5*2.2), 5) = max(4.74, 5);
    # V_2(1) = max(.9 * 5, 2.2 + .9 * .2 * 2.2) = max(4.5, 2.596).
    sol = value_iteration(hand_mdp(), gamma=0.9, horizon=2)
    torch.testing.assert_close(sol.V_history, torch.tensor([[0, 0, 0], [5, 2.2, 0], [5, 4.5, 0]], dtype=torch.float64))
    # with 1 step to go state 1 cashes in 2.2; with 2 steps to go it walks to state 0 first
    assert sol.policy_history.tolist() == [[1, 1, 0], [1, 0, 0]]
    assert sol.policy.tolist() == [1, 0, 0]
    q = q_value_iteration(hand_mdp(), gamma=0.9, horizon=2)
    torch.testing.assert_close(q.Q, torch.tensor([[4.74, 5], [4.5, 2.596], [0, 0]], dtype=torch.float64))


# ---------------------------------------------------------------- the discount / noise exercise


CLIFF_ROW = [(1, 2), (2, 2), (3, 2)]


@pytest.mark.parametrize(
    ("gamma", "noise", "living_reward", "path"),
    [
        # close exit (+1), risking the cliff: short-sighted and no slips, so the short way beside the cliff
        (0.3, 0.0, 0.0, [*CLIFF_ROW, (3, 3)]),
        # close exit, avoiding the cliff: short-sighted but slippery, so around through the top
        (0.3, 0.2, 0.0, [(1, 2), (1, 3), (1, 4), (1, 5), (2, 5), (3, 5), (3, 4), (3, 3)]),
        # distant exit (+10), risking the cliff: far-sighted and no slips
        (0.9, 0.0, 0.0, [*CLIFF_ROW, (4, 2), (5, 2), (5, 3)]),
        # distant exit, avoiding the cliff: far-sighted and slippery
        (0.9, 0.2, 0.0, [(1, 2), (1, 3), (1, 4), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5), (5, 4), (5, 3)]),
    ],
)
def test_discount_grid_settings_give_the_intended_paths(gamma, noise, living_reward, path) -> None:
    mdp = gridworld.discount_grid(noise=noise, living_reward=living_reward, gamma=gamma)
    assert gridworld.intended_path(mdp, value_iteration(mdp).policy) == path
    assert gridworld.intended_path(mdp, policy_iteration(mdp).policy) == path


# ---------------------------------------------------------------- random MDPs


@st.composite
def mdps(draw) -> tuple[TabularMDP, float]:
    S = draw(st.integers(1, 7))
    A = draw(st.integers(1, 4))
    mdp = random_mdp(S, A, n_terminal=draw(st.integers(0, S - 1)), branching=draw(st.sampled_from([None, 1, 2])),
                     reward_scale=draw(st.sampled_from([1.0, 10.0])), sparse=draw(st.booleans()),
                     seed=draw(st.integers(0, 2**31 - 1)))
    return mdp, draw(st.floats(0.3, 0.95))


@settings(max_examples=250, deadline=None)
@given(mdps())
def test_vi_pi_mpi_and_linear_programming_agree(problem) -> None:
    mdp, gamma = problem
    V_star = lp_values(mdp, gamma)
    vi = value_iteration(mdp, gamma=gamma, tol=1e-12)
    pi = policy_iteration(mdp, gamma=gamma)
    mpi = modified_policy_iteration(mdp, gamma=gamma, k=3, tol=1e-12)
    for sol in (vi, pi, mpi):
        assert sol.converged
        torch.testing.assert_close(sol.V, V_star, atol=1e-8, rtol=0)
    # the greedy policies are optimal: their exact values are V* too
    for sol in (vi, mpi):
        torch.testing.assert_close(policy_evaluation(mdp, sol.policy, gamma), V_star, atol=1e-8, rtol=0)
    assert vi.error_bound == pytest.approx(gamma * vi.residuals[-1] / (1 - gamma))


@settings(max_examples=100, deadline=None)
@given(mdps())
def test_policy_iteration_improves_monotonically_and_stops(problem) -> None:
    # C7 / C9: V^{pi_{k+1}} >= V^{pi_k} pointwise; finitely many improvements (at most a handful here)
    mdp, gamma = problem
    pi = policy_iteration(mdp, gamma=gamma)
    assert pi.converged and pi.improvements == pi.policy_values.shape[0] - 1 <= 10
    assert (pi.policy_values[1:] >= pi.policy_values[:-1] - 1e-10).all()
    torch.testing.assert_close(pi.policy_values[-1], pi.V)
    assert torch.equal(pi.policy_history[-1], pi.policy)


@settings(max_examples=100, deadline=None)
@given(mdps())
def test_each_sweep_contracts_the_error_by_gamma_and_the_tail_bound_holds(problem) -> None:
    mdp, gamma = problem
    V_star = policy_iteration(mdp, gamma=gamma).V
    history = value_iteration(mdp, gamma=gamma, tol=1e-12, keep_history=True).V_history
    errors = (history - V_star).abs().amax(1)
    assert (errors[1:] <= gamma * errors[:-1] + 1e-10).all()
    # C5: the notes' tail bound gamma^(H+1) R_max / (1 - gamma) bounds V after H + 1 backups
    R_max = float(mdp.to_dense().R.abs().max())
    finite = value_iteration(mdp, gamma=gamma, horizon=12).V_history
    for H in (0, 1, 5, 11):
        assert float((finite[H + 1] - V_star).abs().max()) <= tail_bound(gamma, H, R_max) + 1e-12


def test_tail_bound_counts_H_plus_one_rewards() -> None:
    # One state paying 1 forever, gamma = 1/2: V* = 2, V_k = 2 - 2^(1-k), so |V_k - V*| = gamma^k / (1 - gamma).
    mdp = TabularMDP(torch.ones(1, 1, 1), torch.ones(1))
    V = value_iteration(mdp, gamma=0.5, horizon=3).V_history[:, 0]
    assert V.tolist() == [0.0, 1.0, 1.5, 1.75]
    assert tail_bound(0.5, 0, 1.0) == 1.0 == 2 - V[1]  # H = 0: one reward collected, the bound is tight
    assert 2 - V[1] > tail_bound(0.5, 1, 1.0)  # the bound with H = 1 does not hold for V_1 (only H rewards)
    assert tail_bound(0.9, 10, 2.0) == pytest.approx(0.9**11 * 2 / 0.1)


def test_mpi_with_one_evaluation_sweep_is_value_iteration() -> None:
    # C8: m = 1 -> VI (iterate for iterate), m -> infinity -> PI
    for mdp in (gridworld.classic(noise=0.2), random_mdp(9, 3, n_terminal=2, seed=5)):
        vi = value_iteration(mdp, tol=1e-10, keep_history=True)
        mpi = modified_policy_iteration(mdp, k=1, tol=1e-10, keep_history=True)
        assert torch.equal(mpi.V_history, vi.V_history) and mpi.sweeps == vi.sweeps
        pi = policy_iteration(mdp)
        many = modified_policy_iteration(mdp, k=2000)
        torch.testing.assert_close(many.V, pi.V, atol=1e-9, rtol=0)
        assert torch.equal(many.policy, pi.policy) and many.sweeps <= pi.sweeps + 1


def test_q_value_iteration_matches_value_iteration() -> None:
    mdp = random_mdp(6, 3, n_terminal=1, seed=2)
    for H in range(5):
        q = q_value_iteration(mdp, gamma=0.8, horizon=H)
        torch.testing.assert_close(q.V, value_iteration(mdp, gamma=0.8, horizon=H).V)
    q = q_value_iteration(mdp, gamma=0.8)
    torch.testing.assert_close(q.Q, mdp.backup(q.V, 0.8), atol=1e-9, rtol=0)  # Q* = r + gamma P max_a Q*


# ---------------------------------------------------------------- policy evaluation


def test_policy_evaluation_exact_and_iterative_agree_with_a_hand_value() -> None:
    mdp = hand_mdp()
    # pi = (a0, a1): V(1) = 2.2 + .9 * .2 V(1) -> V(1) = 2.2 / .82; V(0) = 1.5 + .9 (.5 V(0) + .5 V(1))
    V1 = 2.2 / 0.82
    V0 = (1.5 + 0.45 * V1) / 0.55
    policy = torch.tensor([0, 1, 0])
    for method in ("exact", "iterative"):
        V = policy_evaluation(mdp, policy, gamma=0.9, method=method, tol=1e-13)
        torch.testing.assert_close(V, torch.tensor([V0, V1, 0.0], dtype=torch.float64), atol=1e-10, rtol=0)
    uniform = torch.full((3, 2), 0.5, dtype=torch.float64)
    torch.testing.assert_close(policy_evaluation(mdp.to_sparse(), uniform, 0.9),
                               policy_evaluation(mdp, uniform, 0.9, method="iterative", tol=1e-13), atol=1e-10, rtol=0)


def test_large_sparse_exact_evaluation() -> None:
    mdp = gridworld.open_grid(70, gamma=0.9)  # 4901 states: solved by scipy's sparse LU
    policy = value_iteration(mdp, tol=1e-8).policy
    exact = policy_evaluation(mdp, policy)
    torch.testing.assert_close(exact, policy_evaluation(mdp, policy, method="iterative", tol=1e-11), atol=1e-9,
                               rtol=0)
    assert float(exact[mdp.grid.state(70, 70)]) == 1.0


def test_planners_on_a_large_sparse_model_match_the_closed_form() -> None:
    # Without noise, V*(x, y) on the open 33 x 33 grid is gamma^(steps to the exit at (33, 33)) = 0.9^(66 - x - y).
    # 1090 states is large enough that the sparse MDP sweeps with a CSR mat-vec (S*A*S > 2^22).
    mdp = gridworld.open_grid(33, noise=0.0, gamma=0.9, sparse=True)
    assert mdp._P_dp.layout == torch.sparse_csr
    xy = mdp.grid.xy[:-1].double()
    V_star = torch.cat([0.9 ** (66 - xy[:, 0] - xy[:, 1]), torch.zeros(1, dtype=torch.float64)])
    for planner in (value_iteration, q_value_iteration, lambda mdp: modified_policy_iteration(mdp, k=4)):
        torch.testing.assert_close(planner(mdp).V, V_star, atol=1e-9, rtol=0)
    soft = soft_value_iteration(mdp, temperature=0.1)
    Q = mdp.backup(soft.V)
    torch.testing.assert_close(soft.V[:-1], 0.1 * torch.logsumexp(Q[:-1] / 0.1, 1), atol=1e-9, rtol=0)


def test_policy_evaluation_errors() -> None:
    mdp = gridworld.classic(noise=0.0)
    stay = torch.full((12,), mdp.action_names.index("S"))  # walks into the bottom border forever from (1, 1)
    with pytest.raises(ValueError, match="never reaches a terminal state"):
        policy_evaluation(mdp, stay, gamma=1.0)
    with pytest.raises(ValueError, match="method must be 'exact' or 'iterative'"):
        policy_evaluation(mdp, stay, method="linear")
    with pytest.raises(ValueError, match="gamma must be in"):
        value_iteration(mdp, gamma=-0.1)
    with pytest.warns(UserWarning, match="value_iteration stopped after 3 sweeps"):
        assert not value_iteration(mdp, max_sweeps=3).converged


# ---------------------------------------------------------------- soft value iteration and max-ent


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soft_value_iteration_solves_the_soft_bellman_equation(seed: int) -> None:
    mdp = random_mdp(8, 3, n_terminal=1, seed=seed)
    gamma, temperature = 0.9, 0.5
    sol = soft_value_iteration(mdp, gamma=gamma, temperature=temperature)
    Q = mdp.backup(sol.V, gamma)
    soft_V = temperature * torch.logsumexp(Q / temperature, 1)
    torch.testing.assert_close(sol.V[:7], soft_V[:7], atol=1e-9, rtol=0)
    assert sol.V[7] == 0.0  # terminal
    # pi(a|s) = exp((Q - V) / temperature) at the non-terminal states
    torch.testing.assert_close(sol.policy_probs[:7], torch.exp((sol.Q - sol.V[:, None]) / temperature)[:7])


def test_soft_value_iteration_approaches_value_iteration() -> None:
    mdp = random_mdp(8, 3, n_terminal=1, seed=3)
    gamma = 0.9
    V_star = value_iteration(mdp, gamma=gamma).V
    for temperature in (1.0, 0.1, 0.01):
        V = soft_value_iteration(mdp, gamma=gamma, temperature=temperature).V
        # entropy lies in [0, log A] per step, so 0 <= V_soft - V* <= temperature log A / (1 - gamma)
        gap = V - V_star
        assert (gap >= -1e-9).all() and (gap <= temperature * math.log(3) / (1 - gamma) + 1e-9).all()
    tiny = soft_value_iteration(mdp, gamma=gamma, temperature=1e-12)  # no overflow: log-sum-exp subtracts the max
    torch.testing.assert_close(tiny.V, V_star, atol=1e-9, rtol=0)
    assert torch.equal(tiny.policy, value_iteration(mdp, gamma=gamma).policy)


def test_one_step_max_entropy_oracle() -> None:
    # C10, F0 L102-L106: r = [1, 0], beta = 1 -> pi = [e / (e + 1), 1 / (e + 1)], optimum beta log Z = log(e + 1)
    pi, optimum = one_step_max_entropy(torch.tensor([1.0, 0.0]), beta=1.0)
    torch.testing.assert_close(pi, torch.tensor([0.731059, 0.268941], dtype=torch.float64), atol=1e-6, rtol=0)
    assert float(optimum) == pytest.approx(1.313262, abs=1e-6)
    # the optimum is E_pi[r] + beta H(pi), the objective it maximises
    assert float(optimum) == pytest.approx(float((pi * torch.tensor([1.0, 0.0])).sum() - (pi * pi.log()).sum()))
    assert one_step_max_entropy(torch.tensor([1.0, 0.0, 0.5]), beta=1e-3)[0].tolist() == pytest.approx([1, 0, 0])
    assert one_step_max_entropy(torch.tensor([1.0, 0.0, 0.5]), beta=1e4)[0].tolist() == pytest.approx([1 / 3] * 3,
                                                                                                      abs=1e-4)
    # E1: a bigger beta gives a *higher*-entropy policy (the notes' L96 says the opposite)
    entropies = [float(-(p * p.log()).sum()) for p in (one_step_max_entropy(torch.tensor([1.0, 0.0]), b)[0]
                                                      for b in (0.5, 1.0, 2.0))]
    assert entropies[0] < entropies[1] < entropies[2]


# ---------------------------------------------------------------- FrozenLake: DP value vs Gymnasium rollouts


def test_frozen_lake_8x8_dp_value_matches_rollouts_in_gymnasium() -> None:
    """With reward 1 only on reaching the goal, V(start) = E[gamma^(T-1) 1{goal reached at step T}]: the discounted
    success probability, not the success rate. So the rollouts are scored the same way: each episode's return is
    gamma^(length - 1) on success and 0 otherwise, and their mean must match V(start) within sampling error.

    Episodes run in Gymnasium's FrozenLake8x8-v1 (through thorndike's vector env, 100 copies) with a 1000-step
    limit instead of 200, so that truncation changes the expectation by at most gamma^1000 < 5e-5. To average whole
    episodes without favouring short ones, every episode that starts before step 2000 is played to its end and
    counted (about 2500 episodes).
    """
    gamma = 0.99
    mdp = toy_text.frozen_lake("8x8", is_slippery=True, gamma=gamma)
    sol = value_iteration(mdp)
    n_envs, horizon = 100, 2000
    venv = th.envs.make("FrozenLake8x8-v1", n_envs=n_envs, seed=0, backend="gymnasium", max_episode_steps=1000)
    obs = venv.reset(seed=0)
    started = torch.zeros(n_envs, dtype=torch.long)
    returns: list[torch.Tensor] = []
    t = 0
    while (started < horizon).any():
        obs, _, terminated, truncated, info = venv.step(sol.policy[obs])
        t += 1
        ended = torch.nonzero(terminated | truncated).squeeze(1)
        counted = started[ended] < horizon
        discounted = info["episode_return"] * gamma ** (info["episode_length"] - 1).double()
        returns.append(discounted[ended][counted])
        started[ended] = t
    G = torch.cat(returns)
    assert len(G) > 2000
    standard_error = float(G.std() / math.sqrt(len(G)))
    assert abs(float(G.mean()) - float(sol.V[0])) < 4 * standard_error
    assert float(sol.V[0]) == pytest.approx(0.4146, abs=1e-4)
