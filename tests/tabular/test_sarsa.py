"""The SARSA family (thorndike/tabular/sarsa.py) and the online n-step buffer (thorndike/core/n_step.py)."""

import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.core.n_step import NStepBuffer
from thorndike.core.returns import n_step_targets
from thorndike.envs import TabularMDP


def make(algo, env, tmp_path, **fields):
    return th.make(algo, env=env, seed=0, progress=False, tensorboard=False, pictures=False,
                   run_root=str(tmp_path), **fields)


def deterministic_mdp(n_states, n_actions, edges, terminal, start=0, max_steps=None, gamma=1.0):
    """A deterministic TabularMDP from {(s, a): (s', r)}; terminal states loop on themselves."""
    rows = [(s, a, s2, 1.0, r) for (s, a), (s2, r) in edges.items()]
    rows += [(s, a, s, 1.0, 0.0) for s in terminal for a in range(n_actions)]
    state, action, next_state, prob, reward = (np.array(c) for c in zip(*rows, strict=True))
    start_dist = np.zeros(n_states)
    start_dist[start] = 1.0
    return TabularMDP.from_transitions(n_states, n_actions, state, action, next_state, prob, reward,
                                       terminal=terminal, start=start_dist, gamma=gamma, max_steps=max_steps)


def chain(max_steps=None):
    """0 -> 1 -> 2 -> 3 -> 4 (terminal), one action, rewards 1, 2, 3, 4."""
    edges = {(s, 0): (s + 1, float(s + 1)) for s in range(4)}
    return deterministic_mdp(5, 1, edges, terminal=[4], max_steps=max_steps)


def fork():
    """State 0 -> 1 -> 2 (terminal), 3 actions each; any action from 0 pays 1, from 1 pays 0."""
    edges = {(0, a): (1, 1.0) for a in range(3)} | {(1, a): (2, 0.0) for a in range(3)}
    return deterministic_mdp(3, 3, edges, terminal=[2])


# ---------------------------------------------------------------- the n-step buffer


def b(x):
    return torch.tensor(x, dtype=torch.bool)


def test_buffer_targets_by_hand():
    # One run, n = 2, gamma = 0.5, bootstrap B = 10 at every step. Rewards 1, 2, 3 then a termination after 4.
    buffer = NStepBuffer(2, 1)
    targets = []
    for step, r in enumerate([1.0, 2.0, 3.0, 4.0]):
        buffer.push(torch.tensor([step]), torch.tensor([0]), torch.tensor([r], dtype=torch.float64))
        done = b([step == 3])
        for u in buffer.updates(torch.tensor([10.0], dtype=torch.float64), done, done, 0.5):
            if u.active.item():
                targets.append((u.states.item(), u.target.item()))
        buffer.end_episodes(done)
    # step 0: nothing (1 entry, window not full); step 1: s0 <- 1 + .5*2 + .25*10 = 4.5;
    # step 2: s1 <- 2 + .5*3 + .25*10 = 6; step 3 terminates: s2 <- 3 + .5*4 = 5, then s3 <- 4 (no bootstrap)
    assert targets == [(0, 4.5), (1, 6.0), (2, 5.0), (3, 4.0)]
    assert buffer.length.tolist() == [0]


