"""Tabular Dyna-Q (thorndike/tabular/dyna_q.py); the Dyna maze result is in test_classic_results.py."""

import numpy as np
import torch

import thorndike as th
from thorndike.envs import TabularMDP
from thorndike.tabular.dyna_q import DeterministicModel


def make(algo, env, tmp_path, **fields):
    return th.make(algo, env=env, seed=0, progress=False, tensorboard=False, pictures=False,
                   run_root=str(tmp_path), **fields)


def two_step_chain():
    """0 -> 1 -> 2 (terminal), one action; the second step pays 1."""
    state, action, next_state, prob, reward = (np.array(c) for c in
                                               zip((0, 0, 1, 1.0, 0.0), (1, 0, 2, 1.0, 1.0), (2, 0, 2, 1.0, 0.0),
                                                   strict=True))
    return TabularMDP.from_transitions(3, 1, state, action, next_state, prob, reward, terminal=[2],
                                       start=[1.0, 0.0, 0.0], gamma=0.5)


def test_model_keeps_the_last_outcome():
    model = DeterministicModel(n_runs=2, n_states=3, n_actions=2)
    s, a = torch.tensor([0, 1]), torch.tensor([1, 0])
    model.store(s, a, torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([1, 2]), torch.tensor([False, True]))
    model.store(s, a, torch.tensor([5.0, 2.0], dtype=torch.float64), torch.tensor([2, 2]), torch.tensor([True, True]))
    flat = torch.arange(2) * 6 + s * 2 + a  # index of (run, s, a) in the flat [R * S * A] view
    reward, next_state, terminated = model.outcomes(flat)
    assert reward.tolist() == [5.0, 2.0] and next_state.tolist() == [2, 2] and terminated.tolist() == [True, True]
    assert model.observed.sum().item() == 2
    assert model.observed[0, 0, 1] and model.observed[1, 1, 0]


def test_planning_draws_observed_pairs_uniformly():
    # Run 0 observed (0, 1), (2, 0), (2, 1); run 1 only (1, 1). 30000 draws: each of run 0's pairs has frequency
    # 1/3 (binomial std 0.0027, bound 0.015 = 5.5 std), nothing else is ever drawn.
    model = DeterministicModel(n_runs=2, n_states=3, n_actions=2)
    model.observed[0, 0, 1] = model.observed[0, 2, 0] = model.observed[0, 2, 1] = True
    model.observed[1, 1, 1] = True
    flat = model.sample(30_000, torch.Generator().manual_seed(0))  # [k, R] indices into the [R * S * A] view
    assert flat.shape == (30_000, 2)
    assert (flat[:, 1] == 6 + 1 * 2 + 1).all()
    freq = torch.bincount(flat[:, 0], minlength=12).double() / 30_000
    assert freq[[0, 2, 3, 6, 7, 8, 9, 10, 11]].sum() == 0
    torch.testing.assert_close(freq[[1, 4, 5]], torch.full((3,), 1 / 3, dtype=torch.float64), rtol=0, atol=0.015)


def test_planning_updates_by_hand(tmp_path):
    # Two-step chain, gamma = 0.5, alpha = 1 (Q becomes the target), 5 planning steps per real step.
    # Real step 1 (0 -> 1, r = 0): Q(0) = 0 + 0.5 * Q(1) = 0; planning can only replay (0): still 0.
    # Real step 2 (1 -> 2 terminal, r = 1): Q(1) = 1; planning draws from {(0), (1)}: one draw of (0) sets
    # Q(0) = 0 + 0.5 * Q(1) = 0.5. P(no draw of (0) in 5) = 1/32, so about 2 of 64 runs keep Q(0) = 0.
    # Without planning Q(0) stays 0 until the next episode.
    agent = make("dyna_q", two_step_chain(), tmp_path / "plan", n_runs=64, gamma=0.5, alpha=1.0, planning_steps=5)
    agent.learn(2)
    assert (agent.q[:, 1, 0] == 1.0).all()
    q0 = agent.q[:, 0, 0]
    assert set(q0.tolist()) <= {0.0, 0.5}
    assert 56 <= int((q0 == 0.5).sum()) <= 64  # binomial(64, 31/32): mean 62, std 1.4
    plain = make("dyna_q", two_step_chain(), tmp_path / "none", n_runs=64, gamma=0.5, alpha=1.0, planning_steps=0)
    plain.learn(2)
    assert (plain.q[:, 0, 0] == 0.0).all() and (plain.q[:, 1, 0] == 1.0).all()
    assert agent.learned_model.observed[:, :2, 0].all() and not agent.learned_model.observed[:, 2].any()
    # the learned model does not hide the env's: the greedy policies are still judged exactly on it
    exact = agent.exact_values()  # one action: V = (0 + 0.5 * 1, 1, 0) whatever was learned
    assert torch.equal(exact, torch.tensor([[0.5, 1.0, 0.0]], dtype=torch.float64).expand(64, 3))


def test_zero_planning_steps_is_q_learning(tmp_path):
    fields = dict(n_runs=4, alpha=0.5, epsilon=0.1, gamma=0.95)
    a = make("dyna_q", "thorndike/DynaMaze-v0", tmp_path / "a", planning_steps=0, **fields).learn(500)
    b = make("q_learning", "thorndike/DynaMaze-v0", tmp_path / "b", **fields).learn(500)
    assert torch.equal(a.q, b.q) and (a.q != 0).any()
