"""TabularMDP: validation, reward forms, the Bellman backup, dense/sparse agreement, the Gymnasium env view, and the
toy-text conversions (FrozenLake, Taxi, CliffWalking) checked against Gymnasium's own tables."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import thorndike as th
from thorndike.envs import toy_text
from thorndike.envs.tabular import TabularMDP, random_mdp


def hand_mdp(**kwargs) -> TabularMDP:
    """States 0, 1 and the terminal 2; two actions.

    (0, a0): 1/2 -> 0 paying 1, 1/2 -> 1 paying 2      r = 1.5
    (0, a1): -> 2 paying 5                              r = 5
    (1, a0): -> 0 paying 0                              r = 0
    (1, a1): 0.2 -> 1 paying -1, 0.8 -> 2 paying 3      r = -0.2 + 2.4 = 2.2
    """
    P = torch.zeros(3, 2, 3, dtype=torch.float64)
    R = torch.zeros(3, 2, 3, dtype=torch.float64)
    P[0, 0, 0], P[0, 0, 1], R[0, 0, 0], R[0, 0, 1] = 0.5, 0.5, 1.0, 2.0
    P[0, 1, 2], R[0, 1, 2] = 1.0, 5.0
    P[1, 0, 0] = 1.0
    P[1, 1, 1], P[1, 1, 2], R[1, 1, 1], R[1, 1, 2] = 0.2, 0.8, -1.0, 3.0
    P[2, :, 2] = 1.0
    kwargs.setdefault("terminal", [2])
    kwargs.setdefault("start", [1.0, 0.0, 0.0])
    return TabularMDP(P, R, **kwargs)


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


# ---------------------------------------------------------------- the model


def test_expected_reward_is_the_probability_weighted_reward() -> None:
    torch.testing.assert_close(hand_mdp().expected_reward(), t([[1.5, 5.0], [0.0, 2.2], [0.0, 0.0]]))


@pytest.mark.parametrize("sparse", [False, True])
def test_backup_matches_hand_computation(sparse: bool) -> None:
    mdp = hand_mdp().to_sparse() if sparse else hand_mdp()
    # Q(0,0) = 1.5 + .9 (.5*10 + .5*20) = 15; Q(0,1) = 5 + .9*0 (terminal); Q(1,0) = .9*10 = 9;
    # Q(1,1) = 2.2 + .9 (.2*20) = 5.8; the terminal's V = 100 is ignored and its Q is 0.
    Q = mdp.backup(t([10.0, 20.0, 100.0]), gamma=0.9)
    torch.testing.assert_close(Q, t([[15.0, 5.0], [9.0, 5.8], [0.0, 0.0]]))
    # next_value is the raw expectation, without terminal handling
    torch.testing.assert_close(mdp.next_value(t([10.0, 20.0, 100.0]))[1], t([10.0, 84.0]))


def test_reward_forms_r_s_and_r_sa_are_converted() -> None:
    P = hand_mdp().P
    by_state = TabularMDP(P, t([1.0, 2.0, 0.0]), terminal=[2])
    torch.testing.assert_close(by_state.expected_reward(), t([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]]))
    assert by_state.R[0, 1, 2] == 1.0  # stored as R[s, a, s'] = R[s]
    by_pair = TabularMDP(P, t([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]), terminal=[2])
    torch.testing.assert_close(by_pair.expected_reward(), t([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]))
    sparse_P = P.reshape(6, 3).to_sparse()
    sparse_pair = TabularMDP(sparse_P, t([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]), terminal=[2])
    assert sparse_pair.sparse
    torch.testing.assert_close(sparse_pair.expected_reward(), by_pair.expected_reward())
    sparse_R = TabularMDP(sparse_P, hand_mdp().R.reshape(6, 3).to_sparse(), terminal=[2])
    torch.testing.assert_close(sparse_R.expected_reward(), hand_mdp().expected_reward())


def test_from_transitions_merges_repeated_transitions_keeping_the_expected_reward() -> None:
    # Gymnasium's slippery FrozenLake lists the same next state twice when two slips hit a wall.
    mdp = TabularMDP.from_transitions(2, 1, [0, 0, 1], [0, 0, 0], [1, 1, 1], [0.5, 0.5, 1.0], [1.0, 3.0, 0.0],
                                      terminal=[1])
    assert mdp.P[0, 0, 1] == 1.0
    assert mdp.R[0, 0, 1] == 2.0  # (0.5 * 1 + 0.5 * 3) / 1
    assert mdp.expected_reward()[0, 0] == 2.0


def test_dense_and_sparse_storage_agree() -> None:
    dense = random_mdp(7, 3, n_terminal=2, branching=3, seed=4)
    sparse = dense.to_sparse()
    assert sparse.sparse and not dense.sparse
    torch.testing.assert_close(sparse.to_dense().P, dense.P)
    torch.testing.assert_close(sparse.expected_reward(), dense.expected_reward())
    V = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sparse.backup(V, 0.8), dense.backup(V, 0.8))
    deterministic = torch.tensor([0, 2, 1, 1, 0, 2, 0])
    stochastic = torch.softmax(torch.randn(7, 3, generator=torch.Generator().manual_seed(1)), 1).double()
    for policy in (deterministic, stochastic):
        (P_s, r_s), (P_d, r_d) = sparse.policy_model(policy), dense.policy_model(policy)
        torch.testing.assert_close(P_s.to_dense(), P_d)
        torch.testing.assert_close(r_s, r_d)
        torch.testing.assert_close(P_d.sum(1), torch.ones(7, dtype=torch.float64))


def test_policy_model_of_a_deterministic_policy_picks_rows() -> None:
    P_pi, r_pi = hand_mdp().policy_model(torch.tensor([0, 1, 0]))
    torch.testing.assert_close(P_pi, t([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8], [0.0, 0.0, 1.0]]))
    torch.testing.assert_close(r_pi, t([1.5, 2.2, 0.0]))


def test_random_mdp_is_valid_and_reproducible() -> None:
    a, b = random_mdp(6, 2, n_terminal=1, seed=3), random_mdp(6, 2, n_terminal=1, seed=3)
    torch.testing.assert_close(a.P, b.P)
    torch.testing.assert_close(a.P.sum(-1), torch.ones(6, 2, dtype=torch.float64))
    assert a.terminal.tolist() == [False] * 5 + [True]
    assert a.start[5] == 0 and abs(float(a.start.sum()) - 1) < 1e-12


# ---------------------------------------------------------------- validation


def test_a_row_that_does_not_sum_to_one_is_named() -> None:
    P = torch.full((4, 2, 4), 0.25, dtype=torch.float64)
    P[3, 1] = t([0.7, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"P\[3, 1, :\] sums to 0.7, not 1"):
        TabularMDP(P, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"P\[3, 1, :\] sums to 0.7, not 1"):
        TabularMDP(P.reshape(8, 4).to_sparse(), torch.zeros(4, 2))
    P[3, 1] = 0.0
    with pytest.raises(ValueError, match=r"P\[3, 1, :\] sums to 0, not 1"):
        TabularMDP(P.reshape(8, 4).to_sparse(), torch.zeros(4, 2))


def test_a_negative_probability_is_named() -> None:
    P = torch.full((3, 1, 3), 1 / 3, dtype=torch.float64)
    P[1, 0] = t([0.6, 0.5, -0.1])
    with pytest.raises(ValueError, match=r"P\[1, 0, 2\] = -0.1 is negative"):
        TabularMDP(P, torch.zeros(3))
    with pytest.raises(ValueError, match=r"P\[1, 0, 2\] = -0.1 is negative"):
        TabularMDP(P.reshape(3, 3).to_sparse(), torch.zeros(3))


def test_other_model_errors_say_what_is_wrong() -> None:
    P, R = hand_mdp().P, hand_mdp().R
    with pytest.raises(ValueError, match="start sums to 0.5, not 1"):
        TabularMDP(P, R, terminal=[2], start=[0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="start puts probability 0.5 on terminal state 2"):
        TabularMDP(P, R, terminal=[2], start=[0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match=r"R must have shape \[S, A, S\]"):
        TabularMDP(P, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"shape \[S, A, S\] with S' = S"):
        TabularMDP(torch.ones(3, 2, 4) / 4, torch.zeros(3))
    with pytest.raises(ValueError, match="gamma must be in"):
        TabularMDP(P, R, gamma=1.5)
    with pytest.raises(ValueError, match=r"next_state indices must lie in \[0, 2\)"):
        TabularMDP.from_transitions(2, 1, [0], [0], [2], [1.0], [0.0])
    with pytest.raises(ValueError, match=r"policy actions must lie in \[0, 2\)"):
        hand_mdp().policy_model(torch.tensor([0, 2, 0]))
    with pytest.raises(ValueError, match=r"policy\[1, :\] is not a probability distribution"):
        hand_mdp().policy_model(t([[1.0, 0.0], [0.6, 0.6], [0.5, 0.5]]))


# ---------------------------------------------------------------- the env view


@pytest.mark.filterwarnings("ignore:.*alternative render modes")
def test_env_view_passes_gymnasiums_checker() -> None:
    check_env(hand_mdp().copy())


def test_step_samples_the_model() -> None:
    env = hand_mdp(start=[0.25, 0.75, 0.0]).copy()
    starts, next_states, rewards = [], [], []
    env.reset(seed=0)
    for _ in range(4000):
        s, _ = env.reset()
        starts.append(s)
        if s == 0:
            s_next, reward, terminated, truncated, _ = env.step(0)
            next_states.append(s_next)
            rewards.append(reward)
            assert not terminated and not truncated
    # 3 standard errors of a frequency over 4000 (start) and ~1000 (transition) draws
    assert abs(np.mean(np.array(starts) == 1) - 0.75) < 3 * np.sqrt(0.75 * 0.25 / 4000)
    assert abs(np.mean(np.array(next_states) == 1) - 0.5) < 3 * np.sqrt(0.25 / len(next_states))
    # the reward is R(s, a, s') of the sampled s': 1 into state 0, 2 into state 1
    assert [{0: 1.0, 1: 2.0}[s] for s in next_states] == rewards


def test_terminated_on_entering_a_terminal_state_and_truncated_at_max_steps() -> None:
    env = hand_mdp(max_steps=2).copy()
    assert env.reset(seed=0) == (0, {})
    assert env.step(1)[:4] == (2, 5.0, True, False)
    with pytest.raises(RuntimeError, match=r"state 2 is terminal\); call reset"):
        env.step(0)
    env = hand_mdp(max_steps=2, start=[0.0, 1.0, 0.0]).copy()
    env.reset(seed=0)
    assert env.step(0)[:4] == (0, 0.0, False, False)  # (1, a0) -> 0 surely
    s, _, terminated, truncated, _ = env.step(0)
    assert not terminated and truncated  # (0, a0) never terminates; the second step hits max_steps
    with pytest.raises(ValueError, match=r"action must lie in \[0, 2\)"):
        env.step(2)
    with pytest.raises(RuntimeError, match="call reset"):
        hand_mdp().copy().step(0)


def test_same_seed_same_episode() -> None:
    def episode(env: TabularMDP, seed: int) -> list[int]:
        states = [env.reset(seed=seed)[0]]
        for _ in range(20):
            s, _, terminated, truncated, _ = env.step(0)
            states.append(s)
            if terminated or truncated:
                break
        return states

    mdp = random_mdp(10, 2, n_terminal=1, seed=0)
    assert episode(mdp.copy(), 7) == episode(mdp.copy(), 7)


def test_works_with_thorndike_vector_envs() -> None:
    mdp = hand_mdp()
    for spec in (mdp, lambda: mdp.copy()):
        venv = th.envs.make(spec, n_envs=3, seed=0)
        obs = venv.reset(seed=0)
        assert obs.tolist() == [0, 0, 0] and obs.dtype == torch.int64
        obs, reward, terminated, truncated, info = venv.step(torch.tensor([1, 1, 0]))
        # copies 0 and 1 exit paying 5 and restart in state 0; copy 2 is unaffected (independent copies)
        assert terminated.tolist() == [True, True, False]
        assert reward[:2].tolist() == [5.0, 5.0]
        assert info["final_obs"][:2].tolist() == [2, 2] and obs[:2].tolist() == [0, 0]
        assert info["episode_return"][:2].tolist() == [5.0, 5.0] and info["done"].tolist() == [True, True, False]
        # the checkpoint path of the vector env pickles the copies
        venv.load_state_dict(pickle.loads(pickle.dumps(venv.state_dict())))


def test_a_copy_has_its_own_state_but_shares_the_model() -> None:
    mdp = hand_mdp()
    a, b = mdp.copy(), mdp()
    a.reset(seed=0)
    a.step(1)
    b.reset(seed=0)
    assert b.step(0)[0] in (0, 1)  # b is not affected by a's episode having ended
    assert a.P is mdp.P and b.P is mdp.P
    sparse = random_mdp(5, 2, n_terminal=1, sparse=True, seed=1)
    restored = pickle.loads(pickle.dumps(sparse))
    torch.testing.assert_close(restored.backup(torch.ones(5)), sparse.backup(torch.ones(5)))


# ---------------------------------------------------------------- toy-text conversions


def gym_table(env: gym.Env) -> tuple[torch.Tensor, torch.Tensor]:
    """Gymnasium's P[s][a] as dense P [S, A, S] and expected reward r [S, A], computed directly from the lists."""
    base = env.unwrapped
    S, A = base.observation_space.n, base.action_space.n
    P = torch.zeros(S, A, S, dtype=torch.float64)
    r = torch.zeros(S, A, dtype=torch.float64)
    for s in range(S):
        for a in range(A):
            for p, s_next, reward, _ in base.P[s][a]:
                P[s, a, s_next] += p
                r[s, a] += p * reward
    return P, r


