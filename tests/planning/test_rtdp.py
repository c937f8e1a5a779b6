"""RTDP: reaches V* on the states an optimal policy visits; the corrected backup (inventory E10); the notes'
defaults (C11)."""

from __future__ import annotations

import inspect

import pytest
import torch

from thorndike.core.schedules import Exponential
from thorndike.envs import gridworld
from thorndike.envs.tabular import TabularMDP
from thorndike.planning import rtdp, value_iteration


def optimal_path_states(mdp: TabularMDP, gamma: float) -> tuple[list[int], torch.Tensor]:
    """The states along the optimal policy's intended path from the start, and V*."""
    sol = value_iteration(mdp, gamma=gamma)
    return [mdp.grid.state(*cell) for cell in gridworld.intended_path(mdp, sol.policy)], sol.V


@pytest.mark.parametrize("variant", ["greedy", "notes"])
def test_rtdp_reaches_the_optimal_value_on_the_optimal_path(variant: str) -> None:
    mdp = gridworld.classic(noise=0.2)
    path, V_star = optimal_path_states(mdp, 0.9)
    sol = rtdp(mdp, gamma=0.9, episodes=1000, variant=variant, seed=0)
    assert len(path) == 6  # (1,1) (1,2) (1,3) (2,3) (3,3) (4,3)
    assert (sol.V[path] - V_star[path]).abs().max() < 1e-3
    assert torch.equal(sol.policy[path], value_iteration(mdp, gamma=0.9).policy[path])
    assert sol.sweeps == 1000 and len(sol.residuals) == 1000
    assert (sol.visits[path[:-1]] > 0).all() and sol.visits[11] == 0  # the terminal is never backed up


def test_greedy_rtdp_values_stay_optimistic() -> None:
    # From an upper bound on V*, Bellman backups keep V >= V* everywhere (the backup is monotone and V* its fixed
    # point), so states RTDP rarely visits are over-estimated, never under-estimated.
    mdp = gridworld.discount_grid(noise=0.2)
    _, V_star = optimal_path_states(mdp, 0.9)
    for episodes in (1, 10, 100):
        sol = rtdp(mdp, gamma=0.9, episodes=episodes, variant="greedy", seed=1)
        assert (sol.V >= V_star - 1e-12).all()
    first = rtdp(mdp, gamma=0.9, episodes=1, variant="greedy", seed=1)
    untouched = (first.visits == 0) & ~mdp.terminal
    assert untouched.any()
    assert first.V[untouched].tolist() == pytest.approx([10 / (1 - 0.9)] * int(untouched.sum()))  # V0 = max r / (1-g)


def test_backup_uses_the_best_action_with_its_own_reward() -> None:
    # E10: from state 0, action 0 exits paying 10 and action 1 moves to state 1 paying 0; state 1 exits paying 0.
    # The notes' update V[s] = reward(s, executed action) + gamma * max_a V[next(s, a)] gives V(0) = 0 after an
    # exploratory action 1; the Bellman backup max_a [r(s, a) + gamma V(next)] gives 10 on the first visit.
    P = torch.zeros(3, 2, 3, dtype=torch.float64)
    P[0, 0, 2] = P[0, 1, 1] = P[1, :, 2] = P[2, :, 2] = 1.0
    R = torch.zeros(3, 2, 3, dtype=torch.float64)
    R[0, 0, 2] = 10.0
    mdp = TabularMDP(P, R, terminal=[2], start=[1.0, 0.0, 0.0])
    for seed in range(5):
        sol = rtdp(mdp, episodes=1, epsilon=1.0, seed=seed)  # epsilon 1: the executed action is random
        assert sol.V[0] == 10.0


def test_defaults_are_the_notes() -> None:
    # C11, F0 L366-L369: gamma=0.99, epsilon=0.9, max_episodes=1000, epsilon_decay=0.995
    defaults = {name: p.default for name, p in inspect.signature(rtdp).parameters.items()}
    assert (defaults["gamma"], defaults["epsilon"], defaults["episodes"], defaults["epsilon_decay"]) == (
        0.99, 0.9, 1000, 0.995)
    # epsilon after the 1000 episodes: 0.9 * 0.995^1000 = 0.0059886
    assert Exponential(0.9, 0.995)(1000) == pytest.approx(0.0059886, rel=1e-4)


def test_seeded_runs_repeat_and_sparse_equals_dense() -> None:
    mdp = gridworld.discount_grid(noise=0.2)
    a = rtdp(mdp, gamma=0.9, episodes=200, seed=3)
    b = rtdp(mdp.to_sparse(), gamma=0.9, episodes=200, seed=3)
    torch.testing.assert_close(a.V, b.V)
    assert torch.equal(a.visits, b.visits)


def test_errors() -> None:
    mdp = gridworld.classic()
    with pytest.raises(ValueError, match="variant must be one of"):
        rtdp(mdp, variant="eps")
    with pytest.raises(ValueError, match="needs an optimistic V0"):
        rtdp(mdp, gamma=1.0, variant="greedy")
