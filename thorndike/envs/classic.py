"""Small textbook MDPs behind the tabular-learning results (Sutton and Barto, 2nd edition), as TabularMDPs.

- :func:`random_walk`: example 6.2, the 5-state random walk used to compare TD(0) and Monte Carlo prediction
  (004's MC-vs-TD notes, 001 unit 2). True values 1/6 .. 5/6.
- :func:`maximization_bias`: example 6.7, where Q-learning's max over noisy estimates prefers a bad action and
  double Q-learning does not (003 L423-L459).
- :func:`dyna_maze`: example 8.1 / figure 8.2, the 6 x 9 maze on which Dyna-Q's planning steps pay off.

Each is registered as a Gymnasium id (``thorndike/RandomWalk-v0``, ``thorndike/MaximizationBias-v0``,
``thorndike/DynaMaze-v0``; the notes' 4 x 3 gridworld is ``thorndike/Gridworld-v0``) and as a native batched env,
so ``th.make("q_learning", env="thorndike/DynaMaze-v0")`` works on either backend and runs can be resumed by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from thorndike.envs import NATIVE_ENVS
from thorndike.envs.batched.tabular import TabularEnv
from thorndike.envs.gridworld import classic as _classic_gridworld
from thorndike.envs.gridworld import row_major_grid
from thorndike.envs.tabular import TabularMDP

__all__ = ["CLASSIC", "DYNA_MAZE", "dyna_maze", "maximization_bias", "random_walk"]

DYNA_MAZE = """
. . . . . . . # G
. . # . . . . # .
S . # . . . . # .
. . # . . . . . .
. . . . . # . . .
. . . . . . . . .
"""
"""Sutton and Barto's figure 8.2 maze (rows from the top): start S, goal G, walls #. The shortest path is 14 steps."""

GRID_ACTIONS = ("Up", "Right", "Down", "Left")
_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # (row, column) offsets of GRID_ACTIONS


