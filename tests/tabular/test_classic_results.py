"""Sutton and Barto's classic tabular control results, each from many runs batched in one agent.

- CliffWalking (example 6.6): SARSA's greedy path keeps away from the cliff, Q-learning's walks along its edge
  (the optimal 13 steps), and SARSA's online return is the higher one (003 L305-L321: on- vs off-policy).
- Maximisation bias (example 6.7): Q-learning goes left from A far more often than double Q-learning (003 L423-L459).
- Dyna maze (figure 8.2): planning steps cut the episodes needed to reach the shortest path (003 L1470 names Dyna-Q).

The figures are drawn by benchmarks/tabular_cliff_walking.py, tabular_maximization_bias.py and tabular_dyna_maze.py.
Fast tests use fewer steps (or 5 planning steps instead of 50); the faithful versions are marked slow.
"""

import pytest

import thorndike as th

CLIFF = dict(alpha=0.5, epsilon=0.1, gamma=1.0)  # example 6.6
BIAS = dict(alpha=0.1, epsilon=0.1, gamma=1.0)  # example 6.7
MAZE = dict(alpha=0.1, epsilon=0.1, gamma=0.95)  # figure 8.2

# CliffWalking cells are row * 12 + column (4 x 12); start (3, 0) = 36, goal (3, 11) = 47, cliff (3, 1..10).
# Q-learning's path: up, eleven steps right along row 2 (the cliff edge), down: 13 steps.
EDGE_PATH = [36, *range(24, 36), 47]
# The safe path SARSA learns (figure 6.4): up to the top row, along it, down the last column: 17 steps.
TOP_PATH = [36, 24, 12, 0, *range(1, 12), 23, 35, 47]



def make(algo, env, tmp_path, seed=0, **fields):
    return th.make(algo, env=env, seed=seed, progress=False, tensorboard=False, pictures=False, run_root=str(tmp_path),
                   log_every=100_000, **fields)


def greedy_path(policy, start=36, goal=47, max_len=60):
    """The cells a greedy policy [S] visits on the deterministic CliffWalking model (cut at max_len steps)."""
    successor = th.envs.tabular_model("CliffWalking-v1").P.argmax(-1)  # [S, A]: the one next state
    path = [start]
    while path[-1] != goal and len(path) <= max_len:
        path.append(int(successor[path[-1], policy[path[-1]]]))
    return path


