"""Simulators for planning: the ``Simulator`` protocol, tic-tac-toe, Connect Four, negamax and simple players.

Lecture-notes concept: *planning with a model you can copy* (F0 L389–L401, F2 L232–L239; inventory A15–A17).
Monte Carlo Tree Search never learns from the real environment: it clones the current state, tries moves on the
copy, and reads who won. Everything a planner needs is the :class:`Simulator` protocol below; two-player board games
and a Gymnasium adapter implement it.

Conventions: players are numbered 0 and 1 (0 moves first); a single-agent problem is player 0 throughout.
``returns()`` gives each player's reward collected so far (for the games: +1 win, -1 loss, 0 draw, all at the end),
so the two board games are zero-sum. The boards are bitboards (one Python int per player) because a random
playout, the hot loop of MCTS, then costs a few integer operations per move.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple, Protocol, Self

import gymnasium as gym
import numpy as np

__all__ = [
    "ConnectFour",
    "Game",
    "GymnasiumSimulator",
    "MinimaxPlayer",
    "MinimaxResult",
    "Player",
    "RandomPlayer",
    "Simulator",
    "TicTacToe",
    "minimax",
    "play",
]


class Simulator(Protocol):
    """A state a planner can copy and step: all MCTS needs (two-player games or single-agent problems).

    - ``current_player``: whose turn it is, 0 or 1 (always 0 for a single-agent problem).
    - ``clone()``: an independent copy; stepping the copy leaves the original unchanged.
    - ``legal_actions()``: a new list of the actions allowed now, non-empty unless the state is terminal.
    - ``step(action)``: play ``action`` for ``current_player`` in place; an illegal action raises ``ValueError``.
    - ``is_terminal()``: whether the game or episode is over.
    - ``returns()``: each player's total reward so far, indexed by player (length 1 for a single agent).
    """

    @property
    def current_player(self) -> int: ...

    def clone(self) -> Self: ...

    def legal_actions(self) -> list[int]: ...

    def step(self, action: int) -> None: ...

    def is_terminal(self) -> bool: ...

    def returns(self) -> tuple[float, ...]: ...


class Game(Simulator, Protocol):
    """A two-player zero-sum :class:`Simulator` whose position has a hashable ``key()`` (for memoised search)."""

    def key(self) -> Hashable: ...


Player = Callable[[Simulator], int]
"""A player maps the current state to the action it plays; it must not change the state."""


class _BoardGame:
    """Shared bookkeeping of the bitboard games: stones per player, whose turn, move count, winner."""

    __slots__ = ("stones", "current_player", "n_moves", "winner")
    n_cells: int  # a full board without a winner is a draw

    def __init__(self) -> None:
        self.stones = [0, 0]  # bit i set: that player has a stone on cell i
        self.current_player = 0
        self.n_moves = 0
        self.winner: int | None = None

    def is_terminal(self) -> bool:
        """Whether someone has won or the board is full."""
        return self.winner is not None or self.n_moves == self.n_cells

    def returns(self) -> tuple[float, float]:
        """(+1, -1) if player 0 has won, (-1, +1) if player 1 has, (0, 0) otherwise."""
        if self.winner is None:
            return (0.0, 0.0)
        return (1.0, -1.0) if self.winner == 0 else (-1.0, 1.0)

    def key(self) -> tuple[int, int]:
        """The position as a hashable pair of bitboards (the player to move follows from the stone count)."""
        return (self.stones[0], self.stones[1])

    def _game_over(self, action: int) -> ValueError:
        outcome = "a draw" if self.winner is None else f"won by player {self.winner}"
        return ValueError(f"illegal move {action!r}: the game is over ({outcome})")

    def _copy_into(self, new: _BoardGame) -> None:
        new.stones = self.stones.copy()
        new.current_player = self.current_player
        new.n_moves = self.n_moves
        new.winner = self.winner


def _tic_tac_toe_lines() -> tuple[tuple[int, ...], ...]:
    """For each cell 0..8 (row-major), the bitmasks of the winning lines through it."""
    rows = [(0, 1, 2), (3, 4, 5), (6, 7, 8)]
    columns = [(0, 3, 6), (1, 4, 7), (2, 5, 8)]
    diagonals = [(0, 4, 8), (2, 4, 6)]
    masks = [(line, sum(1 << cell for cell in line)) for line in rows + columns + diagonals]
    return tuple(tuple(mask for line, mask in masks if cell in line) for cell in range(9))


_LINES_THROUGH = _tic_tac_toe_lines()


class TicTacToe(_BoardGame):
    """Tic-tac-toe on a 3x3 board; actions are cells 0..8 in row-major order, player 0 plays X."""

    __slots__ = ()
    n_cells = 9

    def clone(self) -> TicTacToe:
        """An independent copy of the position."""
        new = TicTacToe.__new__(TicTacToe)
        self._copy_into(new)
        return new

    def legal_actions(self) -> list[int]:
        """The empty cells, ascending (none once the game is over)."""
        if self.winner is not None:
            return []
        occupied = self.stones[0] | self.stones[1]
        return [cell for cell in range(9) if not occupied >> cell & 1]

    def step(self, action: int) -> None:
        """Put the current player's mark on cell ``action``; raises ``ValueError`` for an illegal move."""
        if self.winner is not None or self.n_moves == self.n_cells:
            raise self._game_over(action)
        cell = int(action)
        if not 0 <= cell < 9 or (self.stones[0] | self.stones[1]) >> cell & 1:
            reason = f"cell {cell} is occupied" if 0 <= cell < 9 else "cells are numbered 0..8"
            raise ValueError(f"illegal move {action!r}: {reason}; legal moves are {self.legal_actions()}")
        player = self.current_player
        stones = self.stones[player] | 1 << cell
        self.stones[player] = stones
        self.n_moves += 1
        # Only a line through the new mark can have been completed by it.
        for line in _LINES_THROUGH[cell]:
            if stones & line == line:
                self.winner = player
                break
        self.current_player = 1 - player

    @property
    def board(self) -> np.ndarray:
        """3x3 int8 array: +1 for X (player 0), -1 for O (player 1), 0 for empty."""
        cells = [(self.stones[0] >> i & 1) - (self.stones[1] >> i & 1) for i in range(9)]
        return np.array(cells, dtype=np.int8).reshape(3, 3)

    def __str__(self) -> str:
        symbols = {1: "X", -1: "O", 0: "."}
        return "\n".join(" ".join(symbols[int(v)] for v in row) for row in self.board)


