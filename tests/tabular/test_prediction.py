"""Tabular prediction: Monte Carlo, TD(0) and TD(lambda) against closed forms, hand computations and each other.

Oracles: the 5-state random walk's true values 1/6..5/6 (Sutton and Barto example 6.2, also solved exactly by
``agent.exact_values()``), the notes' TD(0) number (INVENTORY C16), hand-computed first- and every-visit Monte Carlo
values on a one-state loop, the lambda-return identities (C21, C22), the equivalence of offline TD(lambda) and the
lambda-return algorithm, TD(0) as TD(lambda=0), every-visit Monte Carlo as offline TD(1) (C20), and the notes'
eligibility-trace rule (003 L1243-L1250, E31) as the lambda = 1 case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.agent import Agent
from thorndike.config import ConfigError
from thorndike.core.returns import lambda_returns, n_step_targets, reward_to_go, td_errors
from thorndike.envs.classic import random_walk
from thorndike.envs.tabular import TabularMDP
from thorndike.planning import value_iteration
from thorndike.tabular.monte_carlo import earlier_visits, episode_returns
from thorndike.tabular.prediction import EpisodeBuffer

WALK = "thorndike/RandomWalk-v0"
TRUE_WALK = torch.arange(1, 6, dtype=torch.float64) / 6  # V(A..E) = 1/6 .. 5/6


def make(algo: str, tmp_path: Path, env: object = WALK, **fields: object) -> Agent:
    return th.make(algo, env=env, progress=False, tensorboard=False, run_root=str(tmp_path), log_every=10**6,
                   **fields)


def rms_error(agent: Agent) -> float:
    """RMS error over the walk's 5 states, averaged over the runs (Sutton and Barto figure 6.2's measure)."""
    return float((agent.values()[:, 1:6] - TRUE_WALK).pow(2).mean(-1).sqrt().mean())


def loop_mdp(max_steps: int | None = None, gamma: float = 1.0) -> TabularMDP:
    """One state A (index 0) with one action: with probability 1/2 stay in A and receive 1, else end (state 1,
    terminal) with 0. An episode of length L is A repeated L times with rewards 1, ..., 1, 0: the length alone fixes
    the trajectory, so hand computations only need the lengths from ``agent.history``."""
    return TabularMDP.from_transitions(2, 1, [0, 0, 1], [0, 0, 0], [0, 1, 1], [0.5, 0.5, 1.0], [1.0, 0.0, 0.0],
                                       terminal=[1], start=[1.0, 0.0], gamma=gamma, max_steps=max_steps)


def spy_on_transitions(agent: Agent) -> list:
    """Record every Transition the agent's learn loop sees (trajectories are the same for any V: pi is fixed)."""
    seen, collect = [], agent.collect

    def recording(*args, **kwargs):
        for t in collect(*args, **kwargs):
            seen.append(t)
            yield t

    agent.collect = recording
    return seen


def episodes_of(seen: list, run: int) -> list[list[tuple[int, float, int, bool]]]:
    """Run ``run``'s complete episodes as lists of (s, r, s', terminated)."""
    episodes, current = [], []
    for t in seen:
        current.append((int(t.obs[run]), float(t.reward[run]), int(t.next_obs[run]), bool(t.terminated[run])))
        if bool(t.done[run]):
            episodes.append(current)
            current = []
    return episodes


# ---- the notes' numbers and identities ------------------------------------------------------------------------


