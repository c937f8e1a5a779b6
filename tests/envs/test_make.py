"""``th.envs.make``'s knobs: one info format on every VecEnv, sync and async vectorisation, env_kwargs (native when
the native env honours them, tabular models of the configured env), wrappers by name, missing optional packages."""

from __future__ import annotations

import pickle
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.envs import INFO_KEYS, GymnasiumVecEnv, MissingDependencyError
from thorndike.envs.batched import CartPole, TabularEnv
from thorndike.envs.wrappers import WRAPPERS, apply_wrappers, register_wrapper


def run(venv, steps: int, seed: int = 0) -> list:
    """Everything ``steps`` steps of seeded random actions return (observations, rewards, flags and info)."""
    actions = torch.Generator().manual_seed(seed)
    outputs = [venv.reset(seed=seed)]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = venv.step(torch.randint(0, 2, (venv.n_envs,), generator=actions))
        outputs.append((obs, reward, terminated, truncated, info))
    return outputs


def assert_same_runs(a: list, b: list) -> None:
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    for (obs, reward, terminated, truncated, info), (obs_b, reward_b, terminated_b, truncated_b, info_b) in zip(
        a[1:], b[1:]
    ):
        for x, y in ((obs, obs_b), (reward, reward_b), (terminated, terminated_b), (truncated, truncated_b)):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
        assert set(info) == set(info_b) == set(INFO_KEYS)
        for key in INFO_KEYS:
            torch.testing.assert_close(info[key], info_b[key], rtol=0, atol=0)


# ---------------------------------------------------------------- one info format


@pytest.mark.parametrize(
    "kwargs",
    [dict(backend="torch"), dict(backend="gymnasium"), dict(backend="gymnasium", vectorization="async")],
    ids=["native", "sync", "async"],
)
def test_every_vec_env_returns_the_same_fixed_shape_info(kwargs: dict) -> None:
    venv = th.envs.make("CartPole-v1", n_envs=3, seed=0, **kwargs)
    try:
        returns = torch.zeros(3, dtype=torch.float64)
        lengths = torch.zeros(3, dtype=torch.int64)
        ended = 0
        for _ in range(60):
            obs, reward, terminated, truncated, info = venv.step(torch.zeros(3, dtype=torch.long))
            assert type(info) is dict and tuple(info) == INFO_KEYS
            assert info["final_obs"].shape == obs.shape and info["final_obs"].dtype == obs.dtype
            assert info["done"].dtype == torch.bool and info["done"].shape == (3,)
            assert info["episode_return"].dtype == torch.float64 and info["episode_length"].dtype == torch.int64
            assert all(value.device == venv.device for value in info.values())
            done = terminated | truncated
            returns += reward.double()
            lengths += 1
            assert torch.equal(info["done"], done)
            torch.testing.assert_close(info["episode_return"], returns)
            assert torch.equal(info["episode_length"], lengths)
            torch.testing.assert_close(info["final_obs"][~done], obs[~done])
            ended += int(done.sum())
            returns[done], lengths[done] = 0.0, 0
        assert ended >= 3  # always pushing left, every pole falls within 60 steps
    finally:
        venv.close()


def test_the_reward_normalizer_passes_the_info_through() -> None:
    venv = th.envs.make("CartPole-v1", n_envs=2, seed=0, normalize_reward=True)
    info = venv.step(torch.zeros(2, dtype=torch.long))[4]
    assert type(info) is dict and tuple(info) == INFO_KEYS


# ---------------------------------------------------------------- async vectorisation


def test_async_and_sync_give_identical_runs() -> None:
    sync = th.envs.make("CartPole-v1", n_envs=2, backend="gymnasium", vectorization="sync")
    asynchronous = th.envs.make("CartPole-v1", n_envs=2, backend="gymnasium", vectorization="async")
    try:
        assert isinstance(asynchronous, GymnasiumVecEnv) and asynchronous.vectorization == "async"
        assert_same_runs(run(sync, 80, seed=3), run(asynchronous, 80, seed=3))
    finally:
        asynchronous.close()