@pytest.mark.parametrize(
    ("build", "env_id", "kwargs", "n_states"),
    [
        (lambda: toy_text.frozen_lake("4x4"), "FrozenLake-v1", {"map_name": "4x4"}, 16),
        (lambda: toy_text.frozen_lake("8x8", is_slippery=False), "FrozenLake-v1",
         {"map_name": "8x8", "is_slippery": False}, 64),
        (toy_text.taxi, "Taxi-v4", {}, 500),
        (toy_text.cliff_walking, "CliffWalking-v1", {}, 48),
    ],
)
def test_toy_text_tables_match_gymnasium(build, env_id: str, kwargs: dict, n_states: int) -> None:
    mdp = build()
    env = gym.make(env_id, **kwargs)
    assert mdp.n_states == n_states  # F1 L66: FrozenLake 16 states, Taxi 500
    P, r = gym_table(env)
    torch.testing.assert_close(mdp.P, P)
    torch.testing.assert_close(mdp.expected_reward(), r)
    torch.testing.assert_close(mdp.start, torch.as_tensor(env.unwrapped.initial_state_distrib, dtype=torch.float64))


def test_frozen_lake_terminal_states_are_holes_and_goal() -> None:
    mdp = toy_text.frozen_lake("4x4")
    desc = "SFFFFHFHFFFHHFFG"
    assert torch.nonzero(mdp.terminal).squeeze(1).tolist() == [i for i, c in enumerate(desc) if c in "HG"]
    assert mdp.max_steps == 100 and toy_text.frozen_lake("8x8").max_steps == 200
    # slippery: Left from the start slips Down with 1/3, else stays (Left into the wall, or Up into the wall)
    assert mdp.P[0, 0, 4] == pytest.approx(1 / 3) and mdp.P[0, 0, 0] == pytest.approx(2 / 3)
    grid = mdp.grid
    assert (grid.width, grid.height, grid.start) == (4, 4, ((1, 4),))
    assert grid.position(15) == (4, 1) and grid.exits[(4, 1)] == 1.0 and grid.exits[(2, 3)] == 0.0
    assert grid.action_names[grid.action_directions.index((0, 1))] == "Up"