def test_td0_hand_number_c16(tmp_path: Path) -> None:
    # C16: V(s) = 0, alpha = 0.1, r = 1, gamma = 0.9, V(s') = 1 -> 0 + 0.1 (1 + 0.9 * 1 - 0) = 0.19.
    chain = TabularMDP.from_transitions(3, 1, [0, 1, 2], [0, 0, 0], [1, 2, 2], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0],
                                        terminal=[2], start=[1.0, 0.0, 0.0], gamma=0.9)
    agent = make("td0", tmp_path, env=chain, alpha=0.1, gamma=0.9, n_runs=3)
    agent.values()[:, 1] = 1.0
    agent.learn(1)
    assert torch.allclose(agent.values()[:, 0], torch.full((3,), 0.19, dtype=torch.float64), atol=1e-15)
    assert torch.equal(agent.values()[:, 1], torch.ones(3, dtype=torch.float64))  # s' itself is not updated
    # alpha_schedule="1/n" (alpha = 1 / n(s), this update counted), V(1) = 1 at first:
    #   step 1, s = 0: alpha = 1, V(0) = 1 + 0.9 * 1 = 1.9;   step 2, s = 1 -> terminal, r = 0: alpha = 1, V(1) = 0;
    #   step 3, s = 0 again: alpha = 1/2, target 1 + 0.9 * 0 = 1, V(0) = 1.9 + (1 - 1.9) / 2 = 1.45.
    counted = make("td0", tmp_path, env=chain, gamma=0.9, alpha_schedule="1/n")
    counted.values()[:, 1] = 1.0
    counted.learn(3)
    assert float(counted.values()[0, 0]) == pytest.approx(1.45, abs=1e-15)
    assert float(counted.values()[0, 1]) == 0.0


def test_lambda_return_is_the_weighted_mix_of_n_step_returns_c21_c22() -> None:
    # C22: Psi_(N)(s_t) = G_t^(N) - V(s_t) = sum_{k<N} gamma^k delta_{t+k}; C21: sum_k (gamma lam)^k delta_{t+k}
    # = (1 - lam) sum_{N>=1} lam^(N-1) Psi_(N), the last (T - t)-step term taking the remaining weight lam^(T-t-1).
    g = torch.Generator().manual_seed(0)
    T, gamma, lam = 7, 0.9, 0.6
    rewards = torch.randn(T, generator=g, dtype=torch.float64)
    values = torch.randn(T + 1, generator=g, dtype=torch.float64)
    values[-1] = 0.0  # the episode terminates after step T-1
    terminated = torch.zeros(T, dtype=torch.bool)
    terminated[-1] = True
    no = torch.zeros(T, dtype=torch.bool)
    deltas = td_errors(rewards, values[:-1], values[1:], terminated, gamma)
    psi = {n: n_step_targets(rewards, values[1:], terminated, no, gamma, n) - values[:-1] for n in range(1, T + 1)}
    for n in range(1, T + 1):
        for t in range(T):
            telescoped = sum(gamma**k * deltas[t + k] for k in range(min(n, T - t)))
            assert float(psi[n][t]) == pytest.approx(float(telescoped), abs=1e-12)
    lam_ret = lambda_returns(rewards, values[1:], terminated, no, gamma, lam) - values[:-1]
    for t in range(T):
        traced = sum((gamma * lam) ** k * deltas[t + k] for k in range(T - t))
        mixed = sum((1 - lam) * lam ** (n - 1) * psi[n][t] for n in range(1, T - t))
        mixed = mixed + lam ** (T - t - 1) * psi[T - t][t]
        assert float(lam_ret[t]) == pytest.approx(float(traced), abs=1e-12)
        assert float(lam_ret[t]) == pytest.approx(float(mixed), abs=1e-12)


# ---- Monte Carlo building blocks ------------------------------------------------------------------------------


def test_episode_returns_and_earlier_visits_by_hand() -> None:
    # Row 0: rewards 1, 2, 3 (length 3, terminated): G = [1 + .5*2 + .25*3, 2 + .5*3, 3] = [2.75, 3.5, 3].
    # Row 1: rewards 4 then a time-limit cut with tail V = 10 (length 1): G_0 = 4 + 0.5 * 10 = 9.
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], dtype=torch.float64)
    G = episode_returns(rewards, torch.tensor([3, 1]), torch.tensor([0.0, 10.0], dtype=torch.float64), 0.5)
    assert torch.allclose(G[0], torch.tensor([2.75, 3.5, 3.0], dtype=torch.float64))
    assert float(G[1, 0]) == 9.0
    keys = torch.tensor([[2, 5, 2, 2, 5, 7], [1, 1, 0, 3, 3, 3]])
    valid = torch.tensor([[True] * 6, [True, True, True, True, False, False]])
    earlier = earlier_visits(keys, valid)
    assert earlier[0].tolist() == [0, 0, 1, 2, 1, 0]
    assert earlier[1, :4].tolist() == [0, 1, 0, 0]


