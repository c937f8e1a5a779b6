"""Tabular Q-learning and what every tabular learner shares (thorndike/tabular/base.py)."""


import gymnasium as gym
import pytest
import torch

import thorndike as th
from thorndike.planning import q_value_iteration, value_iteration


def make(env, tmp_path, **fields):
    return th.make("q_learning", env=env, seed=0, progress=False, run_root=tmp_path, **fields)


def test_one_update_by_hand(tmp_path):
    # C13 on a live agent: one step of the deterministic 4x4 FrozenLake from state 0, action Right (2) -> state 1,
    # reward 0; with Q(1, .) = (0, 2, 1, 0), gamma = 0.9, alpha = 0.5: Q(0, 2) <- 0 + 0.5 * (0 + 0.9 * 2 - 0) = 0.9.
    mdp = th.envs.toy_text.frozen_lake(is_slippery=False)
    agent = make(mdp, tmp_path, gamma=0.9, alpha=0.5, exploration="greedy")
    agent.tables["q"][0, 1] = torch.tensor([0.0, 2.0, 1.0, 0.0], dtype=torch.float64)
    agent.tables["q"][0, 0, 2] = 1e-9  # makes Right the greedy action in state 0
    before = agent.tables["q"].clone()
    agent.learn(1)
    changed = (agent.tables["q"] != before).nonzero().tolist()
    assert changed == [[0, 0, 2]]
    assert agent.tables["q"][0, 0, 2].item() == pytest.approx(1e-9 + 0.5 * (0.9 * 2 - 1e-9))


def test_converges_to_q_star_with_visit_count_step_sizes(tmp_path):
    # C14 (000 L129-L136): off-policy (uniformly random behaviour, epsilon = 1) with alpha_t(s, a) = 1 / n(s, a),
    # whose sum diverges while the sum of squares converges, Q-learning converges to Q* of a small MDP.
    mdp = th.envs.random_mdp(3, 2, gamma=0.5, seed=3)
    q_star = q_value_iteration(mdp, gamma=0.5, tol=1e-12).Q
    agent = make(mdp, tmp_path, n_runs=8, gamma=0.5, epsilon=1.0, alpha_schedule="1/n", alpha=1.0)
    agent.learn(20_000)
    error = (agent.q - q_star).abs().amax()
    assert error < 0.05, f"max |Q - Q*| over 8 runs = {error:.4f}"


def test_frozen_lake_greedy_policy_is_near_optimal(tmp_path):
    # The oracle: on FrozenLake 4x4 (slippery) the learned greedy policy, evaluated exactly on the model,
    # is within 0.02 of V* at the start state. 30 runs in one agent; measured: 27/30 runs within 0.02 after 60k steps.
    agent = make("FrozenLake-v1", tmp_path, n_runs=30, alpha=0.05, epsilon=0.5, log_every=5000)
    agent.learn(60_000)
    v_star = value_iteration(agent.model(), gamma=0.99).V[0]
    gap = v_star - agent.exact_values()[:, 0]
    assert (gap >= -1e-6).all()  # nothing beats V* (up to value iteration's tolerance)
    assert (gap < 0.02).double().mean() >= 0.8, f"gaps: {gap.tolist()}"
    assert gap.mean() < 0.02


def test_many_runs_are_independent_learners(tmp_path):
    agent = make("thorndike/DynaMaze-v0", tmp_path, n_runs=4, epsilon=0.1)
    agent.learn(3000)
    q = agent.q
    assert q.shape == (4, 54, 4)
    assert all(not torch.equal(q[0], q[r]) for r in range(1, 4))
    # the history knows which run finished which episode, and the counts agree with the tables' episode counters
    counts = torch.bincount(agent.history.columns["run"], minlength=4)
    assert torch.equal(counts, agent.tables.episodes)
    lengths = agent.history.matrix("length", 4, 1)
    assert lengths.shape == (4, 1)


@pytest.mark.parametrize("schedule", ["linear", "glie"])
def test_other_epsilon_schedules_follow_each_runs_episodes(tmp_path, schedule):
    agent = make("FrozenLake-v1", tmp_path, n_runs=3, epsilon=1.0, epsilon_end=0.05, epsilon_schedule=schedule,
                 epsilon_decay_episodes=50)
    agent.learn(1500)
    k = agent.tables.episodes.double()
    expected = (1.0 - 0.95 * (k / 50).clamp_max(1.0)) if schedule == "linear" else (1.0 / (1.0 + k))
    assert torch.allclose(agent.epsilon(), expected.clamp_min(0.05))
    with pytest.raises(th.ConfigError, match="epsilon_decay_episodes"):
        make("FrozenLake-v1", tmp_path, epsilon_schedule="linear")


def test_decaying_epsilon_follows_the_notes(tmp_path):
    # 000 L382: epsilon *= 0.995 per episode, floored at epsilon_end
    agent = make("FrozenLake-v1", tmp_path, n_runs=3, epsilon=1.0, epsilon_decay=0.995, epsilon_end=0.05)
    agent.learn(2000)
    expected = (0.995 ** agent.tables.episodes.double()).clamp_min(0.05)
    assert torch.allclose(agent.epsilon(), expected)
    assert (agent.tables.episodes > 0).all()


