"""Gridworlds: the notes' coordinates and noise model, exits, walls, ASCII maps, the layout for plotting."""

from __future__ import annotations

import pytest
import torch

from thorndike.envs import gridworld
from thorndike.envs.gridworld import Grid


def transition(mdp, cell: tuple[int, int], action: str) -> dict[tuple[int, int] | None, float]:
    """P(. | cell, action) as {next cell (None = terminal): probability}."""
    grid: Grid = mdp.grid
    row = mdp.P[grid.state(*cell), mdp.action_names.index(action)]
    return {grid.position(int(s)): round(float(row[s]), 12) for s in torch.nonzero(row).squeeze(1)}


def test_classic_layout_uses_the_notes_coordinates() -> None:
    mdp = gridworld.classic()
    grid = mdp.grid
    assert (grid.width, grid.height) == (4, 3)
    assert mdp.n_states == 12 and mdp.n_actions == 4  # 11 open cells + the absorbing terminal
    assert mdp.action_names == ["N", "E", "S", "W"]
    assert grid.walls == ((2, 2),) and grid.exits == {(4, 3): 1.0, (4, 2): -1.0} and grid.start == ((1, 1),)
    with pytest.raises(KeyError, match=r"no state at cell \(2, 2\)"):
        grid.state(2, 2)
    # states in reading order: (1, 3) is the top-left cell, the terminal comes last and has no cell
    assert grid.position(0) == (1, 3) and grid.position(11) is None
    assert mdp.terminal.tolist() == [False] * 11 + [True]
    assert mdp.start[grid.state(1, 1)] == 1.0


def test_noise_slips_perpendicular_and_walls_block() -> None:
    mdp = gridworld.classic(noise=0.2)
    # F0 L35: East from (3, 3) reaches (4, 3) w.p. 0.8; slipping North bumps the top border and stays (0.1);
    # slipping South reaches (3, 2) (0.1).
    assert transition(mdp, (3, 3), "E") == {(4, 3): 0.8, (3, 3): 0.1, (3, 2): 0.1}
    # East from (1, 2) runs into the wall at (2, 2) and stays
    assert transition(mdp, (1, 2), "E") == {(1, 2): 0.8, (1, 3): 0.1, (1, 1): 0.1}
    # from the bottom-left corner, West and South both stay put: the two stays add up
    assert transition(mdp, (1, 1), "W") == {(1, 1): 0.9, (1, 2): 0.1}
    assert transition(gridworld.classic(noise=0.0), (1, 1), "N") == {(1, 2): 1.0}


def test_exit_cells_pay_on_the_exit_action_into_the_terminal() -> None:
    mdp = gridworld.classic(noise=0.2, living_reward=-0.04)
    grid = mdp.grid
    for action in mdp.action_names:
        assert transition(mdp, (4, 3), action) == {None: 1.0}
        assert transition(mdp, (4, 2), action) == {None: 1.0}
    r = mdp.expected_reward()
    assert r[grid.state(4, 3)].tolist() == [1.0] * 4
    assert r[grid.state(4, 2)].tolist() == [-1.0] * 4
    assert r[grid.state(1, 1)].tolist() == pytest.approx([-0.04] * 4)  # the living reward on every move
    assert r[11].tolist() == [0.0] * 4  # the terminal pays nothing


def test_env_view_walks_the_grid() -> None:
    env = gridworld.classic(noise=0.0).copy()
    grid = env.grid
    s, _ = env.reset(seed=0)
    assert grid.position(s) == (1, 1)
    for action, cell in (("N", (1, 2)), ("N", (1, 3)), ("E", (2, 3)), ("E", (3, 3)), ("E", (4, 3))):
        s, reward, terminated, _, _ = env.step(env.action_names.index(action))
        assert grid.position(s) == cell and reward == 0.0 and not terminated
    s, reward, terminated, _, _ = env.step(0)
    assert grid.position(s) is None and reward == 1.0 and terminated


def test_discount_grid_layout() -> None:
    mdp = gridworld.discount_grid()
    grid = mdp.grid
    assert (grid.width, grid.height, grid.start) == (5, 5, ((1, 2),))
    assert grid.walls == ((2, 4), (2, 3), (4, 3))
    assert grid.exits == {(3, 3): 1.0, (5, 3): 10.0, **{(x, 1): -10.0 for x in range(1, 6)}}
    assert mdp.n_states == 5 * 5 - 3 + 1


def test_from_ascii_errors_name_the_cell() -> None:
    with pytest.raises(ValueError, match=r"unknown cell 'x' at \(x=2, y=1\)"):
        gridworld.from_ascii(". . .\n. x .")
    with pytest.raises(ValueError, match="same number of cells in every row"):
        gridworld.from_ascii(". .\n. . .")
    with pytest.raises(ValueError, match="noise must be in"):
        gridworld.classic(noise=1.5)


def test_without_a_start_cell_start_is_uniform_over_non_exit_cells() -> None:
    mdp = gridworld.from_ascii(". . 1\n. # -1")
    # states in reading order: (1, 2), (2, 2), exit (3, 2), (1, 1), exit (3, 1), terminal
    third = 1 / 3
    torch.testing.assert_close(mdp.start, torch.tensor([third, third, 0, third, 0, 0], dtype=torch.float64))


def test_open_grid_is_sparse_when_large_and_equals_dense() -> None:
    big = gridworld.open_grid(40)  # 1601 states: dense would be 1601 * 4 * 1601 doubles
    assert big.sparse and big.n_states == 1601 and big.grid.exits == {(40, 40): 1.0}
    small_sparse, small_dense = gridworld.open_grid(4, sparse=True), gridworld.open_grid(4, sparse=False)
    torch.testing.assert_close(small_sparse.to_dense().P, small_dense.P)
    torch.testing.assert_close(small_sparse.expected_reward(), small_dense.expected_reward())


def test_intended_path_follows_a_policy_without_slips() -> None:
    mdp = gridworld.classic()
    grid = mdp.grid
    east = torch.full((mdp.n_states,), mdp.action_names.index("E"))
    # East from (1, 1) along the bottom row, then stuck against the border at (4, 1)
    assert gridworld.intended_path(mdp, east) == [(1, 1), (2, 1), (3, 1), (4, 1)]
    policy = east.clone()
    policy[grid.state(4, 1)] = mdp.action_names.index("N")
    assert gridworld.intended_path(mdp, policy) == [(1, 1), (2, 1), (3, 1), (4, 1), (4, 2)]
