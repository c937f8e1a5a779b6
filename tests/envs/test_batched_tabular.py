"""The native batched TabularMDP env: sampled transitions and start states follow the model, deterministic toy-text
envs match Gymnasium step for step, the DP-optimal FrozenLake policy earns V* in rollouts, and the VecEnv
conventions (same-step autoreset, final_obs, episode statistics, seeding, checkpoints, one-hot observations, make)."""

from __future__ import annotations

import io
import math
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit
from scipy import stats

import thorndike as th
from tests.envs.test_batched import assert_steps_equal
from thorndike.envs import GymnasiumVecEnv, gridworld, toy_text
from thorndike.envs.batched import TOY_TEXT, TabularEnv, batched, tabular, toy_text_env
from thorndike.envs.tabular import TabularMDP, random_mdp
from thorndike.envs.vec_env import INFO_KEYS
from thorndike.planning import value_iteration

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# FrozenLake 4x4: S F F F / F H F H / F F F H / H F F G, state = row * 4 + col; actions Left, Down, Right, Up.
LEFT, DOWN, RIGHT, UP = range(4)


def nonuniform_start_mdp() -> TabularMDP:
    """A random MDP (states 8, 9 terminal) whose start distribution is neither one state nor uniform."""
    base = random_mdp(10, 3, n_terminal=2, branching=3, seed=7)
    start = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02, 0.0, 0.0, 0.0], dtype=torch.float64)
    return TabularMDP(base.P, base.R, terminal=base.terminal, start=start)


def rollout(env: TabularEnv, seed: int, steps: int) -> list[torch.Tensor]:
    """Everything a run of uniformly random actions (from a fixed NumPy seed) returns."""
    rng = np.random.default_rng(0)
    outputs = [env.reset(seed=seed)]
    for _ in range(steps):
        actions = torch.as_tensor(rng.integers(0, env.n_actions, env.n_envs))
        obs, reward, terminated, truncated, info = env.step(actions)
        outputs += [obs, reward, terminated, truncated, *(info[key] for key in INFO_KEYS)]
    return outputs


# ---------------------------------------------------------------- sampling follows the model


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("build", "search"),
    [
        (lambda: toy_text.frozen_lake("4x4"), False),  # dense, up to 3 successors: the column scan
        (lambda: random_mdp(40, 3, n_terminal=2, branching=4, sparse=True, seed=1), False),
        (lambda: random_mdp(30, 3, branching=12, sparse=True, seed=2), True),  # 12 successors: searchsorted
        (lambda: random_mdp(15, 3, n_terminal=1, seed=3), True),  # dense, every state a successor
    ],
    ids=["frozen-lake-slippery", "sparse-4-successors", "sparse-12-successors", "dense"],
)
def test_transition_frequencies_match_P(build, search: bool, device: str) -> None:
    """From every (s, a) at once, 10,000 draws each: the counts of s' match P[s, a, :] (a chi-square test over all
    rows, and every count within 5 binomial standard deviations); rewards are R[s, a, s'] and termination is
    "s' is terminal" on every single draw; zero-probability transitions never happen."""
    mdp = build()
    dense = mdp.to_dense()
    S, A = mdp.n_states, mdp.n_actions
    per_row, repeats = 2500, 4
    rows = torch.arange(S * A).repeat_interleave(per_row)
    states, actions = rows // A, rows % A
    env = batched(mdp, rows.numel(), device=device)
    assert env._search == search
    env.reset(seed=0)
    counts = torch.zeros(S * A, S, dtype=torch.float64)
    for _ in range(repeats):
        env.set_state(states)
        _, reward, terminated, truncated, info = env.step(actions)
        next_state = info["final_obs"].cpu()
        counts.index_put_((rows, next_state), torch.ones(rows.numel(), dtype=torch.float64), accumulate=True)
        expected_reward = dense.R[states, actions, next_state].to(torch.float32)
        assert torch.equal(reward.cpu(), expected_reward)
        assert torch.equal(terminated.cpu(), mdp.terminal[next_state]) and not truncated.any()
    n = per_row * repeats
    P = dense.P.reshape(S * A, S)
    expected = n * P
    assert (counts[P == 0] == 0).all()
    # every count within 5 standard deviations (+1 for the discreteness of small expected counts)
    assert ((counts - expected).abs() <= 5 * (expected * (1 - P)).sqrt() + 1).all()
    # one chi-square over all rows, on the cells with enough expected draws for the approximation
    enough = expected >= 5
    statistic = float((((counts - expected) ** 2)[enough] / expected[enough]).sum())
    dof = int(enough.sum()) - int(enough.any(1).sum())
    assert stats.chi2.sf(statistic, dof) > 1e-3