# Connect Four bitboard: column c holds bits 7c .. 7c+5 (bit 7c is the bottom row); bit 7c+6 is a sentinel that is
# never set, so a shift by 1 (vertical), 7 (horizontal), 6 or 8 (the diagonals) never wraps from one column's top
# into the next column's bottom.
_C4_COLUMNS, _C4_ROWS, _C4_STRIDE = 7, 6, 7
_C4_TOP = tuple(_C4_STRIDE * c + _C4_ROWS for c in range(_C4_COLUMNS))  # first bit above a full column


def _has_four(stones: int) -> bool:
    """Whether a Connect Four bitboard holds four in a row in any direction."""
    for shift in (1, _C4_STRIDE, _C4_STRIDE - 1, _C4_STRIDE + 1):
        pairs = stones & stones >> shift  # stone with a neighbour `shift` away
        if pairs & pairs >> 2 * shift:  # two such pairs back to back: four in a row
            return True
    return False


class ConnectFour(_BoardGame):
    """Connect Four, 7 columns x 6 rows with gravity; actions are columns 0..6, player 0 plays X."""

    __slots__ = ("heights",)
    n_cells = _C4_COLUMNS * _C4_ROWS

    def __init__(self) -> None:
        super().__init__()
        self.heights = [_C4_STRIDE * c for c in range(_C4_COLUMNS)]  # bit index of each column's lowest free cell

    def clone(self) -> ConnectFour:
        """An independent copy of the position."""
        new = ConnectFour.__new__(ConnectFour)
        self._copy_into(new)
        new.heights = self.heights.copy()
        return new

    def legal_actions(self) -> list[int]:
        """The columns that are not full, ascending (none once the game is over)."""
        if self.winner is not None:
            return []
        heights = self.heights
        return [c for c in range(_C4_COLUMNS) if heights[c] != _C4_TOP[c]]

    def step(self, action: int) -> None:
        """Drop the current player's disc into column ``action``; raises ``ValueError`` for an illegal move."""
        if self.winner is not None or self.n_moves == self.n_cells:
            raise self._game_over(action)
        column = int(action)
        if not 0 <= column < _C4_COLUMNS or self.heights[column] == _C4_TOP[column]:
            reason = f"column {column} is full" if 0 <= column < _C4_COLUMNS else "columns are numbered 0..6"
            raise ValueError(f"illegal move {action!r}: {reason}; legal moves are {self.legal_actions()}")
        player = self.current_player
        stones = self.stones[player] | 1 << self.heights[column]
        self.stones[player] = stones
        self.heights[column] += 1
        self.n_moves += 1
        if _has_four(stones):
            self.winner = player
        self.current_player = 1 - player

    @property
    def board(self) -> np.ndarray:
        """6x7 int8 array, top row first (as printed): +1 for X (player 0), -1 for O (player 1), 0 for empty."""
        board = np.zeros((_C4_ROWS, _C4_COLUMNS), dtype=np.int8)
        for column in range(_C4_COLUMNS):
            for row in range(_C4_ROWS):
                bit = _C4_STRIDE * column + row
                board[_C4_ROWS - 1 - row, column] = (self.stones[0] >> bit & 1) - (self.stones[1] >> bit & 1)
        return board

    def __str__(self) -> str:
        symbols = {1: "X", -1: "O", 0: "."}
        rows = [" ".join(symbols[int(v)] for v in row) for row in self.board]
        return "\n".join([*rows, " ".join(str(c) for c in range(_C4_COLUMNS))])