def test_async_state_dict_resumes_exactly_and_loads_sync_checkpoints() -> None:
    sync = th.envs.make("CartPole-v1", n_envs=2, backend="gymnasium")
    asynchronous = th.envs.make("CartPole-v1", n_envs=2, backend="gymnasium", vectorization="async")
    try:
        run(asynchronous, 7, seed=1)
        state = pickle.loads(pickle.dumps(asynchronous.state_dict()))
        expected = run_on(asynchronous, 30)
        asynchronous.load_state_dict(state)
        assert_same_runs(expected, run_on(asynchronous, 30))
        # the sync adapter loads the async checkpoint (and back), since both save the pickled copies
        sync.load_state_dict(state)
        assert_same_runs(expected, run_on(sync, 30))
    finally:
        asynchronous.close()


def run_on(venv, steps: int) -> list:
    """``steps`` steps from where ``venv`` is, with fixed actions; the first entry is a placeholder observation."""
    actions = torch.Generator().manual_seed(5)
    out = [torch.zeros(())]
    for _ in range(steps):
        out.append(venv.step(torch.randint(0, 2, (venv.n_envs,), generator=actions)))
    return out


class _Unpicklable(gym.Wrapper):
    def __reduce__(self):
        raise TypeError("holds a native handle")


def test_async_warns_once_when_the_copies_cannot_be_pickled() -> None:
    venv = th.envs.make(lambda: _Unpicklable(gym.make("CartPole-v1")), n_envs=2, seed=0, vectorization="async")
    try:
        with pytest.warns(UserWarning, match="cannot be pickled.*new episodes"):
            state = venv.state_dict()
        assert state["envs"] is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            venv.state_dict()
        venv.load_state_dict(state)  # keeps the running copies
        venv.step(torch.zeros(2, dtype=torch.long))
    finally:
        venv.close()


def test_async_needs_a_gymnasium_backend() -> None:
    with pytest.raises(ValueError, match="vectorization must be one of"):
        th.envs.make("CartPole-v1", vectorization="threads")
    with pytest.raises(ValueError, match="backend='gymnasium' for async"):
        th.envs.make("CartPole-v1", backend="torch", vectorization="async")
    # native envs are one tensor: auto keeps them native whatever the vectorisation
    assert isinstance(th.envs.make("CartPole-v1", vectorization="async"), CartPole)


# ---------------------------------------------------------------- env_kwargs


def test_deterministic_frozen_lake_through_make_on_auto_and_gymnasium() -> None:
    kwargs = {"is_slippery": False}
    native = th.envs.make("FrozenLake-v1", n_envs=2, seed=0, env_kwargs=kwargs)
    wrapped = th.envs.make("FrozenLake-v1", n_envs=2, seed=0, backend="gymnasium", env_kwargs=kwargs)
    assert isinstance(native, TabularEnv) and isinstance(wrapped, GymnasiumVecEnv)
    right, down = torch.tensor([2, 2]), torch.tensor([1, 1])
    path = [right, right, down, down, down, right]  # 0 -> 1 -> 2 -> 6 -> 10 -> 14 -> 15 (the goal)
    for venv in (native, wrapped):
        observations = [venv.step(action)[0].tolist() for action in path[:-1]]
        assert observations == [[1, 1], [2, 2], [6, 6], [10, 10], [14, 14]]  # no slipping
        obs, reward, terminated, _, info = venv.step(path[-1])
        assert terminated.tolist() == [True, True] and reward.tolist() == [1.0, 1.0] and obs.tolist() == [0, 0]
        assert info["final_obs"].tolist() == [15, 15] and info["episode_length"].tolist() == [6, 6]
    # native and Gymnasium step for step, random actions included (deterministic dynamics, one start state)
    assert_same_runs(run(native, 50), run(wrapped, 50))


