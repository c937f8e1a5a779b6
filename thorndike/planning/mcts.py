"""Monte Carlo Tree Search (MCTS) with UCB1 selection.

Lecture-notes concept: *Monte Carlo Tree Search* (F0 L389–L401, F2 L239; inventory A15, C12). Every simulation
starts from a copy of the root state and runs four stages:

1. selection: descend the tree by the UCB score ``Q(s, a) + c * sqrt(ln(N) / n)`` (N: the parent's visits, n: the
   child's); an unvisited child scores infinity, so every action is tried once before any is tried twice;
2. expansion: add exactly one new node, for an action not tried yet (memory grows by one node per simulation);
3. playout: random moves until the game ends, or, as in AlphaGo, a value function evaluates the new node instead;
4. backpropagation: every node on the path gains one visit and the playout's value.

Any :class:`~thorndike.envs.games.Simulator` works. In a two-player zero-sum game a node's Q is the mean return of
the player who moved into it, so at each level selection maximises the score of the player choosing there; in a
single-agent problem (``current_player`` always 0) Q is the mean return collected from the root on. The tree is
rebuilt from scratch at each call (F0 L401: unlike RTDP, nothing depends on initial value estimates). Nodes keep
no states: each simulation replays the tree actions on a fresh clone of the root, so transitions are assumed
deterministic (a stochastic simulator makes this an open-loop planner over action sequences).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from thorndike.envs.games import Simulator

__all__ = ["MCTSPlayer", "MCTSResult", "Node", "ValueFn", "mcts", "ucb"]

ValueFn = Callable[[Simulator], float]
"""A leaf evaluator: the expected future return of a non-terminal state for the player to move (AlphaGo's value net).
In a two-player game the opponent's value is taken to be its negative (zero-sum)."""


def ucb(q: float, c: float, parent_visits: int, child_visits: int) -> float:
    """UCB1 score ``q + c * sqrt(ln(parent_visits) / child_visits)``; infinite for an unvisited child (F0 L391)."""
    if child_visits == 0:
        return math.inf
    return q + c * math.sqrt(math.log(parent_visits) / child_visits)


class Node:
    """A tree node: the state reached by ``action``, with the statistics of the simulations through it."""

    __slots__ = ("action", "player", "children", "untried", "terminal", "visits", "value_sum")

    def __init__(self, action: int | None, player: int, untried: list[int], terminal: bool) -> None:
        self.action = action  # the move from the parent (None at the root)
        self.player = player  # who made that move: value_sum is that player's return
        self.children: list[Node] = []
        self.untried = untried  # legal actions without a child yet
        self.terminal = terminal
        self.visits = 0
        self.value_sum = 0.0

    @property
    def q(self) -> float:
        """Mean return of ``player`` over the simulations through this node (0 before any)."""
        return self.value_sum / self.visits if self.visits else 0.0

    def size(self) -> int:
        """Number of nodes in the subtree rooted here."""
        return 1 + sum(child.size() for child in self.children)


@dataclass(frozen=True)
class MCTSResult:
    """Outcome of a search: the move to play and the root statistics it was chosen from."""

    action: int  # the most visited root action (ties: higher Q, then the smaller action)
    actions: tuple[int, ...]  # every legal root action, ascending
    visits: np.ndarray  # [len(actions)] visit count of each root action (0 if never expanded)
    q_values: np.ndarray  # [len(actions)] mean return of the player to move at the root (NaN if never expanded)
    tree_size: int  # nodes in the tree, root included
    root: Node

    @property
    def policy(self) -> np.ndarray:
        """Visit counts normalised to a distribution over ``actions`` (the ExIt / AlphaZero policy target, A17)."""
        return self.visits / self.visits.sum()


class _Uniforms:
    """Uniform floats in [0, 1) from a numpy Generator, drawn in blocks: one numpy call per 256 draws."""

    __slots__ = ("rng", "block", "index")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.block: list[float] = []
        self.index = 0

    def index_below(self, n: int) -> int:
        """A uniform integer in [0, n)."""
        if self.index == len(self.block):
            self.block = self.rng.random(256).tolist()
            self.index = 0
        u = self.block[self.index]
        self.index += 1
        return int(u * n)


def mcts(
    root_state: Simulator,
    n_simulations: int,
    c: float = math.sqrt(2.0),
    value_fn: ValueFn | None = None,
    rng: np.random.Generator | int | None = None,
) -> MCTSResult:
    """Search from ``root_state`` (left unchanged) with ``n_simulations`` simulations.

    Returns the most visited root action with the root statistics it was chosen from.

    c: exploration constant of the UCB score.
    value_fn: evaluates each new non-terminal leaf instead of a random playout (None: random playouts).
    rng: numpy Generator or seed; it breaks ties between untried actions and drives the playouts.
    """
    legal = root_state.legal_actions()
    if root_state.is_terminal() or not legal:
        raise ValueError("mcts needs a state with a move to make; root_state is terminal or has no legal action")
    if n_simulations < 1:
        raise ValueError(f"n_simulations must be at least 1, got {n_simulations}")
    if c < 0:
        raise ValueError(f"exploration constant c must be >= 0, got {c}")
    uniforms = _Uniforms(np.random.default_rng(rng))
    # Q counts the return collected from the root on, so rewards earned before the search do not shift it.
    root_returns = root_state.returns()
    root = Node(None, root_state.current_player, legal, False)
    tree_size = 1
    for _ in range(n_simulations):
        state = root_state.clone()
        node = root
        path = [root]
        # 1. selection: a node with an untried action has an unvisited (infinite-UCB) child, so stop there.
        while not node.untried and not node.terminal:
            node = _select(node, c)
            state.step(node.action)
            path.append(node)
        # 2. expansion: one child per simulation, its action drawn at random among the untried ones.
        if node.untried:
            action = node.untried.pop(uniforms.index_below(len(node.untried)))
            mover = state.current_player
            state.step(action)
            terminal = state.is_terminal()
            child = Node(action, mover, [] if terminal else state.legal_actions(), terminal)
            node.children.append(child)
            path.append(child)
            tree_size += 1
        # 3. playout (or evaluation by value_fn)
        returns = _evaluate(state, value_fn, uniforms)
        # 4. backpropagation, each node scored for the player who moved into it
        for node in path:
            node.visits += 1
            node.value_sum += returns[node.player] - root_returns[node.player]
    return _result(root, tree_size)


def _select(node: Node, c: float) -> Node:
    """The child of a fully expanded node with the highest UCB score (the first one on ties)."""
    # ucb() inlined, with ln(N) taken once per node: selection is most of the work in small games.
    exploration = c * math.sqrt(math.log(node.visits))
    best, best_score = node, -math.inf
    for child in node.children:
        visits = child.visits
        score = child.value_sum / visits + exploration / math.sqrt(visits)
        if score > best_score:
            best, best_score = child, score
    return best


def _evaluate(state: Simulator, value_fn: ValueFn | None, uniforms: _Uniforms) -> tuple[float, ...]:
    """Each player's (estimated) final return from ``state``, which this may step to the end."""
    if value_fn is None:
        while not state.is_terminal():
            legal = state.legal_actions()
            state.step(legal[uniforms.index_below(len(legal))])
        return state.returns()
    returns = state.returns()
    if state.is_terminal():
        return returns
    value, to_move = float(value_fn(state)), state.current_player
    return tuple(r + (value if p == to_move else -value) for p, r in enumerate(returns))


def _result(root: Node, tree_size: int) -> MCTSResult:
    by_action = {child.action: child for child in root.children}
    actions = tuple(sorted([*by_action, *root.untried]))
    visits = np.array([by_action[a].visits if a in by_action else 0 for a in actions], dtype=np.int64)
    q_values = np.array([by_action[a].q if a in by_action else math.nan for a in actions], dtype=np.float64)
    best = max(root.children, key=lambda child: (child.visits, child.q, -child.action))
    return MCTSResult(best.action, actions, visits, q_values, tree_size, root)


class MCTSPlayer:
    """A :data:`~thorndike.envs.games.Player` that plays ``mcts(state, n_simulations, c, value_fn, rng).action``."""

    def __init__(
        self,
        n_simulations: int,
        c: float = math.sqrt(2.0),
        value_fn: ValueFn | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.n_simulations = n_simulations
        self.c = c
        self.value_fn = value_fn
        self.rng = np.random.default_rng(rng)

    def __call__(self, state: Simulator) -> int:
        return mcts(state, self.n_simulations, self.c, self.value_fn, self.rng).action