def test_buffer_matches_the_offline_n_step_targets():
    # Random rollout of 3 runs with terminations and truncations, a fixed bootstrap per step: every window the
    # online buffer completes equals returns.n_step_targets at its first step (the offline oracle).
    g = torch.Generator().manual_seed(0)
    T, R, n, gamma = 40, 3, 3, 0.9
    rewards = torch.randn(T, R, generator=g, dtype=torch.float64)
    next_values = torch.randn(T, R, generator=g, dtype=torch.float64)
    terminated = torch.rand(T, R, generator=g) < 0.1
    truncated = ~terminated & (torch.rand(T, R, generator=g) < 0.1)
    expected = n_step_targets(rewards, next_values, terminated, truncated, gamma, n)
    buffer = NStepBuffer(n, R)
    got = torch.full((T, R), float("nan"), dtype=torch.float64)
    for t in range(T):
        # the "state" stored is the step index, so each update says which step it belongs to
        buffer.push(torch.full((R,), t), torch.zeros(R, dtype=torch.int64), rewards[t])
        done = terminated[t] | truncated[t]
        for u in buffer.updates(next_values[t], terminated[t], done, gamma):
            runs = u.active.nonzero().squeeze(1)
            assert torch.isnan(got[u.states[runs], runs]).all(), "a step was updated twice"
            got[u.states[runs], runs] = u.target[runs]
        buffer.end_episodes(done)
    updated = ~torch.isnan(got)
    # every step is updated except the last n - 1 of a run's unfinished final episode
    assert updated[: T - n + 1].all()
    torch.testing.assert_close(got[updated], expected[updated], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- n-step agents on a scripted episode


@pytest.mark.parametrize("algo", ["n_step_sarsa", "n_step_q_learning"])
def test_n_step_updates_by_hand(tmp_path, algo):
    # Chain 0 -> 1 -> 2 -> 3 -> 4 (terminal) with rewards 1, 2, 3, 4; gamma = 0.5, alpha = 1 (Q becomes the target),
    # q_init = 10. n = 2, one episode (4 steps):
    #   step 1: Q(0) = 1 + .5*2 + .25*Q(2) = 2 + 2.5 = 4.5
    #   step 2: Q(1) = 2 + .5*3 + .25*Q(3) = 3.5 + 2.5 = 6
    #   step 3 (terminal): Q(2) = 3 + .5*4 = 5 and Q(3) = 4, no bootstrap
    agent = make(algo, chain(), tmp_path, n=2, gamma=0.5, alpha=1.0, q_init=10.0, epsilon=0.0)
    agent.learn(4)
    assert agent.q[0, :, 0].tolist() == [4.5, 6.0, 5.0, 4.0, 10.0]


@pytest.mark.parametrize("algo", ["n_step_sarsa", "n_step_q_learning"])
def test_n_step_truncation_bootstraps_from_the_last_state(tmp_path, algo):
    # The same chain cut by a time limit of 3 steps in state 3 (not terminal), n = 2:
    #   step 1: Q(0) = 4.5 as above
    #   step 2 (truncated): Q(1) = 2 + .5*3 + .25*Q(3) = 6 and Q(2) = 3 + .5*Q(3) = 3 + 5 = 8
    agent = make(algo, chain(max_steps=3), tmp_path, n=2, gamma=0.5, alpha=1.0, q_init=10.0)
    agent.learn(3)
    assert agent.q[0, :, 0].tolist() == [4.5, 6.0, 8.0, 10.0, 10.0]


def test_n_longer_than_the_episode_gives_monte_carlo_returns(tmp_path):
    # n = 5 > 4 steps: all updates happen at the termination, each toward its discounted return (gamma = .5):
    # G0 = 1 + .5*2 + .25*3 + .125*4 = 3.25, G1 = 2 + 1.5 + 1 = 4.5, G2 = 3 + 2 = 5, G3 = 4
    agent = make("n_step_sarsa", chain(), tmp_path, n=5, gamma=0.5, alpha=1.0, q_init=10.0)
    agent.learn(3)
    assert agent.q[0, :, 0].tolist() == [10.0] * 5  # nothing before the episode ends
    agent.learn(4)
    assert agent.q[0, :, 0].tolist() == [3.25, 4.5, 5.0, 4.0, 10.0]


@pytest.mark.parametrize(("n_step", "one_step"), [("n_step_sarsa", "sarsa"), ("n_step_q_learning", "q_learning")])
def test_n_equal_1_is_the_one_step_method(tmp_path, n_step, one_step):
    # C19: with n = 1 the n-step methods make the same updates with the same random numbers: identical tables.
    fields = dict(n_runs=8, alpha=0.5, epsilon=0.1, gamma=1.0)
    a = make(n_step, "CliffWalking-v1", tmp_path / "a", n=1, **fields).learn(600)
    b_ = make(one_step, "CliffWalking-v1", tmp_path / "b", **fields).learn(600)
    assert torch.equal(a.q, b_.q)
    assert (a.q != 0).any()
    assert torch.equal(a.tables.episodes, b_.tables.episodes)


def test_n_step_q_learning_is_biased_off_policy(tmp_path):
    # INVENTORY E21: the notes call all n-step methods on-policy; n-step Q-learning as written (003 L338) learns
    # from the behaviour's rewards for n - 1 steps with no correction. Two-step MDP: s0 --go--> s1 (reward 0); in s1
    # "good" pays +1, "bad" pays -1, then the episode ends (gamma = 1). Q*(s0, .) = 1. Under a uniformly random
    # behaviour (epsilon = 1) the 2-step target of (s0, a) is r_0 + r_1 with a_1 random: E = 0.5*1 + 0.5*(-1) = 0,
    # so n-step Q-learning's fixed point is Q(s0, .) = 0, not Q*. One-step Q-learning bootstraps with the max and
    # finds 1. alpha = 1/n(s, a) makes each estimate the average of its targets (~250 per entry per run here).
    edges = {(0, 0): (1, 0.0), (0, 1): (1, 0.0), (1, 0): (2, 1.0), (1, 1): (2, -1.0)}
    mdp = deterministic_mdp(3, 2, edges, terminal=[2])
    fields = dict(n_runs=16, epsilon=1.0, alpha=1.0, alpha_schedule="1/n", gamma=1.0)
    two_step = make("n_step_q_learning", mdp, tmp_path / "n2", n=2, **fields).learn(1000)
    one_step = make("n_step_q_learning", mdp, tmp_path / "n1", n=1, **fields).learn(1000)
    # Q(s0, .) over 16 runs x 2 actions: means of ~250 +-1 targets each, std ~ 1/sqrt(250) = 0.063 per entry,
    # 0.011 for the mean of the 32 entries
    assert two_step.q[:, 0].mean().abs() < 0.05
    assert two_step.q[:, 0].abs().amax() < 0.3
    assert one_step.q[:, 0].sub(1.0).abs().amax() < 0.02  # Q* = 1 (Q(s1, good) = 1 exactly after its first update)
    torch.testing.assert_close(two_step.q[:, 1], torch.tensor([1.0, -1.0], dtype=torch.float64).expand(16, 2))


# ---------------------------------------------------------------- SARSA and expected SARSA by hand


def test_sarsa_bootstraps_on_the_action_taken_next(tmp_path):
    # fork: Q(1, .) = (1, 2, 4), gamma = 0.9, alpha = 0.5, epsilon = 0.5 (so a' varies between runs).
    # After one step: Q(0, a0) = 0.5 * (1 + 0.9 * Q(1, a')) for the a' drawn before the update; on the second step
    # that a' is the action taken in state 1, whose entry moves toward the terminal reward 0: Q(1, a') halves.
    agent = make("sarsa", fork(), tmp_path, n_runs=64, gamma=0.9, alpha=0.5, epsilon=0.5)
    q1 = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    agent.tables["q"][:, 1] = q1
    agent.learn(1)
    a_next = agent.pending_action.value.clone()
    runs = torch.arange(64)
    a0 = agent.tables["q"][:, 0].argmax(-1)  # the only non-zero entry of each run's state 0
    torch.testing.assert_close(agent.tables["q"][runs, 0, a0], 0.5 * (1 + 0.9 * q1[a_next]), rtol=0, atol=1e-15)
    assert len(set(a_next.tolist())) == 3  # not always the greedy one
    agent.learn(2)
    expected = q1.expand(64, 3).clone()
    expected[runs, a_next] /= 2
    torch.testing.assert_close(agent.tables["q"][:, 1], expected, rtol=0, atol=0)


def test_expected_sarsa_update_by_hand(tmp_path):
    # fork: Q(1, .) = (1, 2, 4), epsilon = 0.3 over 3 actions: pi(.|1) = (0.1, 0.1, 0.1 + 0.7) = (0.1, 0.1, 0.8),
    # E_pi Q(1, .) = 0.1*1 + 0.1*2 + 0.8*4 = 3.5. Target of the first step = 1 + 0.9 * 3.5 = 4.15;
    # with alpha = 0.5: Q(0, a0) = 0.5 * 4.15 = 2.075 whatever a0 was. With epsilon = 0 the expectation is the max:
    # 1 + 0.9 * 4 = 4.6 -> 2.3, Q-learning's update.
    for epsilon, value in ((0.3, 2.075), (0.0, 2.3)):
        agent = make("expected_sarsa", fork(), tmp_path / str(epsilon), n_runs=16, gamma=0.9, alpha=0.5,
                     epsilon=epsilon)
        agent.tables["q"][:, 1] = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
        agent.learn(1)
        q0 = agent.tables["q"][:, 0]
        assert ((q0 != 0).sum(-1) == 1).all()  # one entry per run changed
        torch.testing.assert_close(q0.amax(-1), torch.full((16,), value, dtype=torch.float64), rtol=0, atol=1e-12)


def test_expected_sarsa_with_epsilon_0_is_q_learning(tmp_path):
    # C19: a greedy pi makes the expectation a max, so the whole run equals Q-learning's (same random numbers; the
    # expectation over tied best actions averages equal values, hence allclose rather than equal).
    mdp = th.envs.random_mdp(6, 3, n_terminal=1, gamma=0.9, seed=1)
    fields = dict(n_runs=8, alpha=0.3, epsilon=0.0, gamma=0.9)
    a = make("expected_sarsa", mdp, tmp_path / "a", **fields).learn(500)
    b_ = make("q_learning", mdp, tmp_path / "b", **fields).learn(500)
    torch.testing.assert_close(a.q, b_.q, rtol=0, atol=1e-12)
    assert (a.q != 0).any()


def test_expected_sarsa_is_on_policy_for_its_epsilon_greedy_policy(tmp_path):
    # The fixed point of expected SARSA with a fixed behaviour (epsilon = 1: uniform) is Q^uniform, not Q*: on the
    # two-step MDP above Q^uniform(s0, .) = 0.5*1 + 0.5*(-1) = 0 while Q*(s0, .) = 1 (cf. the notes' L321, which
    # list it as off-policy: it is only when its pi differs from the behaviour).
    edges = {(0, 0): (1, 0.0), (0, 1): (1, 0.0), (1, 0): (2, 1.0), (1, 1): (2, -1.0)}
    mdp = deterministic_mdp(3, 2, edges, terminal=[2])
    agent = make("expected_sarsa", mdp, tmp_path, n_runs=4, epsilon=1.0, alpha=0.5, gamma=1.0).learn(200)
    # Q(s1, .) = (1, -1) after a few updates each (error 0.5^k); Q(s0, .) = E Q(s1, .) = 0 up to that error
    torch.testing.assert_close(agent.q[:, 0], torch.zeros(4, 2, dtype=torch.float64), rtol=0, atol=1e-6)