def test_taxi_terminal_states_are_the_four_successful_drop_offs() -> None:
    mdp = toy_text.taxi()
    assert (mdp.n_states, mdp.n_actions, mdp.max_steps) == (500, 6, 200)
    assert torch.nonzero(mdp.terminal).squeeze(1).tolist() == [0, 85, 410, 475]
    # state 16: taxi at R (0, 0) with the passenger aboard, destination R; dropping off pays 20 and ends
    assert mdp.P[16, 5, 0] == 1.0 and mdp.R[16, 5, 0] == 20.0


def test_cliff_walking_cliff_sends_back_to_start_without_ending() -> None:
    mdp = toy_text.cliff_walking()
    assert torch.nonzero(mdp.terminal).squeeze(1).tolist() == [47]
    right = mdp.action_names.index("Right")
    assert mdp.P[36, right, 36] == 1.0 and mdp.R[36, right, 36] == -100.0
    env = mdp.copy()
    env.reset(seed=0)
    assert env.step(right)[:4] == (36, -100.0, False, False)


def test_inconsistent_termination_is_refused() -> None:
    class Table(gym.Env):
        observation_space, action_space = gym.spaces.Discrete(3), gym.spaces.Discrete(2)
        initial_state_distrib = np.array([1.0, 0.0, 0.0])
        # entering state 2 ends the episode by action 0 but not by action 1
        P = {0: {0: [(1.0, 2, 1.0, True)], 1: [(1.0, 2, 1.0, False)]},
             1: {0: [(1.0, 1, 0.0, False)], 1: [(1.0, 1, 0.0, False)]},
             2: {0: [(1.0, 2, 0.0, True)], 1: [(1.0, 2, 0.0, True)]}}

    with pytest.raises(ValueError, match="termination is not a property of the next state"):
        toy_text.from_gymnasium(Table())
    with pytest.raises(ValueError, match="fickle_passenger"):
        toy_text.from_gymnasium("Taxi-v4", fickle_passenger=True)