def away_from_edge(path):
    """Whether a path never uses the cliff edge (row 2) between columns 1 and 10."""
    return all(cell // 12 != 2 for cell in path if 1 <= cell % 12 <= 10)


def cliff_results(tmp_path, n_runs, episodes, seed=0):
    """Per algorithm, after every run finished ``episodes`` episodes: the greedy path of the run-averaged Q, per-run
    path facts and the online returns ``[R, episodes]``."""
    out = {}
    for algo in ("sarsa", "q_learning"):
        agent = make(algo, "CliffWalking-v1", tmp_path / algo, seed=seed, n_runs=n_runs, **CLIFF)
        agent.learn_episodes(episodes, chunk=1000)
        paths = [greedy_path(p) for p in agent.greedy_policy().tolist()]
        out[algo] = dict(
            mean_path=greedy_path(agent.q.mean(0).argmax(-1).tolist()),
            away=sum(map(away_from_edge, paths)) / n_runs,
            edge=sum(p == EDGE_PATH for p in paths) / n_runs,
            returns=agent.history.matrix("return", n_runs, episodes),
        )
    return out


def test_cliff_walking_sarsa_is_safe_and_q_learning_walks_the_edge(tmp_path):
    # Fast variant: 50 runs, 80 episodes. Measured (seeds 0-6): the run-averaged greedy paths are TOP_PATH and
    # EDGE_PATH for every seed; 70-84% of SARSA runs keep away from the edge, 98-100% of Q-learning runs take
    # EDGE_PATH; online return over episodes 41-80: SARSA -33.4 to -36.8, Q-learning -46.1 to -51.6 (gap 11 to 18).
    r = cliff_results(tmp_path, n_runs=50, episodes=80)
    assert r["sarsa"]["mean_path"] == TOP_PATH
    assert r["q_learning"]["mean_path"] == EDGE_PATH
    assert r["sarsa"]["away"] >= 0.55 and r["sarsa"]["edge"] == 0
    assert r["q_learning"]["edge"] >= 0.9
    sarsa, q = r["sarsa"]["returns"][:, 40:].mean(), r["q_learning"]["returns"][:, 40:].mean()
    assert sarsa > q + 6, f"online return, episodes 41-80: SARSA {sarsa:.1f}, Q-learning {q:.1f}"


@pytest.mark.slow
def test_cliff_walking_faithful(tmp_path):
    # Example 6.6 / figure 6.4: 500 episodes, 100 runs. Measured (seed 0): return over episodes 100-500 SARSA -27.6,
    # Q-learning -49.6; SARSA runs away from the edge 85%, Q-learning runs on the edge path 100%.
    r = cliff_results(tmp_path, n_runs=100, episodes=500)
    assert r["sarsa"]["mean_path"] == TOP_PATH and r["q_learning"]["mean_path"] == EDGE_PATH
    assert r["sarsa"]["away"] >= 0.5 and r["q_learning"]["edge"] >= 0.95
    sarsa, q = r["sarsa"]["returns"][:, 100:].mean(), r["q_learning"]["returns"][:, 100:].mean()
    assert sarsa > -35 and q < -40 and sarsa > q + 15, f"SARSA {sarsa:.1f}, Q-learning {q:.1f}"


def left_fractions(tmp_path, algo, n_runs, episodes=300, seed=0):
    """Fraction of runs that went left from A in each of the first ``episodes`` episodes ``[episodes]`` (and the
    agent): a left episode is A -> B -> end (2 steps), a right one ends at once (1 step)."""
    agent = make(algo, "thorndike/MaximizationBias-v0", tmp_path / algo, seed=seed, n_runs=n_runs, **BIAS)
    agent.learn_episodes(episodes, chunk=2 * episodes)
    return (agent.history.matrix("length", n_runs, episodes) == 2).double().mean(0), agent


def test_maximization_bias_double_q_goes_left_far_less(tmp_path):
    # Example 6.7 with 500 runs (faithful: 300 episodes). A has 10 actions (left + 9 rights), so epsilon-greedy with
    # the optimal greedy action (right) still goes left with probability 0.1 / 10 = 1%. Measured (seeds 1-4, 500
    # runs): left fraction over episodes 1-100 Q-learning 0.571-0.588, double Q 0.131-0.136; peak 0.75-0.79 against
    # 0.18-0.20; over episodes 201-300 Q-learning 0.044-0.056, double Q 0.015-0.019.
    q_left, _ = left_fractions(tmp_path, "q_learning", 500)
    dq_left, _ = left_fractions(tmp_path, "double_q_learning", 500)
    assert q_left[:100].mean() > 0.45
    assert dq_left[:100].mean() < 0.2 and dq_left[:100].mean() < q_left[:100].mean() / 3
    assert q_left.max() > 0.6 > 0.3 > dq_left.max()
    assert dq_left[200:].mean() < 0.03 < q_left[200:].mean()


def steps_per_episode(tmp_path, planning_steps, n_runs, episodes, seed=0):
    """Mean over runs of each of the first ``episodes`` episodes' lengths on the Dyna maze ``[episodes]``."""
    agent = make("dyna_q", "thorndike/DynaMaze-v0", tmp_path / str(planning_steps), seed=seed, n_runs=n_runs,
                 planning_steps=planning_steps, **MAZE)
    agent.learn_episodes(episodes, chunk=1000)
    return agent.history.matrix("length", n_runs, episodes).mean(0), agent


def test_dyna_maze_planning_needs_fewer_episodes(tmp_path):
    # Fast variant of figure 8.2 with 5 planning steps (50 is the slow test): 16 runs, 10 episodes.
    # Measured (seeds 1-4): mean steps per episode over episodes 2-10: 0 planning steps 282-298, 5 planning steps
    # 38-46; episodes 6-10 with 5 planning steps 16.8-18.1.
    none, _ = steps_per_episode(tmp_path, 0, 16, 10)
    five, agent = steps_per_episode(tmp_path, 5, 16, 10)
    assert none[1:10].mean() > 150
    assert five[1:10].mean() < 80 and five[1:10].mean() < none[1:10].mean() / 3
    assert five[5:10].mean() < 25  # near the 14-step optimum (plus epsilon-greedy detours) by episodes 6-10


@pytest.mark.slow
def test_dyna_maze_faithful(tmp_path):
    # Figure 8.2: 0 vs 50 planning steps, 30 runs, 20 episodes. Measured (benchmarks/tabular_dyna_maze.py, 30 runs,
    # seed 0): episodes 2-10 mean 294 steps without planning (episodes 3-10: 108 to 580), 19.6 with 50 planning steps
    # (episode 2: 38, then 16-19).
    none, _ = steps_per_episode(tmp_path, 0, 30, 20)
    fifty, agent = steps_per_episode(tmp_path, 50, 30, 20)
    assert none[1:10].mean() > 150 and none[2:10].min() > 80
    assert fifty[1:10].mean() < 25 and fifty[2:20].max() < 22
    # The greedy policies reach G; most take a shortest path (14 steps). Some settle on a longer route: the shorter
    # one's first move was never tried and still has Q = 0.
    successor = th.envs.tabular_model("thorndike/DynaMaze-v0").P.argmax(-1)
    lengths = []
    for policy in agent.greedy_policy().tolist():
        s, steps = 18, 0  # S = (2, 0), G = (0, 8)
        while s != 8 and steps < 100:
            s, steps = int(successor[s, policy[s]]), steps + 1
        lengths.append(steps)
    assert max(lengths) <= 20 and min(lengths) == 14
    assert sum(n == 14 for n in lengths) >= 15, lengths