def test_episode_buffer_grows_and_hands_over_finished_episodes() -> None:
    buffer = EpisodeBuffer(2, torch.device("cpu"), capacity=2)
    ones = torch.ones(2, dtype=torch.int64)
    for step in range(5):  # run 0 ends after 5 steps, run 1 after 2, then starts over
        done = torch.tensor([step == 4, step == 1])
        buffer.append(ones * step, ones * 0, torch.tensor([1.0 * step, 10.0 * step]), ones * (step + 1), done)
        episodes = buffer.take(done)
        if step == 1:
            assert episodes.runs.tolist() == [1] and episodes.states[0].tolist() == [0, 1, 2]
            assert episodes.rewards[0].tolist() == [0.0, 10.0]
        if step == 4:
            assert buffer.capacity >= 5
            assert episodes.runs.tolist() == [0] and episodes.lengths.tolist() == [5]
            assert episodes.states[0].tolist() == [0, 1, 2, 3, 4, 5]
            assert episodes.final_states.tolist() == [5]
            assert episodes.rewards[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert buffer.lengths.tolist() == [0, 3]


# ---- Monte Carlo prediction -----------------------------------------------------------------------------------


def loop_returns(length: int, gamma: float) -> list[float]:
    """G_t of the loop episode of ``length`` steps (rewards 1, ..., 1, 0)."""
    return [sum(gamma**k for k in range(length - 1 - t)) for t in range(length)]


def test_first_and_every_visit_by_hand_on_a_repeated_state(tmp_path: Path) -> None:
    # One episode A A A T (length 3), gamma = 1: returns G = [2, 1, 0] (rewards 1, 1, 0).
    #   first visit, mean:    V(A) = G_0 = 2
    #   every visit, mean:    V(A) = (2 + 1 + 0) / 3 = 1
    #   every visit, alpha = 0.5 from V = 0, backwards: 0 -> 0 + .5 (0 - 0) = 0 -> .5 (1 - 0) = .5
    #                                                     -> .5 + .5 (2 - .5) = 1.25
    #   first visit, alpha = 0.5: V(A) = 0.5 * G_0 = 1
    # Every run's first episode is checked against these formulas for its own length (lengths vary by run).
    runs, gamma = 64, 1.0
    results, lengths = {}, None
    for visit in ("first", "every"):
        for step_size in ("mean", "constant"):
            agent = make("mc_prediction", tmp_path, env=loop_mdp(gamma=gamma), gamma=gamma, visit=visit,
                         step_size=step_size, alpha=0.5, n_runs=runs, curve_episodes=1)
            agent.learn(40)
            results[visit, step_size] = agent.value_curve()[:, 1, 0]
            own = agent.history.matrix("length", runs, 1)[:, 0].long().tolist()
            assert lengths in (None, own)  # pi is fixed: the same seed gives the same episodes
            lengths = own
    assert max(lengths) >= 3, "some runs must revisit A"
    for run, length in enumerate(lengths):
        G = loop_returns(length, gamma)
        sequential = 0.0
        for g in reversed(G):
            sequential += 0.5 * (g - sequential)
        assert float(results["first", "mean"][run]) == pytest.approx(G[0], abs=1e-12)
        assert float(results["every", "mean"][run]) == pytest.approx(sum(G) / length, abs=1e-12)
        assert float(results["first", "constant"][run]) == pytest.approx(0.5 * G[0], abs=1e-12)
        assert float(results["every", "constant"][run]) == pytest.approx(sequential, abs=1e-12)
    run = lengths.index(3)
    by_hand = {("first", "mean"): 2.0, ("every", "mean"): 1.0, ("first", "constant"): 1.0, ("every", "constant"): 1.25}
    for key, value in by_hand.items():
        assert float(results[key][run]) == value


def test_mean_step_size_is_the_sample_average_of_returns(tmp_path: Path) -> None:
    # First-visit with 1/N(s): V(A) after k episodes is the average of their G_0 (computed from the lengths).
    runs, gamma = 16, 0.8
    agent = make("mc_prediction", tmp_path, env=loop_mdp(gamma=gamma), gamma=gamma, step_size="mean", n_runs=runs,
                 q_init=5.0)
    agent.learn(60)
    for run in range(runs):
        lengths = agent.history.of_run(run, "length").tolist()
        average = sum(loop_returns(int(n), gamma)[0] for n in lengths) / len(lengths)
        assert float(agent.values()[run, 0]) == pytest.approx(average, abs=1e-12)


def test_time_limit_cut_bootstraps_from_v(tmp_path: Path) -> None:
    # A loop that never ends by itself (stay with probability 1, reward 1), cut after 2 steps, gamma = 0.5:
    # episode 1: G_0 = 1 + .5 * 1 + .25 * V(A) with V(A) = 0 -> 1.5; mean step -> V = 1.5;
    # episode 2: G_0 = 1.5 + .25 * 1.5 = 1.875 -> V = (1.5 + 1.875) / 2 = 1.6875.
    loop = TabularMDP.from_transitions(2, 1, [0, 1], [0, 0], [0, 1], [1.0, 1.0], [1.0, 0.0], terminal=[1],
                                       start=[1.0, 0.0], gamma=0.5, max_steps=2)
    agent = make("mc_prediction", tmp_path, env=loop, gamma=0.5, step_size="mean", curve_episodes=2)
    agent.learn(4)
    assert agent.value_curve()[0, :, 0].tolist() == [0.0, 1.5, 1.6875]


def test_td0_and_monte_carlo_learn_the_random_walk(tmp_path: Path) -> None:
    # True V = 1/6 .. 5/6 (also the exact solve of the evaluated uniform policy); 30 runs in one agent.
    td = make("td0", tmp_path, alpha=0.05, gamma=1.0, q_init=0.5, n_runs=30, seed=1)
    assert torch.allclose(td.exact_values()[:, 1:6], TRUE_WALK.expand(30, 5), atol=1e-12)
    assert rms_error(td) == pytest.approx(float((0.5 - TRUE_WALK).pow(2).mean().sqrt()))  # before learning: 0.236
    td.learn(1000)  # about 110 episodes per run
    mean = make("mc_prediction", tmp_path, step_size="mean", gamma=1.0, q_init=0.5, n_runs=30, seed=1).learn(1500)
    assert rms_error(td) < 0.05
    assert rms_error(mean) < 0.05


@pytest.mark.slow
def test_constant_alpha_monte_carlo_learns_the_random_walk(tmp_path: Path) -> None:
    agent = make("mc_prediction", tmp_path, alpha=0.01, gamma=1.0, q_init=0.5, n_runs=30, seed=1)
    agent.learn(4000)  # about 440 episodes per run: alpha = 0.01 forgets the 0.5 start slowly
    assert rms_error(agent) < 0.05


# ---- TD(lambda) -------------------------------------------------------------------------------------------------


def walk_with_time_limit() -> TabularMDP:
    return random_walk(max_steps=6)  # cuts some episodes, so the truncation bootstrap is exercised too


@pytest.mark.parametrize(("env", "gamma", "lam"), [(WALK, 1.0, 0.7), ("cut", 0.9, 0.8)])
def test_offline_td_lambda_equals_the_lambda_return_algorithm(tmp_path: Path, env: object, gamma: float,
                                                              lam: float) -> None:
    env = walk_with_time_limit() if env == "cut" else env
    common = dict(env=env, gamma=gamma, lam=lam, alpha=0.1, q_init=0.5, n_runs=8, curve_episodes=20, seed=3)
    offline = make("td_lambda", tmp_path, mode="offline", **common).learn(300)
    lambda_return = make("td_lambda", tmp_path, mode="lambda_return", **common).learn(300)
    curve = offline.value_curve()
    assert not torch.isnan(curve).any(), "every run must finish 20 episodes"
    assert (curve[:, -1] - curve[:, 0]).abs().max() > 0.05  # V moved
    assert torch.allclose(curve, lambda_return.value_curve(), rtol=0.0, atol=1e-10)


def test_td_lambda_zero_is_td0(tmp_path: Path) -> None:
    common = dict(gamma=0.95, alpha=0.1, q_init=0.5, n_runs=8, seed=4)
    td0 = make("td0", tmp_path, **common).learn(400)
    lam0 = make("td_lambda", tmp_path, lam=0.0, mode="online", **common).learn(400)
    assert torch.allclose(td0.values(), lam0.values(), rtol=0.0, atol=1e-12)


def test_offline_td_one_is_every_visit_monte_carlo_c20(tmp_path: Path) -> None:
    # Offline TD(1): V(s) += alpha * sum over the visits t of s of (G_t - V(s)), V fixed during the episode: the
    # summed form of every-visit MC (exact); sequential every-visit MC differs from it by O(alpha^2) only.
    gamma, alpha = 0.9, 1e-4
    common = dict(gamma=gamma, alpha=alpha, q_init=0.5, n_runs=6, seed=5, curve_episodes=1)
    td1 = make("td_lambda", tmp_path, lam=1.0, mode="offline", **common)
    seen = spy_on_transitions(td1)
    td1.learn(80)
    mc = make("mc_prediction", tmp_path, visit="every", step_size="constant", **common).learn(80)
    v_td, v_mc = td1.value_curve()[:, 1], mc.value_curve()[:, 1]
    for run in range(6):
        (first, *_) = episodes_of(seen, run)
        G = reward_to_go(torch.tensor([r for _, r, _, _ in first], dtype=torch.float64), gamma)
        expected = torch.full((7,), 0.5, dtype=torch.float64)
        expected[[0, 6]] = 0.0
        for (s, _, _, _), g in zip(first, G, strict=True):
            expected[s] += alpha * (float(g) - 0.5)
        assert torch.allclose(v_td[run], expected, rtol=0.0, atol=1e-12)
        increment = (v_td[run] - td1.value_curve()[run, 0]).abs().max()
        assert (v_td[run] - v_mc[run]).abs().max() < 0.05 * increment


@pytest.mark.parametrize("lam", [0.0, 0.9])
def test_replacing_and_accumulating_traces_by_hand(tmp_path: Path, lam: float) -> None:
    # Loop MDP (episode A ... A T of length L), V(A) = 0 at first, gamma = 1, online. Each step:
    #   delta_t = r_t + V(s_{t+1}) - V(A), r_t = 1 and s_{t+1} = A before the last step, r = 0 and V(T) = 0 at it;
    #   accumulating e_t = lam e_{t-1} + 1, replacing e_t = 1; V(A) += alpha delta_t e_t (replayed below per run).
    # L = 1 (A T): delta = 0, both leave V = 0. The traces differ only when A repeats (L >= 2) and lam > 0.
    alpha, runs = 0.2, 64
    curves = {}
    for trace in ("accumulating", "replacing"):
        agent = make("td_lambda", tmp_path, env=loop_mdp(), gamma=1.0, lam=lam, alpha=alpha, trace=trace,
                     n_runs=runs, curve_episodes=1)
        agent.learn(40)
        curves[trace] = agent.value_curve()[:, 1, 0]
    lengths = agent.history.matrix("length", runs, 1)[:, 0].long().tolist()
    assert 1 in lengths and max(lengths) >= 3
    for run, length in enumerate(lengths):
        for trace in ("accumulating", "replacing"):
            v, e = 0.0, 0.0
            for t in range(length):
                last = t == length - 1
                delta = (0.0 if last else 1.0) + (0.0 if last else v) - v
                e = lam * e + 1.0 if trace == "accumulating" else 1.0
                v += alpha * delta * e
            assert float(curves[trace][run]) == pytest.approx(v, abs=1e-12)
        same = float(curves["accumulating"][run]) == pytest.approx(float(curves["replacing"][run]), abs=1e-12)
        assert same == (length == 1 or lam == 0.0)
    # The smallest repeat written out, A A T (L = 2), alpha = 0.2: t = 0: delta = 1 + 0 - 0 = 1, e = 1, V = 0.2;
    # t = 1: delta = 0 + 0 - 0.2 = -0.2; accumulating e = lam + 1, V = 0.2 - 0.04 (1 + lam) (0.124 for lam = 0.9);
    # replacing e = 1, V = 0.2 - 0.04 = 0.16.
    two = torch.tensor(lengths) == 2
    assert two.any()
    assert torch.allclose(curves["accumulating"][two], torch.tensor(0.2 - 0.04 * (1 + lam), dtype=torch.float64))
    assert torch.allclose(curves["replacing"][two], torch.tensor(0.16, dtype=torch.float64))


def test_notes_trace_rule_is_td_lambda_with_lambda_one(tmp_path: Path) -> None:
    # 003 L1243-L1250: e(s) = 0 at the start; after visiting s_t, e(s_t) += 1; V(s) += alpha e(s) Psi_(1)(s_t) for
    # all s; then e <- gamma e. That is online TD(lambda) with lambda = 1; lambda < 1 (e <- gamma lambda e, E31)
    # is a different, and for lambda < 1 the correct, rule.
    gamma, alpha, runs = 0.9, 0.1, 4

    def notes_rule(seen: list, run: int) -> torch.Tensor:
        v = torch.full((7,), 0.5, dtype=torch.float64)
        v[[0, 6]] = 0.0
        e = torch.zeros(7, dtype=torch.float64)
        for t in seen:
            s, r, s_next = int(t.obs[run]), float(t.reward[run]), int(t.next_obs[run])
            e[s] += 1.0
            psi1 = r + (0.0 if bool(t.terminated[run]) else gamma * float(v[s_next])) - float(v[s])
            v += alpha * e * psi1
            e *= gamma
            if bool(t.done[run]):
                e.zero_()
        return v

    values, seen = {}, {}
    for lam in (1.0, 0.8):
        agent = make("td_lambda", tmp_path, gamma=gamma, lam=lam, alpha=alpha, q_init=0.5, n_runs=runs, seed=6)
        seen[lam] = spy_on_transitions(agent)
        agent.learn(200)
        values[lam] = agent.values()
    for run in range(runs):
        reference = notes_rule(seen[1.0], run)
        assert reference.equal(notes_rule(seen[0.8], run))  # the same episodes for both agents
        assert torch.allclose(values[1.0][run], reference, rtol=0.0, atol=1e-12)
        assert (values[0.8][run] - reference).abs().max() > 1e-3


# ---- the agents' plumbing -------------------------------------------------------------------------------------


def test_value_curve_starts_at_the_initial_values_and_fills_in_order(tmp_path: Path) -> None:
    agent = make("td0", tmp_path, gamma=1.0, q_init=0.5, n_runs=5, curve_episodes=3)
    initial = agent.value_curve()
    assert torch.equal(initial[:, 0], agent.values()) and torch.isnan(initial[:, 1:]).all()
    agent.learn(200)
    curve = agent.value_curve()
    assert not torch.isnan(curve).any()
    assert torch.equal(curve[:, 0], initial[:, 0])
    with pytest.raises(ValueError, match="curve_episodes"):
        make("td0", tmp_path).value_curve()


def test_set_policy_and_the_optimal_policy_option(tmp_path: Path) -> None:
    optimal = value_iteration(th.envs.tabular_model("FrozenLake-v1"), gamma=0.9).policy
    agent = make("td0", tmp_path, env="FrozenLake-v1", gamma=0.9, policy="optimal", n_runs=2)
    assert torch.equal(agent.greedy_policy(), optimal.expand(2, -1))
    uniform = make("td0", tmp_path, env="FrozenLake-v1", gamma=0.9, n_runs=2)
    assert torch.allclose(uniform.fixed_policy.probs, torch.full((2, 16, 4), 0.25, dtype=torch.float64))
    uniform.set_policy(optimal)
    assert torch.equal(uniform.fixed_policy.probs, agent.fixed_policy.probs)
    assert torch.allclose(uniform.exact_values(), agent.exact_values())
    for bad in (torch.zeros(15, dtype=torch.int64), torch.full((16,), 4), torch.full((16, 4), 0.3)):
        with pytest.raises(ValueError):
            uniform.set_policy(bad)
    with pytest.raises(AttributeError, match="values"):
        _ = uniform.q


def test_cross_field_and_range_rules_are_enforced() -> None:
    with pytest.raises(ConfigError, match="step_size='mean'"):
        th.make("mc_prediction", env=WALK, alpha_schedule="1/n", progress=False)
    with pytest.raises(ConfigError, match="lam"):
        th.make("td_lambda", env=WALK, lam=1.5, progress=False)
