"""Tic-tac-toe and Connect Four rules, negamax values, players, and the Gymnasium simulator adapter."""

from __future__ import annotations

import functools
import re

import gymnasium as gym
import numpy as np
import pytest

from thorndike.envs.games import (
    ConnectFour,
    GymnasiumSimulator,
    MinimaxPlayer,
    RandomPlayer,
    TicTacToe,
    minimax,
    play,
)

# A complete Connect Four game (found by random play) that fills the board without four in a row.
C4_DRAW = [5, 5, 5, 0, 5, 4, 4, 6, 6, 3, 5, 1, 3, 5, 2, 1, 2, 3, 0, 4, 1, 4, 3, 0, 2, 2, 2, 1, 0, 0, 0, 2, 1, 6, 1, 3,
           4, 4, 3, 6, 6, 6]  # fmt: skip


def after(game, moves):
    for move in moves:
        game.step(move)
    return game


@functools.cache
def line_windows(rows: int, cols: int, length: int) -> np.ndarray:
    """Flat indices of every run of ``length`` cells in a row, column or diagonal of a rows x cols board."""
    windows = []
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + k * dr, c + k * dc) for k in range(length)]
                if all(0 <= i < rows and 0 <= j < cols for i, j in cells):
                    windows.append([i * cols + j for i, j in cells])
    return np.array(windows)


def has_line(board: np.ndarray, mark: int, length: int) -> bool:
    """Brute force: does ``mark`` fill ``length`` consecutive cells of ``board`` in any direction?"""
    return bool((board.ravel() == mark)[line_windows(*board.shape, length)].all(axis=1).any())


# ---------------------------------------------------------------- tic-tac-toe

TTT_LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


@pytest.mark.parametrize("line", TTT_LINES)
def test_tic_tac_toe_x_wins_on_every_row_column_and_diagonal(line) -> None:
    o_cells = [cell for cell in range(9) if cell not in line][:2]  # two O marks cannot make a line
    game = after(TicTacToe(), [line[0], o_cells[0], line[1], o_cells[1], line[2]])
    assert game.winner == 0 and game.is_terminal()
    assert game.returns() == (1.0, -1.0)
    assert game.legal_actions() == []


def test_tic_tac_toe_o_wins_and_the_game_stops() -> None:
    game = after(TicTacToe(), [0, 3, 1, 4, 8, 5])  # O completes the middle row
    assert game.winner == 1 and game.returns() == (-1.0, 1.0)
    with pytest.raises(ValueError, match="the game is over \\(won by player 1\\)"):
        game.step(2)


def test_tic_tac_toe_full_board_without_line_is_a_draw() -> None:
    game = after(TicTacToe(), [0, 1, 2, 4, 3, 5, 7, 6, 8])
    assert str(game) == "X O X\nX O O\nO X X"
    assert game.winner is None and game.is_terminal()
    assert game.returns() == (0.0, 0.0)
    with pytest.raises(ValueError, match="game is over \\(a draw\\)"):
        game.step(0)


def test_tic_tac_toe_refuses_illegal_moves_with_the_reason() -> None:
    game = after(TicTacToe(), [4])
    occupied = re.escape("illegal move 4: cell 4 is occupied; legal moves are [0, 1, 2, 3, 5, 6, 7, 8]")
    with pytest.raises(ValueError, match=occupied):
        game.step(4)
    with pytest.raises(ValueError, match="illegal move 9: cells are numbered 0..8"):
        game.step(9)
    with pytest.raises(ValueError, match="illegal move -1"):
        game.step(-1)
    assert game.n_moves == 1 and game.current_player == 1  # the refused moves changed nothing


