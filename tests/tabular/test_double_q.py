"""Tabular double Q-learning (thorndike/tabular/double_q.py); its maximisation-bias result is in
test_classic_results.py."""

import numpy as np
import torch

import thorndike as th
from thorndike.envs import TabularMDP
from thorndike.planning import q_value_iteration


def make(env, tmp_path, **fields):
    return th.make("double_q_learning", env=env, seed=0, progress=False, tensorboard=False, pictures=False,
                   run_root=str(tmp_path),
                   **fields)


def fork():
    """State 0 -> 1 -> 2 (terminal), 3 actions each; any action from 0 pays 1, from 1 pays 0."""
    rows = [(0, a, 1, 1.0, 1.0) for a in range(3)] + [(1, a, 2, 1.0, 0.0) for a in range(3)]
    rows += [(2, a, 2, 1.0, 0.0) for a in range(3)]
    state, action, next_state, prob, reward = (np.array(c) for c in zip(*rows, strict=True))
    return TabularMDP.from_transitions(3, 3, state, action, next_state, prob, reward, terminal=[2],
                                       start=[1.0, 0.0, 0.0], gamma=1.0)


def test_one_step_updates_only_the_selected_table_by_hand(tmp_path):
    # C28 / A52. Q1(1, .) = (5, 0, 0) and Q2(1, .) = (1, 3, 0) disagree on the best action in state 1.
    # gamma = 0.5, alpha = 0.5, reward 1 for the first step (state 0 -> 1):
    #   update Q1: target = 1 + 0.5 * Q2(1, argmax Q1(1, .) = 0) = 1 + 0.5 * 1 = 1.5 -> Q1(0, a) = 0.75
    #   update Q2: target = 1 + 0.5 * Q1(1, argmax Q2(1, .) = 1) = 1 + 0.5 * 0 = 1   -> Q2(0, a) = 0.5
    # (plain Q-learning on either table would give 1 + 0.5 * 5 = 3.5 or 1 + 0.5 * 3 = 2.5). The other table does
    # not change at all, and each table is picked with probability 1/2.
    R = 256
    agent = make(fork(), tmp_path, n_runs=R, gamma=0.5, alpha=0.5)
    agent.tables["q1"][:, 1] = torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64)
    agent.tables["q2"][:, 1] = torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64)
    before = {name: agent.tables[name].clone() for name in ("q1", "q2")}
    agent.learn(1)
    changed = {name: (agent.tables[name] != before[name]).flatten(1).sum(-1) for name in ("q1", "q2")}
    assert ((changed["q1"] + changed["q2"]) == 1).all()  # exactly one entry of one table per run
    first = changed["q1"] == 1
    torch.testing.assert_close(agent.tables["q1"][first, 0].amax(-1), torch.full((int(first.sum()),), 0.75,
                               dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(agent.tables["q2"][~first, 0].amax(-1), torch.full((int((~first).sum()),), 0.5,
                               dtype=torch.float64), rtol=0, atol=0)
    # binomial(256, 1/2): std 8 runs; 4 std either side
    assert 96 <= int(first.sum()) <= 160


def test_acts_on_the_mean_of_the_two_tables(tmp_path):
    agent = make(fork(), tmp_path, n_runs=2)
    agent.tables["q1"][:, 1] = torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64)
    agent.tables["q2"][:, 1] = torch.tensor([-1.0, 0.0, 1.5], dtype=torch.float64)
    # mean = (0.5, 0, 0.75): action 2 is greedy although Q1 alone would pick 0
    torch.testing.assert_close(agent.q[:, 1], torch.tensor([[0.5, 0.0, 0.75]] * 2, dtype=torch.float64))
    assert agent.greedy_policy()[:, 1].tolist() == [2, 2]
    assert agent.behaviour_q(torch.tensor([1, 1])).argmax(-1).tolist() == [2, 2]
    assert agent.act(1) == 2


def test_converges_to_q_star_off_policy(tmp_path):
    # Like Q-learning (000 L129-L136): uniformly random behaviour and alpha = 1/(updates of that table's (s, a));
    # both tables reach Q* (|Q*| <= 2 here). Measured max errors after 6000 steps, seeds 0-4: 0.057 to 0.100 per
    # table, 0.047 to 0.078 for their mean.
    mdp = th.envs.random_mdp(3, 2, gamma=0.5, seed=3)
    q_star = q_value_iteration(mdp, gamma=0.5, tol=1e-12).Q
    agent = make(mdp, tmp_path, n_runs=8, gamma=0.5, epsilon=1.0, alpha_schedule="1/n", alpha=1.0)
    agent.learn(6000)
    for name in ("q1", "q2"):
        error = (agent.tables[name] - q_star).abs().amax()
        assert error < 0.12, f"max |{name} - Q*| over 8 runs = {error:.4f}"
    assert (agent.q - q_star).abs().amax() < 0.1
    # each table's count of updates: together they are the visits, and each got about half
    first = agent.first_updates.counts
    assert ((first > 0.3 * agent.tables.visits) & (first < 0.7 * agent.tables.visits)).all()