@pytest.mark.parametrize(
    ("env_id", "env_kwargs"),
    [
        ("FrozenLake-v1", {"is_slippery": False}),
        ("FrozenLake-v1", {"map_name": "8x8"}),
        ("FrozenLake-v1", {"map_name": "8x8", "is_slippery": False, "max_episode_steps": 30}),
        ("CliffWalking-v1", {"is_slippery": True}),
        ("Taxi-v4", {"is_rainy": True}),
    ],
)
def test_tabular_model_is_gymnasiums_table_for_the_configured_env(env_id: str, env_kwargs: dict) -> None:
    mdp = th.envs.tabular_model(env_id, env_kwargs=env_kwargs)
    env = gym.make(env_id, **env_kwargs)
    table = env.unwrapped.P
    n_states, n_actions = env.observation_space.n, env.action_space.n
    assert (mdp.n_states, mdp.n_actions) == (n_states, n_actions)
    assert mdp.max_steps == env.spec.max_episode_steps
    P = torch.zeros(n_states, n_actions, n_states, dtype=torch.float64)
    for s in range(n_states):
        for a in range(n_actions):
            for p, s2, _, _ in table[s][a]:
                P[s, a, s2] += p
    torch.testing.assert_close(mdp.P.to_dense() if mdp.P.is_sparse else mdp.P, P)
    assert th.envs.require_tabular_model(env_id, env_kwargs).n_states == n_states


def test_frozen_lake_models_by_kwargs() -> None:
    deterministic = th.envs.tabular_model("FrozenLake-v1", env_kwargs={"is_slippery": False})
    assert ((deterministic.P == 0) | (deterministic.P == 1)).all()
    assert th.envs.tabular_model("FrozenLake-v1", {"map_name": "8x8"}).n_states == 64
    assert th.envs.tabular_model("FrozenLake-v1", {"render_mode": "ansi"}).n_states == 16  # display only
    native = th.envs.make("FrozenLake-v1", n_envs=2, seed=0, env_kwargs={"map_name": "8x8"}, backend="torch")
    assert native.n_states == 64 and native.max_episode_steps == 100  # FrozenLake-v1's limit, as in Gymnasium


def test_kwargs_a_model_cannot_honour_fall_back_or_are_refused() -> None:
    fickle = {"fickle_passenger": True}
    assert isinstance(th.envs.make("Taxi-v4", n_envs=2, seed=0, env_kwargs=fickle), GymnasiumVecEnv)
    with pytest.raises(ValueError, match="does not take fickle_passenger.*backend='gymnasium'"):
        th.envs.make("Taxi-v4", n_envs=2, env_kwargs=fickle, backend="torch")
    assert th.envs.tabular_model("Taxi-v4", fickle) is None
    with pytest.raises(ValueError, match="cannot honour 'fickle_passenger'"):
        th.envs.require_tabular_model("Taxi-v4", fickle)
    # a Gymnasium keyword the native CartPole does not take: Gymnasium on auto, an error on torch
    barto = {"sutton_barto_reward": True}
    assert isinstance(th.envs.make("CartPole-v1", env_kwargs=barto), GymnasiumVecEnv)
    with pytest.raises(ValueError, match="does not take sutton_barto_reward"):
        th.envs.make("CartPole-v1", env_kwargs=barto, backend="torch")
    # one the native env does take stays native
    limited = th.envs.make("CartPole-v1", n_envs=2, env_kwargs={"max_episode_steps": 9}, backend="torch")
    assert limited.max_episode_steps == 9
    with pytest.raises(ValueError, match="given both"):
        th.envs.make("FrozenLake-v1", env_kwargs={"is_slippery": False}, is_slippery=True)


# ---------------------------------------------------------------- wrappers by name


class Tag(gym.ObservationWrapper):
    """Appends ``tag`` to a record of the wrappers applied, innermost first."""

    def __init__(self, env: gym.Env, tag: str, scale: float = 1.0):
        super().__init__(env)
        self.applied = [*getattr(env, "applied", []), tag]
        self.scale = scale

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation * self.scale


@pytest.fixture
def tag_wrapper():
    register_wrapper("test_tag", Tag)
    yield
    WRAPPERS.pop("test_tag")