@pytest.mark.parametrize("exploration", ["boltzmann", "ucb", "greedy"])
def test_other_behaviour_policies_learn_the_deterministic_lake(tmp_path, exploration):
    # q_init = 1 is optimistic here (returns are at most 1), so even the greedy behaviour explores.
    mdp = th.envs.toy_text.frozen_lake(is_slippery=False)
    agent = make(mdp, tmp_path, n_runs=4, alpha=0.5, exploration=exploration, temperature=0.1, q_init=1.0)
    agent.learn(3000)
    v_star = value_iteration(mdp, gamma=0.99).V[0]
    assert torch.allclose(agent.exact_values()[:, 0], v_star.expand(4))


def test_evaluate_gives_each_run_its_own_copies(tmp_path):
    mdp = th.envs.toy_text.frozen_lake(is_slippery=False)
    agent = make(mdp, tmp_path, n_runs=2)
    # run 0 walks to the goal (Down, Down, Right, Right, Down, Right), run 1 walks into the wall forever (Left)
    path = {0: 1, 4: 1, 8: 2, 9: 2, 10: 1, 14: 2}
    for s, a in path.items():
        agent.tables["q"][0, s, a] = 1.0
    result = agent.evaluate(episodes=4, max_episode_steps=50)
    assert result.returns == [1.0, 0.0, 1.0, 0.0]
    assert result.lengths == [6, 50, 6, 50]  # run 1's episodes were cut at max_episode_steps


def test_gymnasium_backend_gives_the_same_kind_of_result(tmp_path):
    agent = th.make("q_learning", env="CliffWalking-v1", seed=0, progress=False, run_root=tmp_path, n_runs=3,
                    backend="gymnasium", alpha=0.5)
    agent.learn(500)
    assert isinstance(agent.envs.single_observation_space, gym.spaces.Discrete)
    assert len(agent.history) == int(agent.tables.episodes.sum())
    assert agent.q.abs().sum() > 0


def test_cli_trains_and_draws_the_value_map(tmp_path):
    from thorndike.cli import main

    main(["train", "q_learning", "--env", "FrozenLake-v1", "--steps", "3000", "--n-runs", "2",
          "--run-root", str(tmp_path), "--progress", "false"])
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "values.png").stat().st_size > 10_000
    assert (run_dir / "curve.png").exists() and (run_dir / "final.pt").exists()
    assert (run_dir / "episodes.png").stat().st_size > 10_000  # return per episode, mean over the 2 runs


@pytest.mark.slow
def test_taxi_greedy_policy_is_optimal_from_every_start(tmp_path):
    # The Taxi oracle (Gymnasium 1.4 ships Taxi-v4; v3 is deprecated, same dynamics): the greedy policy's
    # exact value equals the DP optimum at every start state. Taxi is deterministic, so alpha = 1 is safe.
    # Measured: 10/10 runs exactly optimal after 250k steps (5/10 after 100k).
    agent = make("Taxi-v4", tmp_path, n_runs=10, alpha=1.0, epsilon=0.5, log_every=10_000)
    agent.learn(250_000)
    mdp = agent.model()
    v_star = value_iteration(mdp, gamma=0.99, tol=1e-12).V
    starts = mdp.start > 0
    gap = (v_star - agent.exact_values())[:, starts]
    assert gap.abs().amax() < 1e-6, f"largest gap per run: {gap.amax(1).tolist()}"


def test_loading_an_agent_trained_on_an_mdp_object_asks_for_the_env(tmp_path):
    mdp = th.envs.toy_text.frozen_lake(is_slippery=False)
    agent = make(mdp, tmp_path, n_runs=2, pictures=False)
    agent.learn(300)
    path = agent.save(tmp_path / "a.pt")
    with pytest.raises(ValueError, match=r"pass it again: th.load\(path, env=...\)"):
        th.load(path)
    assert torch.equal(th.load(path, env=mdp, progress=False).q, agent.q)


@pytest.mark.slow
def test_sarsa_frozen_lake_greedy_policy_is_near_optimal(tmp_path):
    # The FrozenLake oracle for SARSA. SARSA learns the value of its own epsilon-greedy policy, so a large
    # epsilon biases its greedy policy (0.5: 67% of runs within 0.02) and a small one explores too little (0.1 from
    # zeros: 10%); a small epsilon with optimistic initial values (q_init = 1, above any return) does both.
    # Measured over 30 runs after 200k steps, seed 0: 93% within 0.02, mean gap 0.010.
    agent = th.make("sarsa", env="FrozenLake-v1", seed=0, progress=False, run_root=tmp_path, pictures=False,
                    n_runs=30, alpha=0.02, epsilon=0.1, q_init=1.0, log_every=10_000)
    agent.learn(200_000)
    v_star = value_iteration(agent.model(), gamma=0.99).V[0]
    gap = v_star - agent.exact_values()[:, 0]
    assert (gap >= -1e-6).all()
    assert (gap < 0.02).double().mean() >= 0.8, f"gaps: {gap.tolist()}"
    assert gap.mean() < 0.02
