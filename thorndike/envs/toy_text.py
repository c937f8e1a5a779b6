"""Gymnasium's toy-text environments (FrozenLake, Taxi, CliffWalking) as :class:`~thorndike.envs.tabular.TabularMDP`.

Lecture-notes concept: *the MDP of a known environment* (F1 L66: FrozenLake has 16 states, Taxi-v3 500; inventory
B9, B10, C24). Gymnasium keeps each toy-text model in ``env.unwrapped.P[s][a]``, a list of
``(probability, next_state, reward, terminated)``; this module turns that table into tensors.

Gymnasium marks termination on transitions, a TabularMDP on states: a state is terminal when some transition into
it terminates the episode (FrozenLake's holes and goal, Taxi's successful drop-off, CliffWalking's goal). The
conversion checks that this is a property of the next state for every state reachable from the start: CliffWalking's
cliff, for instance, sends the agent back to the start with -100 without ending the episode, so it must not (and
does not) become terminal. Gymnasium 1.4 registers ``Taxi-v4`` (``Taxi-v3`` is deprecated; v4 only fixed the
optional rainy and fickle variants) and ``CliffWalking-v1`` (v1 added the optional slippery variant).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.toy_text import CliffWalkingEnv, FrozenLakeEnv, TaxiEnv

from thorndike.envs.gridworld import Grid, row_major_grid
from thorndike.envs.tabular import TabularMDP

__all__ = ["cliff_walking", "frozen_lake", "from_gymnasium", "taxi", "toy_text_model"]

FROZEN_LAKE_ACTIONS = ("Left", "Down", "Right", "Up")
TAXI_ACTIONS = ("South", "North", "East", "West", "Pickup", "Dropoff")
CLIFF_WALKING_ACTIONS = ("Up", "Right", "Down", "Left")


def from_gymnasium(env: gym.Env | str, gamma: float = 0.99, **make_kwargs: Any) -> TabularMDP:
    """The TabularMDP of a Gymnasium env that exposes its model as ``unwrapped.P`` (an env, or an id for gym.make).

    ``max_steps`` is the env's time limit (``spec.max_episode_steps``), so the env view truncates where Gymnasium's
    does. Raises ValueError when termination is not a function of the next state on the reachable states, or when
    the env's dynamics are not all in its table (Taxi's ``fickle_passenger``).
    """
    if isinstance(env, str):
        env = gym.make(env, **make_kwargs)
    base = env.unwrapped
    if getattr(base, "fickle_passenger", False):
        raise ValueError("Taxi with fickle_passenger=True changes the destination outside its table P; it is not "
                         "an MDP over Taxi's 500 states")
    table = getattr(base, "P", None)
    if table is None:
        raise ValueError(f"{type(base).__name__} has no transition table 'P'; only toy-text style envs can be "
                         "converted")
    S, A = int(base.observation_space.n), int(base.action_space.n)
    transitions = [(s, a, int(s2), float(p), float(rew), bool(done))
                   for s in range(S) for a in range(A) for p, s2, rew, done in table[s][a]]
    state, action, next_state, prob, reward, done = (np.array(column) for column in zip(*transitions))
    start = np.asarray(base.initial_state_distrib, dtype=np.float64)
    terminal = _terminal_states(S, state, action, next_state, prob, done, start)
    spec = env.spec if env.spec is not None else base.spec
    return TabularMDP.from_transitions(
        S, A, state, action, next_state, prob, reward, terminal=terminal, start=start, gamma=gamma,
        max_steps=spec.max_episode_steps if spec is not None else None,
    )


def toy_text_model(env_id: str, gamma: float = 0.99, **env_kwargs: Any) -> TabularMDP:
    """The TabularMDP of ``gym.make(env_id, **env_kwargs)`` for a FrozenLake, Taxi or CliffWalking id, with its action
    names and (FrozenLake, CliffWalking) its :class:`Grid`.

    Built from the env Gymnasium makes with exactly these arguments, so the model is the table and time limit that
    env steps by (``max_episode_steps`` included). Raises ValueError for a configuration whose dynamics are not in
    the table (Taxi's ``fickle_passenger``).
    """
    env = gym.make(env_id, **env_kwargs)
    mdp = from_gymnasium(env, gamma=gamma)
    base = env.unwrapped
    if isinstance(base, FrozenLakeEnv):
        mdp.action_names = list(FROZEN_LAKE_ACTIONS)
        mdp.grid = _frozen_lake_grid(base.desc, mdp)
    elif isinstance(base, TaxiEnv):
        mdp.action_names = list(TAXI_ACTIONS)
    elif isinstance(base, CliffWalkingEnv):
        mdp.action_names = list(CLIFF_WALKING_ACTIONS)
        # The cliff cells are never occupied (stepping in sends the agent back to the start): drawn as walls.
        nrow, ncol = base.shape
        cliff = tuple(range((nrow - 1) * ncol + 1, nrow * ncol - 1))
        mdp.grid = row_major_grid(mdp, nrow, ncol, CLIFF_WALKING_ACTIONS, ((0, 1), (1, 0), (0, -1), (-1, 0)), cliff)
    return mdp


def frozen_lake(
    map_name: str = "4x4", is_slippery: bool = True, gamma: float = 0.99, desc: list[str] | None = None
) -> TabularMDP:
    """FrozenLake (``FrozenLake-v1`` / ``FrozenLake8x8-v1``; 4x4 has 16 states, 8x8 has 64), with a :class:`Grid`.

    Holes and the goal are terminal (entering the goal pays 1). Actions: Left, Down, Right, Up.
    """
    # The registered 8x8 id carries its longer time limit (200 steps instead of 100).
    env_id = "FrozenLake8x8-v1" if map_name == "8x8" and desc is None else "FrozenLake-v1"
    return toy_text_model(env_id, gamma=gamma, map_name=map_name, is_slippery=is_slippery, desc=desc)


def taxi(gamma: float = 0.99, is_rainy: bool = False) -> TabularMDP:
    """Taxi (``Taxi-v4``): 500 states = 25 taxi cells x 5 passenger places x 4 destinations, 6 actions.

    The four states reached by a correct drop-off are terminal (the others where the passenger sits at the
    destination cannot be reached from the start distribution).
    """
    return toy_text_model("Taxi-v4", gamma=gamma, is_rainy=is_rainy)


def cliff_walking(gamma: float = 0.99, is_slippery: bool = False) -> TabularMDP:
    """CliffWalking (``CliffWalking-v1``): 4x12 grid, -1 per step, -100 and back to the start for stepping into the
    cliff (not terminal), terminal at the goal. Actions: Up, Right, Down, Left."""
    return toy_text_model("CliffWalking-v1", gamma=gamma, is_slippery=is_slippery)


def _terminal_states(
    S: int,
    state: np.ndarray,
    action: np.ndarray,
    next_state: np.ndarray,
    prob: np.ndarray,
    done: np.ndarray,
    start: np.ndarray,
) -> np.ndarray:
    """States entered by a terminating transition; checked to be consistent on the states reachable from start."""
    terminal = np.zeros(S, dtype=bool)
    terminal[next_state[done & (prob > 0)]] = True
    # Breadth-first search over positive-probability transitions, never leaving a terminal state.
    order = np.argsort(state, kind="stable")
    first = np.searchsorted(state[order], np.arange(S + 1))
    reachable = np.zeros(S, dtype=bool)
    queue = deque(int(s) for s in np.flatnonzero(start > 0))
    reachable[list(queue)] = True
    while queue:
        s = queue.popleft()
        if terminal[s]:
            continue
        for i in order[first[s]:first[s + 1]]:
            if prob[i] <= 0:
                continue
            if terminal[next_state[i]] != done[i]:
                raise ValueError(
                    f"termination is not a property of the next state: from reachable state {s}, action "
                    f"{int(action[i])} enters state {int(next_state[i])} with terminated={bool(done[i])}, while other "
                    f"transitions into it say {not done[i]}"
                )
            if not reachable[next_state[i]]:
                reachable[next_state[i]] = True
                queue.append(int(next_state[i]))
    return terminal


def _frozen_lake_grid(desc: np.ndarray, mdp: TabularMDP) -> Grid:
    """FrozenLake's layout: state s = row * ncol + col; holes and goal are exits."""
    nrow, ncol = desc.shape
    return row_major_grid(mdp, nrow, ncol, FROZEN_LAKE_ACTIONS, ((-1, 0), (0, -1), (1, 0), (0, 1)))