def test_the_column_scan_and_the_search_draw_the_same_transitions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both find the first transition whose integer level exceeds the same random bits, so they must agree exactly.
    mdp = toy_text.frozen_lake("8x8")
    scan = batched(mdp, 256)
    monkeypatch.setattr(tabular, "_SCAN_MAX_SUCCESSORS", 1)
    search = batched(mdp, 256)
    assert not scan._search and search._search
    for a, b in zip(rollout(scan, 3, 80), rollout(search, 3, 80)):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (lambda: toy_text.frozen_lake("4x4"), "single"),
        (toy_text.taxi, "uniform"),  # 300 start states
        (nonuniform_start_mdp, "search"),
    ],
)
def test_initial_states_follow_the_start_distribution(build, kind: str) -> None:
    """Both reset and same-step autoreset draw initial states from ``start`` (200,000 of each)."""
    mdp = build()
    n = 200_000
    env = batched(mdp, n, max_episode_steps=1)  # every step truncates, so every copy resets
    assert env._start_kind == kind
    samples = [env.reset(seed=0), env.step(torch.zeros(n, dtype=torch.long))[0]]
    for sample in samples:
        frequencies = torch.bincount(sample, minlength=mdp.n_states).double() / n
        # 5 binomial standard deviations, and never a state outside the start distribution
        assert ((frequencies - mdp.start).abs() <= 5 * (mdp.start * (1 - mdp.start) / n).sqrt()).all()


# ---------------------------------------------------------------- the same steps as Gymnasium


def reachable(mdp: TabularMDP) -> tuple[list[int], list[int]]:
    """The non-terminal states reachable from the start distribution, and those among them one step from a terminal
    state (where episodes can end)."""
    arrays = mdp.transition_arrays()
    seen = set(torch.nonzero(mdp.start > 0).flatten().tolist())
    queue, before_terminal = deque(seen), set()
    while queue:
        s = queue.popleft()
        for row in range(s * mdp.n_actions, (s + 1) * mdp.n_actions):
            for k in range(arrays["crow"][row], arrays["crow"][row + 1]):
                s_next = int(arrays["cols"][k])
                if arrays["probs"][k] <= 0:
                    continue
                if mdp.terminal[s_next]:
                    before_terminal.add(s)
                elif s_next not in seen:
                    seen.add(s_next)
                    queue.append(s_next)
    return sorted(seen), sorted(before_terminal)


