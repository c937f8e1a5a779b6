"""On-policy Monte Carlo control: the learned greedy policy against value iteration's V* (exact evaluation, no
sampling noise), the Q update against a plain replay of the recorded episodes, the time-limit bootstrap by hand,
and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.agent import Agent
from thorndike.config import ConfigError
from thorndike.envs import toy_text
from thorndike.envs.tabular import TabularMDP, random_mdp
from thorndike.planning import value_iteration


def make(tmp_path: Path, env: object, **fields: object) -> Agent:
    return th.make("mc_control", env=env, progress=False, tensorboard=False, run_root=str(tmp_path),
                   log_every=10**6, **fields)


def test_learns_the_optimal_policy_of_deterministic_frozen_lake(tmp_path: Path) -> None:
    # 4x4 FrozenLake without slipping, gamma = 0.9: V*(start) = 0.9^5 (six moves to the goal, the last one paid).
    mdp = toy_text.frozen_lake(is_slippery=False, gamma=0.9)
    start = int(mdp.start.argmax())
    v_star = float(value_iteration(mdp, gamma=0.9).V[start])
    assert v_star == pytest.approx(0.9**5)
    agent = make(tmp_path, mdp, gamma=0.9, epsilon=0.1, n_runs=30, seed=0)
    # About 300 episodes per run. On-policy MC control converges to the best epsilon-soft policy, whose greedy part
    # may still take a longer path away from the holes: over seeds 0-5, 93% to 100% of the runs are optimal here.
    agent.learn(2500)
    greedy_values = agent.exact_values()[:, start]
    optimal = (greedy_values - v_star).abs() < 1e-9
    assert optimal.double().mean() >= 0.9, greedy_values


def test_q_is_the_average_of_first_visit_returns(tmp_path: Path) -> None:
    # Replay each run's recorded episodes in plain Python: with step_size="mean" and first visits, Q(s, a) must be
    # the average, over the episodes that visited (s, a), of the return after its first visit. Every-visit likewise
    # averages the returns after every visit.
    mdp = random_mdp(5, 3, n_terminal=1, seed=2)
    gamma, runs = 0.8, 4
    for visit in ("first", "every"):
        agent = make(tmp_path, mdp, gamma=gamma, epsilon=0.5, visit=visit, n_runs=runs, seed=1, q_init=7.0)
        seen, collect = [], agent.collect

        def recording(*args, _collect=collect, _seen=seen, **kwargs):
            for t in _collect(*args, **kwargs):
                _seen.append(t)
                yield t

        agent.collect = recording
        agent.learn(200)
        for run in range(runs):
            returns: dict[tuple[int, int], list[float]] = {}
            episode: list[tuple[int, int, float]] = []
            for t in seen:
                episode.append((int(t.obs[run]), int(t.action[run]), float(t.reward[run])))
                if not bool(t.done[run]):
                    continue
                assert bool(t.terminated[run])  # random_mdp has no time limit
                g, backward = 0.0, []
                for s, a, r in reversed(episode):
                    g = r + gamma * g
                    backward.append((s, a, g))
                forward = backward[::-1]
                firsts = {}
                for s, a, g in forward:
                    firsts.setdefault((s, a), g)
                    if visit == "every":
                        returns.setdefault((s, a), []).append(g)
                if visit == "first":
                    for key, g in firsts.items():
                        returns.setdefault(key, []).append(g)
                episode = []
            expected = torch.full((5, 3), 7.0, dtype=torch.float64)
            for (s, a), gs in returns.items():
                expected[s, a] = sum(gs) / len(gs)
                assert int(agent.counts["n"][run, s, a]) == len(gs)
            assert torch.allclose(agent.q[run], expected, rtol=0.0, atol=1e-12)


def test_time_limit_cut_bootstraps_from_the_behaviour_value(tmp_path: Path) -> None:
    # One state, one action (stay, reward 1), cut after 2 steps, gamma = 0.5; the tail is sum_a pi(a|A) Q(A, a) =
    # Q(A, 0). Episode 1: G_0 = 1 + .5 + .25 * 0 = 1.5 -> Q = 1.5. Episode 2: G_0 = 1.5 + .25 * 1.5 = 1.875 ->
    # Q = mean(1.5, 1.875) = 1.6875. Without the bootstrap it would stay 1.5.
    loop = TabularMDP.from_transitions(2, 1, [0, 1], [0, 0], [0, 1], [1.0, 1.0], [1.0, 0.0], terminal=[1],
                                       start=[1.0, 0.0], gamma=0.5, max_steps=2)
    agent = make(tmp_path, loop, gamma=0.5)
    agent.learn(2)
    assert float(agent.q[0, 0, 0]) == 1.5
    agent.learn(4)
    assert float(agent.q[0, 0, 0]) == 1.6875


def test_alpha_schedule_one_over_n_points_to_step_size_mean() -> None:
    with pytest.raises(ConfigError, match="step_size='mean'"):
        th.make("mc_control", env="FrozenLake-v1", alpha_schedule="1/n", progress=False)
