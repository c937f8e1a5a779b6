"""MCTS: the UCB score (C12), the four stages on hand-computed trees, play strength on tic-tac-toe and Connect Four,
and planning in single-agent problems."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from thorndike.envs.games import (
    ConnectFour,
    GymnasiumSimulator,
    MinimaxPlayer,
    RandomPlayer,
    TicTacToe,
    play,
)
from thorndike.planning.mcts import MCTSPlayer, mcts, ucb


def after(game, moves):
    for move in moves:
        game.step(move)
    return game


class CashOrAdvance:
    """Single-agent chain: at position p < length, 'cash' (action 0) pays 0.5 and ends the episode; 'advance'
    (action 1) costs 0.1 and reaching position ``length`` pays 1 and ends it. Optimal from p: advance while
    1 - 0.1 * (length - p) > 0.5."""

    current_player = 0

    def __init__(self, length: int) -> None:
        self.length, self.position, self.total, self.done = length, 0, 0.0, False

    def clone(self) -> CashOrAdvance:
        new = CashOrAdvance(self.length)
        new.position, new.total, new.done = self.position, self.total, self.done
        return new

    def legal_actions(self) -> list[int]:
        return [] if self.done else [0, 1]

    def step(self, action: int) -> None:
        if action == 0:
            self.total += 0.5
            self.done = True
        else:
            self.position += 1
            self.total -= 0.1
            if self.position == self.length:
                self.total += 1.0
                self.done = True

    def is_terminal(self) -> bool:
        return self.done

    def returns(self) -> tuple[float]:
        return (self.total,)


def optimal_chain_value(state: CashOrAdvance) -> float:
    return max(0.5, 1.0 - 0.1 * (state.length - state.position))


# ---------------------------------------------------------------- UCB (C12)


def test_ucb_matches_the_notes_example() -> None:
    # 0.5 + sqrt(2) * sqrt(ln(10) / 2) = 0.5 + 1.414214 * 1.072983 = 2.017427
    assert ucb(0.5, math.sqrt(2), 10, 2) == pytest.approx(2.017427, abs=1e-6)
    assert ucb(0.5, math.sqrt(2), 10, 0) == math.inf
    assert ucb(0.3, 2.0, 1, 1) == 0.3  # ln(1) = 0: the first revisit of a parent gives no bonus


def test_ucb_bonus_shrinks_as_the_child_is_visited_more() -> None:
    scores = [ucb(0.5, math.sqrt(2), 100, n) for n in range(1, 50)]
    assert all(a > b for a, b in zip(scores, scores[1:]))
    # the bonus falls as 1/sqrt(n): four times the visits, half the bonus
    assert ucb(0.0, 1.0, 100, 4) == pytest.approx(ucb(0.0, 1.0, 100, 1) / 2)


# ---------------------------------------------------------------- the four stages


def test_every_action_is_tried_once_before_any_is_tried_twice() -> None:
    np.testing.assert_array_equal(mcts(TicTacToe(), 9, rng=0).visits, [1] * 9)
    np.testing.assert_array_equal(mcts(ConnectFour(), 7, rng=0).visits, [1] * 7)
    assert sorted(mcts(ConnectFour(), 8, rng=0).visits) == [1] * 6 + [2]


def test_backpropagation_scores_each_node_for_the_player_who_moved_into_it() -> None:
    calls = []

    def value_fn(state) -> float:
        calls.append(state.current_player)
        return 0.5  # for the player to move

    result = mcts(TicTacToe(), 10, value_fn=value_fn, rng=0)
    # Simulations 1-9 each add a root child, O to move worth 0.5 to O, so -0.5 to X who moved into it.
    # Simulation 10 revisits one child and adds a grandchild, X to move: +0.5 to X, -0.5 to O who moved into it.
    assert calls == [1] * 9 + [0]
    assert sorted(result.visits) == [1] * 8 + [2]
    assert sorted(result.q_values) == [-0.5] * 8 + [0.0]  # (-0.5 + 0.5) / 2 for the revisited child
    revisited = max(result.root.children, key=lambda child: child.visits)
    (grandchild,) = revisited.children
    assert grandchild.player == 1 and grandchild.q == -0.5
    assert result.root.visits == 10 and result.root.q == pytest.approx((9 * -0.5 + 0.5) / 10)
    assert result.action == revisited.action  # the most visited


@pytest.mark.parametrize("n_simulations", [1, 10, 100, 400])
def test_one_node_is_added_per_simulation(n_simulations) -> None:
    result = mcts(ConnectFour(), n_simulations, rng=1)  # no game ends within the tree this shallow
    assert result.tree_size == n_simulations + 1 == result.root.size()
    assert result.root.visits == n_simulations == result.visits.sum()
    np.testing.assert_allclose(result.policy, result.visits / n_simulations)


def count_positions(game) -> int:
    """Nodes of the full game tree below and including ``game``."""
    total = 1
    for action in game.legal_actions():
        child = game.clone()
        child.step(action)
        total += count_positions(child)
    return total


def test_tree_stops_growing_once_the_game_tree_is_exhausted() -> None:
    game = after(TicTacToe(), [0, 4, 8, 2, 6, 3])  # X to move with cells 1, 5, 7 left
    # X7 wins; after X1, O5 wins or O7 X5 draws; after X5, O1 X7 wins for X or O7 X1 draws: 1 + 3 + 4 + 3 nodes.
    assert count_positions(game) == 11
    explorer = mcts(game, 300, c=5.0, rng=0)  # a large c visits even the poor branches often
    assert explorer.tree_size == 11 == explorer.root.size() and explorer.root.visits == 300
    result = mcts(game, 300, rng=0)
    assert result.tree_size <= 11
    # 7 completes 6-7-8: a terminal child worth exactly +1 on every visit, and chosen.
    assert result.action == 7 and result.q_values[result.actions.index(7)] == 1.0


def test_unexpanded_root_actions_are_reported_with_no_visits() -> None:
    result = mcts(TicTacToe(), 3, rng=0)
    assert result.actions == tuple(range(9))
    assert sorted(result.visits) == [0] * 6 + [1] * 3
    assert np.isnan(result.q_values[result.visits == 0]).all()
    assert not np.isnan(result.q_values[result.visits == 1]).any()


def test_blocks_the_opponents_winning_threat() -> None:
    game = after(TicTacToe(), [0, 4, 1])  # X threatens 0-1-2; O must take 2
    assert mcts(game, 1000, rng=0).action == 2


def test_search_is_seeded_and_leaves_the_root_state_unchanged() -> None:
    game = after(ConnectFour(), [3, 3])
    key = game.key()
    first = mcts(game, 200, rng=7)
    second = mcts(game, 200, rng=np.random.default_rng(7))
    assert game.key() == key and game.current_player == 0 and game.n_moves == 2
    assert first.action == second.action
    np.testing.assert_array_equal(first.visits, second.visits)
    np.testing.assert_array_equal(first.q_values, second.q_values)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="root_state is terminal"):
        mcts(after(TicTacToe(), [0, 3, 1, 4, 2]), 10)
    with pytest.raises(ValueError, match="n_simulations must be at least 1, got 0"):
        mcts(TicTacToe(), 0)
    with pytest.raises(ValueError, match="c must be >= 0"):
        mcts(TicTacToe(), 10, c=-1.0)


# ---------------------------------------------------------------- play strength


def test_tic_tac_toe_never_loses_to_a_random_player() -> None:
    for seed in range(100):
        planner, opponent = MCTSPlayer(1500, rng=seed), RandomPlayer(10_000 + seed)
        if seed % 2 == 0:
            assert play(TicTacToe(), [planner, opponent])[0] >= 0.0, f"lost as X, seed {seed}"
        else:
            assert play(TicTacToe(), [opponent, planner])[1] >= 0.0, f"lost as O, seed {seed}"


def test_tic_tac_toe_draws_against_perfect_play() -> None:
    # The perfect player picks at random among its optimal moves, so these games open differently.
    for seed in range(4):
        planner, perfect = MCTSPlayer(5000, rng=seed), MinimaxPlayer(seed)
        assert play(TicTacToe(), [planner, perfect]) == (0.0, 0.0), f"MCTS as X, seed {seed}"
        assert play(TicTacToe(), [perfect, planner]) == (0.0, 0.0), f"MCTS as O, seed {seed}"


def test_connect_four_beats_a_random_player() -> None:
    for seed in range(4):
        planner, opponent = MCTSPlayer(300, rng=seed), RandomPlayer(seed)
        if seed % 2 == 0:
            assert play(ConnectFour(), [planner, opponent]) == (1.0, -1.0), f"as X, seed {seed}"
        else:
            assert play(ConnectFour(), [opponent, planner]) == (-1.0, 1.0), f"as O, seed {seed}"


# ---------------------------------------------------------------- single-agent problems


def test_tree_search_corrects_misleading_random_playouts() -> None:
    # Under random playouts 'advance' from 0 is worth -0.1 + 0.5 * 0.5 + 0.5 * (-0.1 + 0.5 * 0.5 + 0.5 * 0.9) = 0.45,
    # less than cashing in (0.5); its true value is 1 - 0.3 = 0.7, which the growing tree uncovers.
    result = mcts(CashOrAdvance(3), 300, rng=0)
    assert result.tree_size == 7  # the whole problem: root, 3 cash-ins, 3 advances
    assert result.action == 1
    q_cash, q_advance = result.q_values
    assert q_cash == 0.5
    # a mean of the returns through 'advance' (0.4, 0.3 or 0.7), above the playouts' 0.45 and below the optimum
    assert 0.5 < q_advance < 0.7
    node = result.root
    while node.children:  # the most visited path is the optimal plan: advance to the end
        node = max(node.children, key=lambda child: child.visits)
        assert node.action == 1


def test_value_fn_replaces_playouts_and_q_counts_return_from_the_root() -> None:
    state = after(CashOrAdvance(3), [1])  # already collected -0.1
    result = mcts(state, 2, value_fn=optimal_chain_value, rng=0)
    # cash: 0.5 at once; advance: -0.1 now + value 0.9 of position 2. Rewards before the root do not count.
    np.testing.assert_allclose(result.q_values, [0.5, 0.8])
    assert result.visits.tolist() == [1, 1] and result.action == 1  # a tie in visits goes to the higher Q


def test_plans_a_path_to_the_goal_in_a_gymnasium_toy_text_env() -> None:
    sim = GymnasiumSimulator(gym.make("FrozenLake-v1", is_slippery=False), seed=0)
    planner = MCTSPlayer(200, rng=0)
    for _ in range(20):
        if sim.is_terminal():
            break
        sim.step(planner(sim))
    assert sim.returns() == (1.0,) and sim.obs == 15  # reached the goal, not a hole
