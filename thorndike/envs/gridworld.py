"""Gridworlds as :class:`~thorndike.envs.tabular.TabularMDP` problems: the notes' 4x3 grid, the discount/noise exercise
grid, maps written in ASCII, and open n x n grids for benchmarks.

Lecture-notes concept: *the gridworld* (F0 L20-L36, L62, L72; inventory B1). Coordinates are the notes': x is the
column counted from 1 at the left, y the row counted from 1 at the bottom, so the classic grid has its +1 exit at
(4, 3), its -1 exit at (4, 2), a wall at (2, 2) and the start at (1, 1). Actions are N, E, S, W (indices 0-3).

Dynamics: an action moves one cell in its direction with probability 1 - noise and slips to each perpendicular
direction with probability noise / 2; a move into a wall or off the grid stays put. Every move pays
``living_reward``. An exit cell ends the episode: any action taken there moves to one absorbing terminal state and
pays the exit's reward, so V*(exit) = its reward (the notes' table has V*(4, 3) = 1 and V*(4, 2) = -1).

ASCII maps list rows from the top, cells separated by spaces: ``.`` open, ``#`` wall, ``S`` start (open), and a
number for an exit paying that reward::

    . . . +1
    . # . -1
    S . . .
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.envs.tabular import TabularMDP

__all__ = ["ACTIONS", "CLASSIC_MAP", "DISCOUNT_GRID_MAP", "Grid", "classic", "discount_grid", "from_ascii",
           "intended_path", "open_grid", "row_major_grid"]

ACTIONS = ("N", "E", "S", "W")
# (dx, dy) of each action in the notes' coordinates (y grows upwards).
_DIRECTIONS = ((0, 1), (1, 0), (0, -1), (-1, 0))

CLASSIC_MAP = """
. . . +1
. # . -1
S . . .
"""

# The discount/noise exercise (F0 L62): a near +1 exit, a far +10 exit, and a cliff of -10 exits along the bottom.
DISCOUNT_GRID_MAP = """
.   .   .   .   .
.   #   .   .   .
.   #   1   #   10
S   .   .   .   .
-10 -10 -10 -10 -10
"""


@dataclass(frozen=True, eq=False)
class Grid:
    """The layout of a grid problem, as a picture of it needs it.

    ``xy[s]`` is the (x, y) cell of state s (1-based, y up), or (0, 0) for a state without a cell (the absorbing
    terminal). ``exits`` maps each cell that ends the episode to its reward; ``action_directions[a]`` is the
    (dx, dy) that action a intends.
    """

    width: int
    height: int
    xy: Tensor
    walls: tuple[tuple[int, int], ...]
    exits: dict[tuple[int, int], float]
    start: tuple[tuple[int, int], ...]
    action_names: tuple[str, ...]
    action_directions: tuple[tuple[int, int], ...]

    def state(self, x: int, y: int) -> int:
        """The state index of cell (x, y)."""
        hits = torch.nonzero((self.xy[:, 0] == x) & (self.xy[:, 1] == y))
        if hits.numel() == 0:
            raise KeyError(f"no state at cell ({x}, {y}) (a wall, or outside the {self.width}x{self.height} grid)")
        return int(hits[0])

    def position(self, s: int) -> tuple[int, int] | None:
        """The (x, y) cell of state s, or None for a state without a cell."""
        x, y = (int(v) for v in self.xy[s])
        return None if x == 0 else (x, y)


def from_ascii(
    ascii_map: str,
    noise: float = 0.2,
    living_reward: float = 0.0,
    gamma: float = 0.9,
    max_steps: int | None = None,
    sparse: bool | None = None,
) -> TabularMDP:
    """A gridworld from an ASCII map (rows from the top; ``.`` open, ``#`` wall, ``S`` start, a number = exit)."""
    rows = [line.split() for line in ascii_map.strip("\n").splitlines() if line.strip()]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("an ASCII map needs at least one row and the same number of cells in every row")
    height, width = len(rows), len(rows[0])
    wall = torch.zeros(height, width, dtype=torch.bool)
    is_exit = torch.zeros(height, width, dtype=torch.bool)
    exit_reward = torch.zeros(height, width, dtype=torch.float64)
    start = torch.zeros(height, width, dtype=torch.bool)
    for i, row in enumerate(rows):
        for j, token in enumerate(row):
            if token == "#":
                wall[i, j] = True
            elif token == "S":
                start[i, j] = True
            elif token != ".":
                try:
                    exit_reward[i, j] = float(token)
                except ValueError:
                    raise ValueError(f"unknown cell {token!r} at (x={j + 1}, y={height - i}); use '.', '#', 'S' "
                                     "or a number (an exit paying that reward)") from None
                is_exit[i, j] = True
    return _build(wall, is_exit, exit_reward, start, noise, living_reward, gamma, max_steps, sparse)


def classic(
    noise: float = 0.2, living_reward: float = 0.0, gamma: float = 0.9, max_steps: int | None = None
) -> TabularMDP:
    """The notes' 4x3 gridworld: wall at (2, 2), +1 exit at (4, 3), -1 exit at (4, 2), start at (1, 1)."""
    return from_ascii(CLASSIC_MAP, noise=noise, living_reward=living_reward, gamma=gamma, max_steps=max_steps)


def discount_grid(
    noise: float = 0.2, living_reward: float = 0.0, gamma: float = 0.9, max_steps: int | None = None
) -> TabularMDP:
    """The discount/noise exercise (F0 L62): start (1, 2), +1 exit at (3, 3), +10 exit at (5, 3), and -10 exits
    along the bottom row. Which exit, and whether to walk beside the cliff, depends on gamma, noise and the living
    reward."""
    return from_ascii(DISCOUNT_GRID_MAP, noise=noise, living_reward=living_reward, gamma=gamma, max_steps=max_steps)


def open_grid(
    n: int,
    noise: float = 0.2,
    living_reward: float = 0.0,
    gamma: float = 0.99,
    sparse: bool | None = None,
) -> TabularMDP:
    """An n x n grid without walls: start at (1, 1), a +1 exit at (n, n); n*n + 1 states (the last is terminal)."""
    if n < 2:
        raise ValueError(f"an open grid needs n >= 2, got {n}")
    wall = torch.zeros(n, n, dtype=torch.bool)
    is_exit = torch.zeros(n, n, dtype=torch.bool)
    exit_reward = torch.zeros(n, n, dtype=torch.float64)
    start = torch.zeros(n, n, dtype=torch.bool)
    is_exit[0, n - 1], exit_reward[0, n - 1], start[n - 1, 0] = True, 1.0, True
    return _build(wall, is_exit, exit_reward, start, noise, living_reward, gamma, None, sparse)


def intended_path(mdp: TabularMDP, policy: Tensor, max_length: int = 1000) -> list[tuple[int, int]]:
    """The cells visited from the start cell when every action of ``policy`` [S] moves where it intends (no slips),
    up to and including the first exit cell (or until a cell repeats, or ``max_length`` cells)."""
    grid = _grid_of(mdp)
    if len(grid.start) != 1:
        raise ValueError("intended_path needs a grid with exactly one start cell")
    walls = set(grid.walls)
    cell = grid.start[0]
    path = [cell]
    while cell not in grid.exits and len(path) < max_length:
        dx, dy = grid.action_directions[int(policy[grid.state(*cell)])]
        x, y = cell[0] + dx, cell[1] + dy
        if 1 <= x <= grid.width and 1 <= y <= grid.height and (x, y) not in walls:
            cell = (x, y)
        if cell in path:
            break
        path.append(cell)
    return path


def row_major_grid(
    mdp: TabularMDP,
    nrow: int,
    ncol: int,
    action_names: tuple[str, ...],
    action_directions: tuple[tuple[int, int], ...],
    walls: tuple[int, ...] = (),
) -> Grid:
    """The layout of a grid env whose state is ``row * ncol + col`` (row 0 at the top), as Gymnasium's toy-text
    envs number them: x = col + 1, y = nrow - row. Terminal states are exits showing the reward for entering them;
    states in ``walls`` are drawn as walls; start cells are those ``mdp.start`` puts mass on."""
    states = torch.arange(nrow * ncol)
    xy = torch.stack([states % ncol + 1, nrow - states // ncol], 1)
    cell = {s: (int(xy[s, 0]), int(xy[s, 1])) for s in range(nrow * ncol)}
    arrays = mdp.transition_arrays()
    entering: dict[int, float] = {}  # the reward for entering each terminal state (any transition into it)
    for row in range(mdp.n_states * mdp.n_actions):
        for k in range(arrays["crow"][row], arrays["crow"][row + 1]):
            s_next = int(arrays["cols"][k])
            if mdp.terminal[s_next] and not mdp.terminal[row // mdp.n_actions]:
                entering.setdefault(s_next, float(arrays["rewards"][k]))
    return Grid(
        width=ncol,
        height=nrow,
        xy=xy,
        walls=tuple(cell[s] for s in walls),
        exits={cell[s]: entering.get(s, 0.0) for s in range(nrow * ncol) if mdp.terminal[s]},
        start=tuple(cell[s] for s in range(nrow * ncol) if mdp.start[s] > 0),
        action_names=tuple(action_names),
        action_directions=tuple(action_directions),
    )


def _grid_of(mdp: TabularMDP) -> Grid:
    if mdp.grid is None:
        raise ValueError("this MDP has no grid layout")
    return mdp.grid


def _build(
    wall: Tensor,
    is_exit: Tensor,
    exit_reward: Tensor,
    start: Tensor,
    noise: float,
    living_reward: float,
    gamma: float,
    max_steps: int | None,
    sparse: bool | None,
) -> TabularMDP:
    """The TabularMDP of a grid given as [height, width] masks in reading order (row 0 is the top, y = height)."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise}")
    height, width = wall.shape
    if (start & (wall | is_exit)).any():
        raise ValueError("the start cell must be an open cell, not a wall or an exit")
    rows, cols = torch.nonzero(~wall, as_tuple=True)  # states in reading order
    n_cells = rows.numel()
    has_exit = bool(is_exit.any())
    S, A = n_cells + int(has_exit), len(ACTIONS)
    terminal_state = n_cells  # only exists when the grid has an exit
    index = torch.full((height, width), -1, dtype=torch.int64)
    index[rows, cols] = torch.arange(n_cells)

    # Where a move in each direction lands from each cell: the neighbour, or the cell itself when blocked.
    landing = []
    for dx, dy in _DIRECTIONS:
        r, c = rows - dy, cols + dx  # y grows upwards, array rows grow downwards
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        target = torch.full_like(rows, -1)
        target[inside] = index[r[inside], c[inside]]
        landing.append(torch.where(target >= 0, target, torch.arange(n_cells)))

    cell_exit = is_exit[rows, cols]
    movers = torch.nonzero(~cell_exit).squeeze(1)
    exits = torch.nonzero(cell_exit).squeeze(1)
    parts: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = []
    for a in range(A):
        # Intended direction with 1 - noise, each perpendicular one with noise / 2.
        for d, p in ((a, 1.0 - noise), ((a + 1) % 4, noise / 2), ((a + 3) % 4, noise / 2)):
            parts.append((movers, torch.full_like(movers, a), landing[d][movers],
                          torch.full(movers.shape, p, dtype=torch.float64),
                          torch.full(movers.shape, float(living_reward), dtype=torch.float64)))
        if has_exit:
            parts.append((exits, torch.full_like(exits, a), torch.full_like(exits, terminal_state),
                          torch.ones(exits.shape, dtype=torch.float64), exit_reward[rows[exits], cols[exits]]))
            one = torch.tensor([terminal_state])
            parts.append((one, torch.tensor([a]), one, torch.ones(1, dtype=torch.float64),
                          torch.zeros(1, dtype=torch.float64)))
    state, action, next_state, prob, reward = (torch.cat(column) for column in zip(*parts))

    xy = torch.zeros(S, 2, dtype=torch.int64)
    xy[:n_cells, 0], xy[:n_cells, 1] = cols + 1, height - rows
    start_states = index[start]
    start_dist = torch.zeros(S, dtype=torch.float64)
    if start_states.numel():
        start_dist[start_states] = 1.0 / start_states.numel()
    else:
        start_dist[movers] = 1.0 / max(movers.numel(), 1)

    def cell(i: int, j: int) -> tuple[int, int]:
        return (j + 1, height - i)

    grid = Grid(
        width=width,
        height=height,
        xy=xy,
        walls=tuple(cell(int(i), int(j)) for i, j in torch.nonzero(wall)),
        exits={cell(int(i), int(j)): float(exit_reward[i, j]) for i, j in torch.nonzero(is_exit)},
        start=tuple(cell(int(i), int(j)) for i, j in torch.nonzero(start)),
        action_names=ACTIONS,
        action_directions=_DIRECTIONS,
    )
    return TabularMDP.from_transitions(
        S, A, state, action, next_state, prob, reward, sparse=sparse,
        terminal=[terminal_state] if has_exit else None, start=start_dist, gamma=gamma, max_steps=max_steps,
        action_names=ACTIONS, grid=grid,
    )


def format_values(mdp: TabularMDP, V: Tensor, policy: Tensor | None = None, digits: int = 3) -> str:
    """V laid out as the grid (top row first, x and y labelled as in the notes); walls are ``#``, exits show
    ``exit+1``; with ``policy``, each cell also shows its greedy action's name."""
    grid = mdp.grid
    if grid is None:
        raise ValueError("format_values needs a grid MDP (one with a .grid)")
    cells = {grid.position(s): s for s in range(mdp.n_states) if grid.position(s) is not None}
    rows = []
    for y in range(grid.height, 0, -1):
        row = []
        for x in range(1, grid.width + 1):
            s = cells.get((x, y))
            if (x, y) in grid.walls or s is None:
                text = "#"
            elif (x, y) in grid.exits:
                text = f"exit{grid.exits[(x, y)]:+g}"
            else:
                text = f"{float(V[s]):.{digits}f}"
                if policy is not None:
                    text += f" {grid.action_names[int(policy[s])]}"
            row.append(text)
        rows.append(row)
    width = max(len(t) for row in rows for t in row)
    lines = [f"y={grid.height - i:<2} " + " ".join(t.rjust(width) for t in row) for i, row in enumerate(rows)]
    lines.append("     " + " ".join(f"x={x}".rjust(width) for x in range(1, grid.width + 1)))
    return "\n".join(lines)