def test_wrappers_apply_in_order_with_their_kwargs(tag_wrapper) -> None:
    specs = [{"name": "test_tag", "tag": "inner", "scale": 2.0}, {"name": "test_tag", "tag": "outer", "scale": 3.0}]
    env = apply_wrappers(gym.make("CartPole-v1"), specs)
    assert env.applied == ["inner", "outer"] and env.env.scale == 2.0 and env.scale == 3.0
    plain = th.envs.make("CartPole-v1", n_envs=2, seed=0, backend="gymnasium")
    wrapped = th.envs.make("CartPole-v1", n_envs=2, seed=0, wrappers=specs)
    assert isinstance(wrapped, GymnasiumVecEnv)  # auto falls back to Gymnasium for wrappers
    assert [env.applied for env in wrapped._venv.envs] == [["inner", "outer"]] * 2
    torch.testing.assert_close(wrapped.reset(seed=0), plain.reset(seed=0) * 6.0)


def test_registered_gymnasium_wrappers() -> None:
    venv = th.envs.make("CartPole-v1", n_envs=2, seed=0, wrappers=[{"name": "time_limit", "max_episode_steps": 4}])
    truncated = [venv.step(torch.tensor([0, 1]))[3].tolist() for _ in range(4)]
    assert truncated[-1] == [True, True] and truncated[:-1] == [[False, False]] * 3
    venv = th.envs.make("Pendulum-v1", n_envs=2, seed=0, wrappers=["clip_action", "flatten_observation"])
    assert venv.step(torch.tensor([[5.0], [-5.0]]))[0].shape == (2, 3)
    assert {"time_limit", "clip_action", "rescale_action", "flatten_observation"} <= set(WRAPPERS)


def test_wrapper_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"unknown wrapper 'clip_actions'\. Did you mean 'clip_action'.*Registered"):
        th.envs.make("CartPole-v1", wrappers=["clip_actions"])
    with pytest.raises(ValueError, match="does not take these arguments"):
        th.envs.make("CartPole-v1", wrappers=[{"name": "time_limit", "max_steps": 4}])
    with pytest.raises(ValueError, match="needs a 'name' entry"):
        th.envs.make("CartPole-v1", wrappers=[{"max_episode_steps": 4}])
    with pytest.raises(TypeError, match="a list of names"):
        th.envs.make("CartPole-v1", wrappers="clip_action")
    with pytest.raises(ValueError, match="wrappers apply to Gymnasium copies only"):
        th.envs.make("CartPole-v1", wrappers=["clip_action"], backend="torch")
    with pytest.raises(ValueError, match="already registered"):
        register_wrapper("clip_action", lambda env: env)


# ---------------------------------------------------------------- missing optional dependencies


def _hide(monkeypatch: pytest.MonkeyPatch, module: str, *env_packages: str) -> None:
    """Make ``import module`` fail, and forget Gymnasium's env modules that imported it (first: when ``module`` is
    itself one of them, its None entry must stay, or a second import of its C extension aborts the process)."""
    for name in list(sys.modules):
        if name.startswith(env_packages):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(
    ("env_id", "module", "env_packages", "message"),
    [
        ("LunarLander-v3", "Box2D", ("gymnasium.envs.box2d",), 'LunarLander-v3 needs Box2D: pip install -e ".[box2d]"'),
        ("Ant-v5", "mujoco", ("gymnasium.envs.mujoco",), 'Ant-v5 needs MuJoCo: pip install -e ".[mujoco]"'),
        ("ALE/Pong-v5", "ale_py", ("ale_py",), 'ALE/Pong-v5 needs ale-py: pip install -e ".[atari]"'),
    ],
)
def test_a_missing_optional_dependency_is_one_line(monkeypatch, env_id, module, env_packages, message) -> None:
    _hide(monkeypatch, module, *env_packages)
    if env_id.startswith("ALE/"):  # ale-py registers its ids when imported (test_atari imports it): forget them too
        for name in [name for name in gym.registry if name.startswith("ALE/")]:
            monkeypatch.delitem(gym.registry, name)
    with pytest.raises(MissingDependencyError) as caught:
        th.envs.make(env_id, n_envs=1)
    assert str(caught.value) == message and "\n" not in str(caught.value)
    assert isinstance(caught.value, ModuleNotFoundError)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_lunar_lander_without_box2d_names_the_extra() -> None:
    try:
        import Box2D  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r'needs Box2D: pip install -e "\.\[box2d\]"'):
            th.envs.make("LunarLander-v3")
    else:
        pytest.skip("Box2D is installed")