class GymnasiumSimulator:
    """A single-agent :class:`Simulator` over a Gymnasium env with a ``Discrete`` action space.

    ``clone()`` deep-copies the env, which works for envs whose whole state lives in Python objects (the toy-text
    envs, for instance; not for envs backed by an external engine). The copy includes the env's random generator,
    so a clone replays the same random outcomes as the original would. Truncation ends the episode for planning.
    """

    current_player = 0
    # Attributes of the unwrapped env that it never writes after construction (the toy-text transition table P is
    # most of the cost of a deep copy): clones share them.
    SHARED_ATTRIBUTES = ("P", "observation_space", "action_space", "spec")

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"GymnasiumSimulator needs a Discrete action space, got {env.action_space}")
        self.env = env
        self.obs, _ = env.reset(seed=seed)
        self.total_reward = 0.0
        self.done = False
        start, n = int(env.action_space.start), int(env.action_space.n)
        self._actions = list(range(start, start + n))
        unwrapped = env.unwrapped
        self._shared = [getattr(unwrapped, name) for name in self.SHARED_ATTRIBUTES if hasattr(unwrapped, name)]

    def clone(self) -> GymnasiumSimulator:
        """An independent copy (env included, apart from ``SHARED_ATTRIBUTES``)."""
        return copy.deepcopy(self, memo={id(obj): obj for obj in self._shared})

    def legal_actions(self) -> list[int]:
        """Every action of the Discrete space, or none once the episode is over."""
        return [] if self.done else list(self._actions)

    def step(self, action: int) -> None:
        """Step the env, adding the reward to ``total_reward``; raises ``ValueError`` after the episode ended."""
        if self.done:
            raise ValueError(f"illegal action {action!r}: the episode is over; clone an earlier state to plan from")
        self.obs, reward, terminated, truncated, _ = self.env.step(action)
        self.total_reward += float(reward)
        self.done = bool(terminated or truncated)

    def is_terminal(self) -> bool:
        """Whether the episode has terminated or been truncated."""
        return self.done

    def returns(self) -> tuple[float]:
        """(the undiscounted reward collected since reset,)."""
        return (self.total_reward,)


class MinimaxResult(NamedTuple):
    """Perfect-play values, each for the player to move: +1 a forced win, 0 a draw, -1 a forced loss."""

    value: float  # of the position
    action_values: dict[int, float]  # of each legal action

    @property
    def best_actions(self) -> list[int]:
        """The legal actions that achieve ``value``, ascending."""
        return sorted(a for a, v in self.action_values.items() if v == self.value)


def minimax(game: Game, cache: dict[Hashable, float] | None = None) -> MinimaxResult:
    """Solve ``game`` by negamax: each player maximises their own return, the opponent's value negated.

    Values are memoised by ``game.key()`` in ``cache`` (pass the same dict to later calls on the same game type to
    reuse the work); tic-tac-toe has 5,478 positions, so a full solve takes a fraction of a second. A terminal
    position has no action values and is worth its return to the player whose turn it would be.
    """
    cache = {} if cache is None else cache
    if game.is_terminal():
        return MinimaxResult(game.returns()[game.current_player], {})
    action_values = {action: _action_value(game, action, cache) for action in game.legal_actions()}
    return MinimaxResult(max(action_values.values()), action_values)


def _action_value(game: Game, action: int, cache: dict[Hashable, float]) -> float:
    """Value of playing ``action`` for the player to move in ``game``."""
    player = game.current_player
    child = game.clone()
    child.step(action)
    if child.is_terminal():
        return child.returns()[player]
    value = _negamax(child, cache)
    return value if child.current_player == player else -value


def _negamax(game: Game, cache: dict[Hashable, float]) -> float:
    """Value of a non-terminal position for the player to move."""
    key = game.key()
    value = cache.get(key)
    if value is None:
        value = max(_action_value(game, action, cache) for action in game.legal_actions())
        cache[key] = value
    return value


class RandomPlayer:
    """Plays a uniformly random legal action."""

    def __init__(self, rng: np.random.Generator | int | None = None) -> None:
        self.rng = np.random.default_rng(rng)

    def __call__(self, game: Simulator) -> int:
        legal = game.legal_actions()
        return legal[int(self.rng.integers(len(legal)))]


class MinimaxPlayer:
    """Perfect play: a uniformly random one of the :func:`minimax` best actions (it never loses a game it can draw)."""

    def __init__(self, rng: np.random.Generator | int | None = None) -> None:
        self.rng = np.random.default_rng(rng)
        self.cache: dict[Hashable, float] = {}

    def __call__(self, game: Game) -> int:
        best = minimax(game, self.cache).best_actions
        return best[int(self.rng.integers(len(best)))]


def play(game: Simulator, players: Sequence[Player]) -> tuple[float, ...]:
    """Play ``game`` to the end in place, ``players[p]`` choosing the moves of player ``p``; returns ``returns()``."""
    while not game.is_terminal():
        game.step(players[game.current_player](game))
    return game.returns()