def random_walk(n: int = 5, max_steps: int | None = None) -> TabularMDP:
    """States 0 and n+1 are terminal; the walk starts in the middle and moves left or right with probability 1/2
    (the single action does not matter). Entering the right end pays +1, everything else 0; gamma = 1, so the true
    value of state i (1..n) is i / (n + 1)."""
    if n < 1 or n % 2 == 0:
        raise ValueError(f"the random walk needs an odd number of states n >= 1 (it starts in the middle), got {n}")
    S = n + 2
    rows = [(s, 0, s + step, 0.5, 1.0 if s + step == S - 1 else 0.0) for s in range(1, S - 1) for step in (-1, 1)]
    rows += _self_loops(0, 1) + _self_loops(S - 1, 1)
    state, action, next_state, prob, reward = (np.array(c) for c in zip(*rows))
    start = np.zeros(S)
    start[(n + 1) // 2] = 1.0
    names = ["T_left", *(chr(ord("A") + i) if n <= 26 else str(i + 1) for i in range(n)), "T_right"]
    return TabularMDP.from_transitions(S, 1, state, action, next_state, prob, reward, terminal=[0, S - 1],
                                       start=start, gamma=1.0, max_steps=max_steps, state_names=names,
                                       action_names=["step"])


def maximization_bias(n_actions: int = 10, mean: float = -0.1, std: float = 1.0) -> TabularMDP:
    """Start in A. Action 0 (left) goes to B with reward 0; every other action of A (right) ends the episode with
    reward 0. Every action of B ends the episode with a reward of mean ``mean`` and std ``std``: -0.1 +/- 1, drawn as
    two equally likely values (the textbook draws a normal; two atoms keep the model finite and have the same mean
    and variance). Going left is worth -0.1, so the optimal policy goes right.

    Sutton and Barto give A two actions and B many; a TabularMDP has one action set, so A's actions 1.. all mean
    right. They are deterministic with reward 0, so the extra copies add no bias of their own. gamma = 1.
    """
    if n_actions < 2:
        raise ValueError(f"maximization_bias needs n_actions >= 2, got {n_actions}")
    A_state, B_state, low_end, high_end = 0, 1, 2, 3
    rows = [(A_state, 0, B_state, 1.0, 0.0)]
    rows += [(A_state, a, low_end, 1.0, 0.0) for a in range(1, n_actions)]
    for a in range(n_actions):
        rows += [(B_state, a, low_end, 0.5, mean - std), (B_state, a, high_end, 0.5, mean + std)]
    rows += _self_loops(low_end, n_actions) + _self_loops(high_end, n_actions)
    state, action, next_state, prob, reward = (np.array(c) for c in zip(*rows))
    return TabularMDP.from_transitions(4, n_actions, state, action, next_state, prob, reward, terminal=[2, 3],
                                       start=[1.0, 0.0, 0.0, 0.0], gamma=1.0,
                                       state_names=["A", "B", "end", "end'"],
                                       action_names=["left", *(f"right{a}" for a in range(1, n_actions))])


def dyna_maze(gamma: float = 0.95, max_steps: int | None = None) -> TabularMDP:
    """Figure 8.2's maze: four deterministic moves (a move into a wall or off the grid stays put), reward +1 on
    entering the goal (terminal), 0 otherwise; gamma = 0.95 as in the book."""
    return grid_maze(DYNA_MAZE, gamma=gamma, max_steps=max_steps)


def grid_maze(ascii_map: str, gamma: float = 0.95, max_steps: int | None = None) -> TabularMDP:
    """A deterministic maze from an ASCII map (``.`` open, ``#`` wall, ``S`` start, ``G`` goal paying +1); one state per
    cell, in row-major order from the top left (walls are states that are never reached)."""
    cells = [line.split() for line in ascii_map.strip("\n").splitlines() if line.strip()]
    height, width = len(cells), len(cells[0])
    if any(len(row) != width for row in cells):
        raise ValueError("every row of the maze needs the same number of cells")
    flat = [c for row in cells for c in row]
    if flat.count("S") != 1 or flat.count("G") < 1:
        raise ValueError("the maze needs exactly one S (start) and at least one G (goal)")
    rows = []
    for i in range(height):
        for j in range(width):
            if cells[i][j] in "#G":  # walls are never reached; goals are terminal
                rows += _self_loops(i * width + j, 4)
                continue
            for a, (di, dj) in enumerate(_MOVES):
                ni, nj = i + di, j + dj
                if not (0 <= ni < height and 0 <= nj < width) or cells[ni][nj] == "#":
                    ni, nj = i, j
                rows.append((i * width + j, a, ni * width + nj, 1.0, 1.0 if cells[ni][nj] == "G" else 0.0))
    state, action, next_state, prob, reward = (np.array(c) for c in zip(*rows))
    S = height * width
    start = np.zeros(S)
    start[flat.index("S")] = 1.0
    terminal = [s for s, c in enumerate(flat) if c == "G"]
    names = [f"({i},{j})" for i in range(height) for j in range(width)]
    mdp = TabularMDP.from_transitions(S, 4, state, action, next_state, prob, reward, terminal=terminal,
                                      start=start, gamma=gamma, max_steps=max_steps, state_names=names,
                                      action_names=list(GRID_ACTIONS))
    walls = tuple(s for s, c in enumerate(flat) if c == "#")
    mdp.grid = row_major_grid(mdp, height, width, GRID_ACTIONS, ((0, 1), (1, 0), (0, -1), (-1, 0)), walls)
    return mdp


def _self_loops(state: int, n_actions: int) -> list[tuple[int, int, int, float, float]]:
    """Transitions that keep ``state`` where it is: P's rows must be distributions even where nothing happens."""
    return [(state, a, state, 1.0, 0.0) for a in range(n_actions)]


CLASSIC = {
    "thorndike/RandomWalk-v0": random_walk,
    "thorndike/MaximizationBias-v0": maximization_bias,
    "thorndike/DynaMaze-v0": dyna_maze,
    "thorndike/Gridworld-v0": _classic_gridworld,
}
"""The registered ids of thorndike's own tabular problems, each a zero-argument TabularMDP builder."""



def _native(env_id: str, builder: Callable[[], TabularMDP], n_envs: int,
            device: torch.device | str = "cpu") -> TabularEnv:
    return TabularEnv(builder(), n_envs, device=device, env_id=env_id)


for _env_id, _builder in CLASSIC.items():
    if _env_id not in gym.registry:
        gym.register(_env_id, entry_point=f"{_builder.__module__}:{_builder.__name__}", disable_env_checker=True,
                     order_enforce=False)
    NATIVE_ENVS[_env_id] = functools.partial(_native, _env_id, _builder)