def time_limit(env: gym.Env) -> TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TimeLimit):
            return env
        env = env.env
    return None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("env_id", "gym_kwargs"),
    [("FrozenLake-v1", {"is_slippery": False}), ("CliffWalking-v1", {}), ("Taxi-v4", {})],
)
def test_deterministic_toy_text_steps_match_gymnasium(env_id: str, gym_kwargs: dict, device: str) -> None:
    """From identical states (reachable ones; a quarter of the copies one step from the end of an episode, half close
    to the time limit) and identical random actions, observations (the true last one where an episode ended),
    rewards and both flags agree with Gymnasium at every step; after an episode ends, the native copy is moved to
    the state Gymnasium reset to."""
    n, steps = 32, 150
    rng = np.random.default_rng(0)
    if gym_kwargs:  # non-slippery FrozenLake is not a registered id: batch its model
        native = batched(toy_text.frozen_lake(is_slippery=False), n, device=device)
    else:
        native = th.envs.make(env_id, n_envs=n, device=device)
        assert isinstance(native, TabularEnv)
    references = [gym.make(env_id, **gym_kwargs) for _ in range(n)]
    states, before_terminal = reachable(native.mdp)
    start = rng.choice(states, n)
    start[: n // 4] = rng.choice(before_terminal, n // 4)
    limit = native.max_episode_steps
    assert limit == references[0].spec.max_episode_steps
    elapsed = np.zeros(n, dtype=np.int64)
    if limit is not None:
        elapsed = rng.integers(0, limit, n)
        elapsed[n // 2:] = limit - 1 - rng.integers(0, 20, n - n // 2)
    for i, ref in enumerate(references):
        ref.reset(seed=i)
        ref.unwrapped.s = int(start[i])
        if limit is not None:
            time_limit(ref)._elapsed_steps = int(elapsed[i])
    native.reset(seed=0)
    native.set_state(torch.as_tensor(start), torch.as_tensor(elapsed))
    terminations = truncations = cliff_falls = 0
    for _ in range(steps):
        actions = rng.integers(0, native.n_actions, n)
        obs, reward, terminated, truncated, info = native.step(torch.as_tensor(actions))
        resynced = native.get_state()[0]
        for i, ref in enumerate(references):
            ref_obs, ref_reward, ref_terminated, ref_truncated, _ = ref.step(int(actions[i]))
            ended = ref_terminated or ref_truncated
            assert (bool(terminated[i]), bool(truncated[i])) == (ref_terminated, ref_truncated)
            assert int((info["final_obs"] if ended else obs)[i]) == ref_obs
            assert reward[i].item() == ref_reward
            cliff_falls += ref_reward == -100
            if ended:
                terminations += ref_terminated
                truncations += ref_truncated
                resynced[i] = ref.reset()[0]
        native.set_state(resynced)
    assert terminations > 0
    assert truncations > 0 or limit is None
    assert cliff_falls > 0 or env_id != "CliffWalking-v1"


def test_cliff_walking_cliff_returns_to_the_start_without_ending_the_episode() -> None:
    # CliffWalking: 4 x 12, state = row * 12 + col; start 36 (bottom left), cliff 37-46, goal 47. Actions Up,
    # Right, Down, Left.
    env = th.envs.make("CliffWalking-v1", n_envs=4, seed=0)
    assert env.max_episode_steps is None  # registered without a time limit
    up, right, down, left = range(4)
    env.set_state(torch.tensor([36, 25, 30, 35]), elapsed_steps=3)
    obs, reward, terminated, truncated, info = env.step(torch.tensor([right, down, left, down]))
    # from the start into the cliff, and down into it from above: back to the start with -100, episode going on;
    # an ordinary step pays -1; the goal ends the episode (paying -1) and the copy restarts at 36
    assert obs.tolist() == [36, 36, 29, 36] and info["final_obs"].tolist() == [36, 36, 29, 47]
    assert reward.tolist() == [-100.0, -100.0, -1.0, -1.0]
    assert terminated.tolist() == [False, False, False, True] and not truncated.any()
    assert info["episode_length"].tolist() == [4, 4, 4, 4]
    assert env.get_state()[1].tolist() == [4, 4, 4, 0]


# ---------------------------------------------------------------- DP meets rollouts


def test_optimal_frozen_lake_policy_earns_v_star_in_rollouts() -> None:
    """V*(start) of slippery FrozenLake 4x4 (gamma = 0.99) is the expected *discounted* return
    E[gamma^(T-1) 1{goal at step T}], not the success rate (which is the gamma = 1 value), so each of 20,000 copies
    plays one episode of the DP-optimal policy and scores it with gamma. The time limit is lifted to 5,000 steps:
    with Gymnasium's 100, truncation would cut off the slow but safe paths the optimal policy takes (their
    remaining value at step 5,000 is below 0.99^5000 < 1e-21). The mean must match V*(start) within 4 standard
    errors (about 0.0022 each)."""
    mdp = toy_text.frozen_lake("4x4")
    solution = value_iteration(mdp)
    n = 20_000
    env = batched(mdp, n, max_episode_steps=5000)
    obs = env.reset(seed=0)
    returns = torch.zeros(n, dtype=torch.float64)
    discount = torch.ones(n, dtype=torch.float64)
    playing = torch.ones(n, dtype=torch.bool)
    while playing.any():
        obs, reward, terminated, truncated, _ = env.step(solution.policy[obs])
        returns += torch.where(playing, discount * reward.double(), 0.0)
        discount *= mdp.gamma
        playing &= ~(terminated | truncated)
    standard_error = float(returns.std()) / math.sqrt(n)
    assert float(solution.V[0]) == pytest.approx(0.5420, abs=1e-4)
    assert abs(float(returns.mean()) - float(solution.V[0])) < 4 * standard_error


# ---------------------------------------------------------------- VecEnv conventions


def test_same_step_autoreset_keeps_the_true_final_observation() -> None:
    env = batched(toy_text.frozen_lake(is_slippery=False), 4)
    env.reset(seed=0)
    # 14 -> right -> goal 15; 0 -> down -> 4; 6 -> left -> hole 5; 1 -> right -> 2
    env.set_state(torch.tensor([14, 0, 6, 1]), elapsed_steps=7)
    obs, reward, terminated, truncated, info = env.step(torch.tensor([RIGHT, DOWN, LEFT, RIGHT]))
    assert terminated.tolist() == [True, False, True, False] and not truncated.any()
    assert torch.equal(info["done"], terminated)
    assert reward.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert obs.tolist() == [0, 4, 0, 2]  # the ended copies are already back at the start
    assert info["final_obs"].tolist() == [15, 4, 5, 2]
    assert info["episode_return"].tolist() == [1.0, 0.0, 0.0, 0.0] and info["episode_length"].tolist() == [8] * 4
    state, elapsed = env.get_state()
    assert state.tolist() == [0, 4, 0, 2] and elapsed.tolist() == [0, 8, 0, 8]
    obs.zero_()  # the returned tensors are the caller's
    assert env.get_state()[0].tolist() == [0, 4, 0, 2]


def test_episode_statistics_count_each_finished_episode() -> None:
    mdp = random_mdp(12, 3, n_terminal=2, branching=3, seed=4)
    env = batched(mdp, 64, max_episode_steps=6)
    env.reset(seed=1)
    returns = torch.zeros(64, dtype=torch.float64)
    lengths = torch.zeros(64, dtype=torch.long)
    rng = np.random.default_rng(0)
    terminations = truncations = 0
    for _ in range(40):
        _, reward, terminated, truncated, info = env.step(torch.as_tensor(rng.integers(0, 3, 64)))
        returns += reward.double()
        lengths += 1
        done = terminated | truncated
        assert torch.equal(truncated, lengths == 6)
        torch.testing.assert_close(info["episode_return"], returns)
        assert torch.equal(info["episode_length"], lengths)
        assert torch.equal(info["done"], done)
        assert info["episode_return"].dtype == torch.float64 and info["episode_length"].dtype == torch.int64
        assert type(info) is dict and set(info) == set(INFO_KEYS)
        terminations += int(terminated.sum())
        truncations += int(truncated.sum())
        returns[done] = 0.0
        lengths[done] = 0
    assert terminations > 0 and truncations > 0


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Taxi-v4"])  # random transitions; random start states
def test_seeding_is_deterministic(env_id: str) -> None:
    def run(seed: int) -> list[torch.Tensor]:
        env = th.envs.make(env_id, n_envs=32)
        return rollout(env, seed, 60) + [env.reset()]  # an unseeded reset continues the seeded stream

    first, again, other = run(3), run(3), run(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    if env_id == "Taxi-v4":
        assert not torch.equal(first[0], other[0]) and not torch.equal(first[0], first[-1])


@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("env_id", ["FrozenLake8x8-v1", "Taxi-v4"])
def test_state_dict_resumes_exactly(env_id: str, one_hot: bool) -> None:
    env = toy_text_env(env_id, 16, one_hot=one_hot)
    env.reset(seed=5)
    rng = np.random.default_rng(1)
    actions = [torch.as_tensor(rng.integers(0, env.n_actions, 16)) for _ in range(150)]
    for a in actions[:50]:
        env.step(a)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)  # through a checkpoint file's serialisation
    expected = [env.step(a) for a in actions[50:]]
    buffer.seek(0)
    resumed = toy_text_env(env_id, 16, one_hot=one_hot)
    resumed.reset(seed=99)
    resumed.load_state_dict(torch.load(buffer))
    assert_steps_equal(resumed, actions[50:], expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_hot_observations(dtype: torch.dtype) -> None:
    mdp = toy_text.frozen_lake("4x4")
    index_env = TabularEnv(mdp, 64)
    one_hot_env = TabularEnv(mdp, 64, one_hot=True, dtype=dtype)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    assert one_hot_env.single_observation_space == gym.spaces.Box(0.0, 1.0, (16,), dtype=np_dtype)
    assert index_env.single_observation_space == gym.spaces.Discrete(16)
    assert one_hot_env.single_action_space == index_env.single_action_space == gym.spaces.Discrete(4)
    # same seed, same draws: every observation (first, next and final) is the one-hot vector of the index, and
    # everything else is equal
    observations = 0
    for got, index in zip(rollout(one_hot_env, 0, 40), rollout(index_env, 0, 40)):
        if got.dim() == 2:
            assert got.shape == (64, 16) and got.dtype == dtype and index.dtype == torch.int64
            assert torch.equal(got, torch.nn.functional.one_hot(index, 16).to(dtype))
            observations += 1
        else:
            assert torch.equal(got, index)
    assert observations == 1 + 2 * 40


def test_make_builds_the_native_toy_text_envs() -> None:
    env = th.envs.make("FrozenLake-v1", n_envs=64, seed=0)
    assert isinstance(env, TabularEnv) and env.env_id == "FrozenLake-v1"
    reference = toy_text.frozen_lake("4x4")  # Gymnasium's default configuration: 4x4, slippery
    assert torch.equal(env.mdp.P, reference.P) and env.max_episode_steps == 100
    assert env.reset(seed=0).tolist() == [0] * 64
    assert isinstance(th.envs.make("FrozenLake-v1", n_envs=64, seed=0, backend="gymnasium"), GymnasiumVecEnv)
    assert isinstance(th.envs.make("FrozenLake-v1", n_envs=2, seed=0, backend="torch"), TabularEnv)
    # keyword arguments the model honours give the native env of that configuration; others go to Gymnasium
    deterministic = th.envs.make("FrozenLake-v1", n_envs=2, seed=0, env_kwargs={"is_slippery": False})
    assert isinstance(deterministic, TabularEnv) and torch.equal(deterministic.mdp.P, toy_text.frozen_lake(
        is_slippery=False).P)
    assert isinstance(th.envs.make("Taxi-v4", n_envs=2, seed=0, fickle_passenger=True), GymnasiumVecEnv)
    for env_id in TOY_TEXT:
        native, wrapped = th.envs.make(env_id, n_envs=2), gym.make(env_id)
        assert native.env_id == env_id
        assert native.single_observation_space == wrapped.observation_space
        assert native.single_action_space == wrapped.action_space
        assert native.max_episode_steps == gym.spec(env_id).max_episode_steps


def test_a_batched_gridworld() -> None:
    mdp = gridworld.classic(max_steps=30)
    start, plus, minus = mdp.grid.state(1, 1), mdp.grid.state(4, 3), mdp.grid.state(4, 2)
    terminal = int(torch.nonzero(mdp.terminal))
    env = batched(mdp, 512, one_hot=True)
    obs = env.reset(seed=0)
    assert obs.shape == (512, mdp.n_states) and (obs.argmax(1) == start).all()
    rng = np.random.default_rng(0)
    exits = {1.0: 0, -1.0: 0}
    truncations = 0
    for _ in range(100):
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(rng.integers(0, 4, 512)))
        # moving pays nothing; the exit action pays the exit's reward and enters the absorbing terminal state
        assert (reward[~terminated] == 0).all()
        assert (info["final_obs"][terminated].argmax(1) == terminal).all()
        for value in exits:
            exits[value] += int((reward[terminated] == value).sum())
        assert (obs[terminated | truncated].argmax(1) == start).all()
        truncations += int(truncated.sum())
    assert exits[1.0] > 0 and exits[-1.0] > 0 and truncations > 0
    # the exit squares pay their reward whatever the action (and whatever the noise)
    env.set_state(torch.tensor([plus, minus] * 256))
    _, reward, terminated, _, _ = env.step(torch.as_tensor(rng.integers(0, 4, 512)))
    assert terminated.all() and reward.tolist() == [1.0, -1.0] * 256


def test_the_step_traces_as_one_graph() -> None:
    # as for the classic-control envs: no host sync and no branch on a value in _advance, for every sampling path
    for env in (batched(toy_text.frozen_lake("4x4"), 8), batched(random_mdp(15, 3, n_terminal=1), 8),
                batched(nonuniform_start_mdp(), 8, one_hot=True)):
        env.reset(seed=0)
        inputs = (env._state, env._elapsed, env._returns, env._prepare_actions(torch.tensor([0, 1, 2] * 2 + [0, 1])),
                  env._step_random())
        traced = torch.compile(env._advance, fullgraph=True, backend="eager")(*inputs)
        for got, expected in zip(traced, env._advance(*inputs)):
            assert torch.equal(got, expected)


def test_bad_arguments_are_named() -> None:
    env = batched(toy_text.frozen_lake("4x4"), 2)
    env.reset(seed=0)
    with pytest.raises(IndexError):
        env.step(torch.tensor([0, 4]))  # would otherwise read state 1's row
    with pytest.raises(IndexError):
        env.step(torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match=r"state must have shape \(2,\)"):
        env.set_state(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer state indices"):
        env.set_state(torch.zeros(2))
    with pytest.raises(ValueError, match=r"must lie in \[0, 16\)"):
        env.set_state(torch.tensor([0, 16]))
    with pytest.raises(TypeError, match="must be a TabularMDP"):
        batched("FrozenLake-v1", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_episode_steps must be a positive int"):
        batched(toy_text.frozen_lake("4x4"), 2, max_episode_steps=0)
    with pytest.raises(ValueError, match="no native tabular env"):
        toy_text_env("Blackjack-v1", 2)