def test_tic_tac_toe_board_turns_and_clone() -> None:
    game = after(TicTacToe(), [4, 0, np.int64(8)])  # numpy integers are accepted as moves
    assert game.current_player == 1 and game.legal_actions() == [1, 2, 3, 5, 6, 7]
    np.testing.assert_array_equal(game.board, [[-1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert str(game) == "O . .\n. X .\n. . X"
    copy = game.clone()
    copy.step(2)
    assert game.legal_actions() == [1, 2, 3, 5, 6, 7] and game.current_player == 1  # original untouched
    assert copy.key() != game.key() and copy.current_player == 0


def test_tic_tac_toe_winner_agrees_with_brute_force_in_random_games() -> None:
    player = RandomPlayer(0)
    for _ in range(200):
        game = TicTacToe()
        while not game.is_terminal():
            game.step(player(game))
            board = game.board
            assert (game.winner == 0) == has_line(board, 1, 3)
            assert (game.winner == 1) == has_line(board, -1, 3)
        assert game.winner is not None or game.n_moves == 9


# ---------------------------------------------------------------- Connect Four


def test_connect_four_discs_fall_to_the_lowest_free_row() -> None:
    game = after(ConnectFour(), [3, 3, 3, 0])
    column3 = game.board[:, 3]
    np.testing.assert_array_equal(column3, [0, 0, 0, 1, -1, 1])  # top row first: X, O, X stacked from the bottom
    assert game.board[5, 0] == -1 and game.board[:5, 0].tolist() == [0] * 5
    assert str(game).splitlines() == [
        ". . . . . . .",
        ". . . . . . .",
        ". . . . . . .",
        ". . . X . . .",
        ". . . O . . .",
        "O . . X . . .",
        "0 1 2 3 4 5 6",
    ]


def test_connect_four_full_column_is_refused() -> None:
    game = after(ConnectFour(), [2] * 6)
    assert game.legal_actions() == [0, 1, 3, 4, 5, 6]
    full = re.escape("illegal move 2: column 2 is full; legal moves are [0, 1, 3, 4, 5, 6]")
    with pytest.raises(ValueError, match=full):
        game.step(2)
    with pytest.raises(ValueError, match="illegal move 7: columns are numbered 0..6"):
        game.step(7)
    assert game.n_moves == 6


@pytest.mark.parametrize(
    ("moves", "direction"),
    [
        ([0, 1, 0, 1, 0, 1, 0], "vertical"),
        ([0, 0, 1, 1, 2, 2, 3], "horizontal"),
        ([0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3], "rising diagonal"),
        ([6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3], "falling diagonal"),
    ],
)
def test_connect_four_detects_four_in_a_row(moves, direction) -> None:
    game = after(ConnectFour(), moves[:-1])
    assert game.winner is None, direction
    game.step(moves[-1])
    assert game.winner == 0 and game.returns() == (1.0, -1.0) and game.legal_actions() == [], direction


def test_connect_four_lines_do_not_wrap_between_columns() -> None:
    # X on rows 3-5 of column 0 and row 0 of column 1: consecutive cells in a 6-bit-per-column layout.
    game = after(ConnectFour(), [0, 0, 6, 0, 0, 6, 0, 5, 0, 5, 1])
    np.testing.assert_array_equal(game.board[:, 0], [1, 1, 1, -1, -1, 1])  # top row first
    assert game.board[5, 1] == 1
    assert game.winner is None and not has_line(game.board, 1, 4)


def test_connect_four_full_board_without_four_is_a_draw() -> None:
    game = after(ConnectFour(), C4_DRAW)
    assert not has_line(game.board, 1, 4) and not has_line(game.board, -1, 4)
    assert game.is_terminal() and game.winner is None and game.returns() == (0.0, 0.0)
    assert game.legal_actions() == [] and (game.board == 1).sum() == (game.board == -1).sum() == 21
    with pytest.raises(ValueError, match="game is over \\(a draw\\)"):
        game.step(0)


def test_connect_four_winner_agrees_with_brute_force_in_random_games() -> None:
    player = RandomPlayer(1)
    for _ in range(100):
        game = ConnectFour()
        while not game.is_terminal():
            game.step(player(game))
            board = game.board
            assert (game.winner == 0) == has_line(board, 1, 4)
            assert (game.winner == 1) == has_line(board, -1, 4)


# ---------------------------------------------------------------- negamax


def test_minimax_empty_tic_tac_toe_board_is_a_draw_whatever_x_plays() -> None:
    result = minimax(TicTacToe())
    assert result.value == 0.0
    assert result.action_values == dict.fromkeys(range(9), 0.0)


def test_minimax_values_of_known_positions() -> None:
    # O must answer a corner opening in the centre; every other reply loses.
    corner = minimax(after(TicTacToe(), [0]))
    assert corner.value == 0.0 and corner.best_actions == [4]
    assert all(v == -1.0 for a, v in corner.action_values.items() if a != 4)
    # X in opposite corners around O's centre: O must take an edge, a corner lets X fork.
    opposite = minimax(after(TicTacToe(), [0, 4, 8]))
    assert opposite.value == 0.0 and opposite.best_actions == [1, 3, 5, 7]
    assert opposite.action_values[2] == opposite.action_values[6] == -1.0
    # X to move with two in the top row: completing it wins at once.
    threat = minimax(after(TicTacToe(), [0, 3, 1, 4]))
    assert threat.value == 1.0 and 2 in threat.best_actions and threat.action_values[2] == 1.0
    # A finished game is worth its outcome to the player who would move next (O lost).
    over = minimax(after(TicTacToe(), [0, 3, 1, 4, 2]))
    assert over.value == -1.0 and over.action_values == {}


def plain_minimax(game: TicTacToe) -> float:
    """Textbook minimax without memoisation: X maximises X's return, O minimises it."""
    if game.is_terminal():
        return game.returns()[0]
    values = []
    for action in game.legal_actions():
        child = game.clone()
        child.step(action)
        values.append(plain_minimax(child))
    return max(values) if game.current_player == 0 else min(values)


def test_negamax_with_memo_agrees_with_plain_minimax() -> None:
    rng = np.random.default_rng(0)
    cache: dict = {}
    for _ in range(20):
        game = TicTacToe()
        for _ in range(int(rng.integers(3, 7))):
            if game.is_terminal():
                break
            game.step(RandomPlayer(rng)(game))
        if game.is_terminal():
            continue
        sign = 1.0 if game.current_player == 0 else -1.0
        assert minimax(game, cache).value == sign * plain_minimax(game)


def test_minimax_player_never_loses() -> None:
    perfect = MinimaxPlayer(0)
    for seed in range(20):
        opponent = RandomPlayer(seed)
        assert play(TicTacToe(), [perfect, opponent])[0] >= 0.0
        assert play(TicTacToe(), [opponent, perfect])[1] >= 0.0
    assert play(TicTacToe(), [perfect, MinimaxPlayer(1)]) == (0.0, 0.0)


# ---------------------------------------------------------------- Gymnasium adapter


def test_gymnasium_simulator_clones_are_independent_and_sum_rewards() -> None:
    # FrozenLake 4x4, no slipping: S F F F / F H F H / F F F H / H F F G; actions 0 left, 1 down, 2 right, 3 up.
    sim = GymnasiumSimulator(gym.make("FrozenLake-v1", is_slippery=False), seed=0)
    assert sim.current_player == 0 and sim.legal_actions() == [0, 1, 2, 3]
    copy = sim.clone()
    for action in [1, 1, 2, 2, 1, 2]:
        copy.step(action)
    assert copy.is_terminal() and copy.returns() == (1.0,) and copy.obs == 15
    assert not sim.is_terminal() and sim.obs == 0 and sim.returns() == (0.0,)
    with pytest.raises(ValueError, match="the episode is over"):
        copy.step(0)
    assert copy.legal_actions() == []


def test_gymnasium_simulator_refuses_continuous_actions() -> None:
    with pytest.raises(ValueError, match="needs a Discrete action space"):
        GymnasiumSimulator(gym.make("Pendulum-v1"))
