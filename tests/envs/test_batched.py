"""Native batched torch envs against Gymnasium: identical states and actions give identical steps; plus the VecEnv
conventions (same-step autoreset, final_obs, episode statistics, time limits), seeding, checkpoints and scale."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit

import thorndike as th
from thorndike.envs import GymnasiumVecEnv
from thorndike.envs.batched import ENVS, Acrobot, BatchedEnv, CartPole, MountainCar, Pendulum
from thorndike.envs.vec_env import INFO_KEYS

ENV_IDS = [env.env_id for env in ENVS]
NATIVE = {env.env_id: env for env in ENVS}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Gymnasium's observation computed in float64 from its (float64) state, to compare the float64 variant beyond the
# float32 rounding of Gymnasium's own observations.
REFERENCE_OBS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "CartPole-v1": lambda s: s,
    "MountainCar-v0": lambda s: s,
    "Acrobot-v1": lambda s: np.array([np.cos(s[0]), np.sin(s[0]), np.cos(s[1]), np.sin(s[1]), s[2], s[3]]),
}

# Start states spread over the whole region the dynamics visit (walls, angle wraps and velocity bounds included),
# not only the small reset region, so every branch of each step is exercised.
WIDE_STATES: dict[str, tuple[list[float], list[float]]] = {
    "CartPole-v1": ([-2.3, -2.0, -0.2, -2.0], [2.3, 2.0, 0.2, 2.0]),
    "Acrobot-v1": ([-math.pi, -math.pi, -4 * math.pi, -9 * math.pi], [math.pi, math.pi, 4 * math.pi, 9 * math.pi]),
    "MountainCar-v0": ([-1.2, -0.07], [0.6, 0.07]),
    "MountainCarContinuous-v0": ([-1.2, -0.07], [0.6, 0.07]),
    "Pendulum-v1": ([-4 * math.pi, -8.0], [4 * math.pi, 8.0]),
}
# Float32 Acrobot is compared from states with the speeds play reaches (random play stays below about 5 and 8 rad/s):
# at the velocity bounds (4 pi, 9 pi) one float32 RK4 step loses up to 1e-3 to cancellation, which the float64
# variant below shows is rounding, not a different model.
FLOAT32_ACROBOT_STATES = ([-math.pi, -math.pi, -4.0, -8.0], [math.pi, math.pi, 4.0, 8.0])


def time_limit(env: gym.Env) -> TimeLimit:
    while not isinstance(env, TimeLimit):
        env = env.env
    return env


def gym_state(env: gym.Env) -> np.ndarray:
    return np.asarray(env.unwrapped.state, dtype=np.float64)


def random_actions(space: gym.Space, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list]:
    """Actions for the native env and the ones Gymnasium receives; Box actions are drawn partly outside the space
    and clipped for Gymnasium, as GymnasiumVecEnv does, so clipping is checked too."""
    if isinstance(space, gym.spaces.Discrete):
        actions = rng.integers(0, space.n, n)
        return torch.as_tensor(actions), [int(a) for a in actions]
    actions = rng.uniform(1.5 * space.low, 1.5 * space.high, (n, *space.shape)).astype(np.float32)
    return torch.as_tensor(actions), list(np.clip(actions, space.low, space.high))


def compare_with_gymnasium(
    env_id: str,
    dtype: torch.dtype,
    bounds: tuple[list[float], list[float]],
    steps: int,
    one_step_at_a_time: bool,
    tolerance: float,
    n: int = 16,
    seed: int = 0,
) -> tuple[int, int]:
    """Step ``n`` native copies and ``n`` Gymnasium envs from the same states with the same actions; assert that
    observations (the true last one where an episode ended), rewards and both flags agree; return the numbers of
    terminations and truncations seen.

    After an episode ends, the Gymnasium copy is reset and its new state copied into the native copy (the two reset
    generators differ). Half the copies start close to the time limit so that truncations happen too.
    With ``one_step_at_a_time`` every step starts from Gymnasium's float64 state instead of the native env's own.
    """
    rng = np.random.default_rng(seed)
    native = NATIVE[env_id](n, dtype=dtype)
    references = [gym.make(env_id) for _ in range(n)]
    limit = native.max_episode_steps
    elapsed = rng.integers(0, limit, n)
    elapsed[: n // 2] = limit - 1 - rng.integers(0, 30, n // 2)
    states = rng.uniform(*bounds, (n, len(bounds[0])))
    for i, ref in enumerate(references):
        ref.reset(seed=seed + i)
        ref.unwrapped.state = states[i].copy()
        time_limit(ref)._elapsed_steps = int(elapsed[i])
    native.set_state(torch.as_tensor(states), torch.as_tensor(elapsed))
    float64 = dtype == torch.float64
    terminations = truncations = 0
    for _ in range(steps):
        if one_step_at_a_time:
            native.set_state(torch.as_tensor(np.stack([gym_state(ref) for ref in references])))
        actions, gym_actions = random_actions(native.single_action_space, n, rng)
        obs, reward, terminated, truncated, info = native.step(actions)
        resynced = native.get_state()[0]
        for i, ref in enumerate(references):
            ref_obs, ref_reward, ref_terminated, ref_truncated, _ = ref.step(gym_actions[i])
            ended = ref_terminated or ref_truncated
            assert bool(terminated[i]) == ref_terminated and bool(truncated[i]) == ref_truncated
            native_obs = info["final_obs"][i] if ended else obs[i]
            expected = REFERENCE_OBS[env_id](gym_state(ref)) if float64 else ref_obs
            torch.testing.assert_close(native_obs, torch.as_tensor(expected, dtype=dtype), atol=tolerance,
                                       rtol=tolerance)
            # rewards are float32 in every variant (the VecEnv convention)
            assert reward[i].item() == pytest.approx(ref_reward, rel=1e-6, abs=1e-5)
            if ended:
                terminations += ref_terminated
                truncations += ref_truncated
                ref.reset()
                resynced[i] = torch.as_tensor(gym_state(ref))
        native.set_state(resynced)
    return terminations, truncations


def assert_steps_equal(env, actions, expected) -> None:
    """``env`` stepped with ``actions`` returns exactly the ``expected`` step tuples (obs, flags, statistics)."""
    for a, (obs, reward, terminated, truncated, info) in zip(actions, expected):
        r_obs, r_reward, r_terminated, r_truncated, r_info = env.step(a)
        assert torch.equal(r_obs, obs) and torch.equal(r_reward, reward)
        assert torch.equal(r_terminated, terminated) and torch.equal(r_truncated, truncated)
        for key in INFO_KEYS:
            assert torch.equal(r_info[key], info[key]), key


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_float32_steps_match_gymnasium(env_id: str) -> None:
    # Acrobot (RK4 over 0.2 s) and Pendulum are chaotic: float32 rounding (and, for Pendulum, Gymnasium's own float32
    # torque term) grows past 1e-5 within tens of steps, so each step starts from Gymnasium's float64 state. The
    # others run freely for the whole comparison, resynchronised only after resets.
    chaotic = env_id in ("Acrobot-v1", "Pendulum-v1")
    bounds = FLOAT32_ACROBOT_STATES if env_id == "Acrobot-v1" else WIDE_STATES[env_id]
    terminations, truncations = compare_with_gymnasium(env_id, torch.float32, bounds, steps=120,
                                                       one_step_at_a_time=chaotic, tolerance=1e-5)
    assert truncations > 0
    assert terminations > 0 or env_id == "Pendulum-v1"  # Pendulum never terminates


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "CartPole-v1", "MountainCar-v0"])
def test_float64_steps_match_gymnasium_to_1e_9(env_id: str) -> None:
    # Gymnasium computes these three in float64 throughout (Pendulum's torque term and MountainCarContinuous's
    # state are float32 there), so the float64 variant must agree to rounding, whole trajectories long, from
    # anywhere in the state space: Acrobot at its velocity bounds included.
    terminations, truncations = compare_with_gymnasium(env_id, torch.float64, WIDE_STATES[env_id], steps=120,
                                                       one_step_at_a_time=False, tolerance=1e-9)
    assert terminations > 0 and truncations > 0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_time_limits_and_make_backends(env_id: str) -> None:
    reference = gym.make(env_id)
    env = th.envs.make(env_id, n_envs=3, seed=0)
    assert isinstance(env, NATIVE[env_id])
    assert env.single_observation_space == reference.observation_space
    assert env.single_action_space == reference.action_space
    assert env.max_episode_steps == gym.spec(env_id).max_episode_steps
    assert isinstance(th.envs.make(env_id, n_envs=3, seed=0, backend="gymnasium"), GymnasiumVecEnv)
    assert isinstance(th.envs.make(env_id, n_envs=3, seed=0, backend="torch"), NATIVE[env_id])
    obs = env.reset(seed=1)
    assert obs.shape == (3, *reference.observation_space.shape) and obs.dtype == torch.float32


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_states_fill_gymnasiums_reset_region(env_id: str) -> None:
    reference = gym.make(env_id)
    gym_states = []
    for seed in range(300):
        reference.reset(seed=seed)
        gym_states.append(gym_state(reference))
    gym_states = torch.as_tensor(np.stack(gym_states))
    env = NATIVE[env_id](4096)
    env.reset(seed=0)
    states = env.get_state()[0].double()
    # autoreset draws from the same distribution as reset: collect the states copies are reset to on a step
    env.set_state(states, elapsed_steps=env.max_episode_steps - 1)
    autoreset = env.step(random_actions(env.single_action_space, 4096, np.random.default_rng(0))[0])
    assert autoreset[4]["done"].all()
    for sample in (states, env.get_state()[0].double()):
        low, high = torch.tensor(env.reset_low, dtype=torch.float64), torch.tensor(env.reset_high, dtype=torch.float64)
        # Gymnasium's samples lie in the same box, and ours fill it uniformly (mean mid-box, std width / sqrt(12))
        assert (gym_states >= low).all() and (gym_states <= high).all()
        assert (sample >= low).all() and (sample <= high).all()
        width = high - low
        assert ((sample.mean(0) - (low + high) / 2).abs() <= 0.02 * width).all()
        assert ((sample.std(0) - width / math.sqrt(12)).abs() <= 0.02 * width).all()
        spread = (sample.max(0).values - sample.min(0).values) >= 0.99 * width
        assert spread[width > 0].all()


def test_same_step_autoreset_keeps_the_true_final_observation() -> None:
    env = CartPole(4)
    env.reset(seed=0)
    # copies 0 and 2 are about to tip over; 1 and 3 are upright
    state = torch.tensor([[0.0, 0.0, 0.2, 2.0], [0.0, 0.0, 0.0, 0.0], [2.39, 1.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0]])
    env.set_state(state, elapsed_steps=7)
    obs, reward, terminated, truncated, info = env.step(torch.tensor([1, 0, 1, 1]))
    assert terminated.tolist() == [True, False, True, False] and not truncated.any()
    assert torch.equal(info["done"], terminated)
    # the ended copies return their next episode's first observation, inside the reset region ...
    assert (obs[terminated].abs() <= 0.05).all()
    # ... their true last observation is kept, and it is one physics step from the old state
    assert info["final_obs"][0, 2] > 0.2 and info["final_obs"][2, 0] > 2.4
    # the others report their ordinary next observation as final_obs
    torch.testing.assert_close(info["final_obs"][~terminated], obs[~terminated], rtol=0, atol=0)
    torch.testing.assert_close(reward, torch.ones(4))
    # the env goes on from what it returned, with fresh counters for the new episodes
    state_after, elapsed = env.get_state()
    torch.testing.assert_close(state_after, obs, rtol=0, atol=0)
    assert elapsed.tolist() == [0, 8, 0, 8]
    # the returned tensors are the caller's: changing them leaves the env alone
    obs.zero_()
    assert not torch.equal(env.get_state()[0], obs)


def test_episode_statistics_count_each_finished_episode() -> None:
    env = Pendulum(5, max_episode_steps=13)
    env.reset(seed=0)
    env.set_state(env.get_state()[0], elapsed_steps=torch.tensor([0, 3, 6, 9, 12]))
    returns = torch.zeros(5, dtype=torch.float64)
    lengths = torch.tensor([0, 3, 6, 9, 12])
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(40):
        _, reward, terminated, truncated, info = env.step(random_actions(env.single_action_space, 5, rng)[0])
        returns += reward.double()
        lengths += 1
        done = terminated | truncated
        assert torch.equal(done, lengths == 13)
        # every copy's running episode, up to and including the step that ends it
        torch.testing.assert_close(info["episode_return"], returns)
        assert torch.equal(info["episode_length"], lengths)
        assert torch.equal(info["done"], done)
        assert info["episode_return"].dtype == torch.float64 and info["episode_length"].dtype == torch.int64
        finished += int(done.sum())
        returns[done] = 0.0
        lengths[done] = 0
    assert finished == 5 * 3 + 1  # copy 4 ends at steps 1, 14, 27 and 40; the others three times each


def test_step_info_is_a_plain_dict_of_fixed_shape_entries() -> None:
    env = CartPole(3)
    env.reset(seed=0)
    env.set_state(torch.tensor([[0.0, 0.0, 0.2, 2.0], [0.0] * 4, [0.0] * 4]), elapsed_steps=4)
    info = env.step(torch.tensor([1, 1, 1]))[4]
    assert type(info) is dict and tuple(info) == INFO_KEYS
    assert info["done"].tolist() == [True, False, False]
    assert info["episode_length"].tolist() == [5, 5, 5]
    assert info["episode_return"].tolist() == [1.0] * 3  # set_state moved the clock, not the return since reset
    assert info["final_obs"].shape == (3, 4)


# A state and an action under which nothing terminates for a few steps: at rest upright, hanging, or in the valley.
CALM: dict[str, tuple[list[float], torch.Tensor]] = {
    "CartPole-v1": ([0.0, 0.0, 0.0, 0.0], torch.tensor([0, 1])),
    "Acrobot-v1": ([0.0, 0.0, 0.0, 0.0], torch.tensor([1, 1])),
    "MountainCar-v0": ([-0.5, 0.0], torch.tensor([1, 1])),
    "MountainCarContinuous-v0": ([-0.5, 0.0], torch.zeros(2, 1)),
    "Pendulum-v1": ([0.0, 0.0], torch.zeros(2, 1)),
}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_time_limit_truncates_at_the_registered_step(env_id: str) -> None:
    env = NATIVE[env_id](2)
    env.reset(seed=0)
    limit = gym.spec(env_id).max_episode_steps
    state, actions = CALM[env_id]
    env.set_state(torch.tensor([state, state]), elapsed_steps=limit - 3)
    steps = [env.step(actions) for _ in range(3)]
    assert [truncated.tolist() for _, _, _, truncated, _ in steps] == [[False, False], [False, False], [True, True]]
    assert not any(terminated.any() for _, _, terminated, _, _ in steps)
    assert steps[-1][4]["episode_length"].tolist() == [limit, limit] and steps[-1][4]["done"].all()


def test_pendulum_and_mountain_car_truncate_a_whole_episode_at_the_limit() -> None:
    for env, actions in ((Pendulum(3), torch.zeros(3, 1)), (MountainCar(3), torch.ones(3, dtype=torch.long))):
        env.reset(seed=0)
        for step in range(1, env.max_episode_steps + 1):
            _, _, terminated, truncated, info = env.step(actions)
            assert not terminated.any()
            assert bool(truncated.all()) == (step == env.max_episode_steps)
        assert info["episode_length"].tolist() == [env.max_episode_steps] * 3 and info["done"].all()


def test_truncation_and_termination_can_coincide_as_in_gymnasium() -> None:
    env = CartPole(1)
    env.reset(seed=0)
    env.set_state(torch.tensor([[0.0, 0.0, 0.2, 2.0]]), elapsed_steps=499)
    reference = gym.make("CartPole-v1")
    reference.reset(seed=0)
    reference.unwrapped.state = np.array([0.0, 0.0, 0.2, 2.0])
    time_limit(reference)._elapsed_steps = 499
    _, _, terminated, truncated, _ = env.step(torch.tensor([1]))
    _, _, ref_terminated, ref_truncated, _ = reference.step(1)
    assert (bool(terminated[0]), bool(truncated[0])) == (ref_terminated, ref_truncated) == (True, True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeding_is_deterministic(env_id: str) -> None:
    def run(seed: int) -> list[torch.Tensor]:
        env = NATIVE[env_id](8)
        rng = np.random.default_rng(0)
        outputs = [env.reset(seed=seed)]
        for _ in range(60):
            obs, reward, _, _, info = env.step(random_actions(env.single_action_space, 8, rng)[0])
            outputs += [obs, reward, info["final_obs"]]
        return outputs + [env.reset()]  # an unseeded reset continues the seeded stream

    first, again, other = run(3), run(3), run(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], first[-1])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_state_dict_resumes_exactly(env_id: str) -> None:
    env = NATIVE[env_id](6)
    env.reset(seed=5)
    rng = np.random.default_rng(1)
    actions = [random_actions(env.single_action_space, 6, rng)[0] for _ in range(150)]
    for a in actions[:50]:
        env.step(a)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)  # the state goes through a checkpoint file's serialisation
    expected = [env.step(a) for a in actions[50:]]
    buffer.seek(0)
    resumed = NATIVE[env_id](6)
    resumed.reset(seed=99)
    resumed.load_state_dict(torch.load(buffer))
    assert_steps_equal(resumed, actions[50:], expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_4096_copies_step_in_one_call(env_id: str, device: str) -> None:
    n = 4096
    env = NATIVE[env_id](n, device=device)
    obs = env.reset(seed=0)
    assert obs.shape == (n, *env.single_observation_space.shape) and obs.device.type == device
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs, reward, terminated, truncated, info = env.step(random_actions(env.single_action_space, n, rng)[0])
    assert reward.shape == terminated.shape == truncated.shape == (n,)
    assert (reward.dtype, terminated.dtype, truncated.dtype) == (torch.float32, torch.bool, torch.bool)
    assert info["final_obs"].shape == obs.shape and torch.isfinite(obs).all()
    # each copy is independent of the batch: one step of all 4096 equals Gymnasium copy by copy
    states = env.get_state()[0].cpu().double().numpy()
    actions, gym_actions = random_actions(env.single_action_space, n, rng)
    _, reward, terminated, _, info = env.step(actions)
    reference = gym.make(env_id).unwrapped
    reference.reset(seed=0)
    expected_obs, expected_reward, expected_terminated = [], [], []
    for i in range(n):
        reference.reset()  # forget the previous copy's termination (CartPole pays 0 after one)
        reference.state = states[i].copy()
        ref_obs, ref_reward, ref_terminated, _, _ = reference.step(gym_actions[i])
        expected_obs.append(ref_obs)
        expected_reward.append(ref_reward)
        expected_terminated.append(ref_terminated)
    torch.testing.assert_close(info["final_obs"].cpu(), torch.as_tensor(np.stack(expected_obs)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reward.cpu().double(), torch.as_tensor(expected_reward, dtype=torch.float64),
                               atol=1e-5, rtol=1e-6)
    assert terminated.cpu().tolist() == expected_terminated


def test_box_actions_are_clipped_and_discrete_ones_checked() -> None:
    env = Pendulum(2)
    env.reset(seed=0)
    state = env.get_state()
    far = env.step(torch.tensor([[100.0], [-100.0]]))
    env.set_state(*state)
    bound = env.step(torch.tensor([[2.0], [-2.0]]))
    assert torch.equal(far[0], bound[0]) and torch.equal(far[1], bound[1])
    cartpole = CartPole(2)
    cartpole.reset(seed=0)
    with pytest.raises(IndexError):
        cartpole.step(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"expects actions of shape \(2,\)"):
        cartpole.step(torch.tensor([0, 1, 1]))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CartPole(0), "n_envs must be a positive int"),
        (lambda: CartPole(2, dtype=torch.float16), "dtype must be torch.float32 or torch.float64"),
        (lambda: CartPole(2, max_episode_steps=0), "max_episode_steps must be a positive int"),
        (lambda: CartPole(2).set_state(torch.zeros(3, 4)), r"state must have shape \(2, 4\)"),
        (lambda: CartPole(2).load_state_dict(CartPole(3).state_dict()), r"state must have shape \(2, 4\)"),
    ],
)
def test_bad_arguments_are_named(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="call reset"):
        Acrobot(2).step(torch.tensor([0, 1]))


def test_native_envs_work_under_the_reward_normaliser() -> None:
    env = th.envs.make("MountainCarContinuous-v0", n_envs=4, seed=0, normalize_reward=True)
    assert isinstance(env, th.envs.NormalizeReward) and isinstance(env.env, BatchedEnv)
    obs, reward, _, _, info = env.step(torch.zeros(4, 1))
    assert obs.dtype == reward.dtype == info["final_obs"].dtype == torch.float32


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_the_step_traces_as_one_graph(env_id: str) -> None:
    # fullgraph tracing fails on anything that would sync with the host or branch on a tensor's value (.item(),
    # `if tensor.any()`, data-dependent shapes), so this guards the step's fitness for torch.compile and CUDA graphs.
    # The "eager" backend only traces (no code generation), which keeps the test fast.
    env = NATIVE[env_id](8)
    env.reset(seed=0)
    actions = env._prepare_actions(random_actions(env.single_action_space, 8, np.random.default_rng(0))[0])
    inputs = (env._state, env._elapsed, env._returns, actions, env._sample_initial_states())
    traced = torch.compile(env._advance, fullgraph=True, backend="eager")(*inputs)
    for got, expected in zip(traced, env._advance(*inputs)):
        assert torch.equal(got, expected)


def test_acrobot_wraps_angles_by_whole_turns_like_gymnasium() -> None:
    from gymnasium.envs.classic_control.acrobot import wrap

    pi = math.pi
    angles = [-7.5 * pi, -3 * pi, -pi - 1e-9, -pi, 0.0, pi, pi + 1e-9, 3.2 * pi, 10.0]
    wrapped = torch.tensor(angles, dtype=torch.float64)
    Acrobot(1, dtype=torch.float64)._wrap_(wrapped)
    expected = torch.tensor([wrap(a, -math.pi, math.pi) for a in angles], dtype=torch.float64)
    torch.testing.assert_close(wrapped, expected, rtol=0, atol=1e-12)


def test_draws_owed_by_continue_episodes_keep_the_stream_and_yield_to_a_reseed() -> None:
    """continue_episodes defers the initial-state draws it would throw away; the stream still continues exactly
    as if each step had drawn, a reseed forgets what was owed, and so does loading a saved state."""
    def played(env):
        state = env.begin_episodes()
        for _ in range(7):
            state, _, _ = env.continue_episodes(state, torch.ones(env.n_envs, dtype=torch.int64))
        return env

    deferred = played(th.envs.make("CartPole-v1", n_envs=5, seed=1, backend="torch"))
    drawn = th.envs.make("CartPole-v1", n_envs=5, seed=1, backend="torch")
    drawn.reset()
    for _ in range(7):
        drawn._step_random()  # what step() would have drawn
    assert deferred._owed_draws == 7
    assert torch.equal(deferred.reset(), drawn.reset())
    assert torch.equal(played(deferred).reset(seed=4), th.envs.make("CartPole-v1", n_envs=5).reset(seed=4))
    saved = th.envs.make("CartPole-v1", n_envs=5, seed=2, backend="torch")
    saved.reset()
    snapshot = saved.state_dict()
    after_load = played(th.envs.make("CartPole-v1", n_envs=5, seed=1, backend="torch"))
    after_load.load_state_dict(snapshot)
    assert torch.equal(after_load.reset(), saved.reset())
