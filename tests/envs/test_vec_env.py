"""The torch VecEnv over Gymnasium: same-step autoreset, final observations, episode statistics, normalisation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.envs import GymnasiumVecEnv, NormalizeReward, env_builder


def test_same_step_autoreset_keeps_the_true_final_observation() -> None:
    venv = th.envs.make("CartPole-v1", n_envs=2, seed=0, backend="gymnasium")
    single = gym.make("CartPole-v1")
    single_obs, _ = single.reset(seed=0)  # copy 0 is seeded with seed + 0, as Gymnasium's vector envs do
    pushes = torch.zeros(2, dtype=torch.long)  # always push left: the pole falls within a few dozen steps
    for t in range(1, 200):
        obs, reward, terminated, truncated, info = venv.step(pushes)
        single_obs, _, single_term, _, _ = single.step(0)
        done = terminated | truncated
        # copies that did not end report their ordinary next observation as final_obs
        torch.testing.assert_close(info["final_obs"][~done], obs[~done])
        if terminated[0]:
            assert single_term
            # the step that ends the episode returns the next episode's first observation ...
            assert not torch.allclose(obs[0], torch.as_tensor(single_obs))
            # ... and keeps the ended episode's last one for bootstrapping
            torch.testing.assert_close(info["final_obs"][0], torch.as_tensor(single_obs))
            assert info["done"][0] and info["episode_length"][0] == t and info["episode_return"][0] == t
            break
        torch.testing.assert_close(obs[0], torch.as_tensor(single_obs))
    else:
        pytest.fail("the episode never terminated")


def test_episode_statistics_count_raw_rewards_of_each_finished_episode() -> None:
    venv = th.envs.make("CartPole-v1", n_envs=3, seed=1, normalize_reward=True)
    lengths = torch.zeros(3, dtype=torch.long)
    seen = []
    for _ in range(100):
        _, reward, terminated, truncated, info = venv.step(torch.ones(3, dtype=torch.long))
        lengths += 1
        done = terminated | truncated
        assert torch.equal(info["done"], done)
        assert torch.equal(info["episode_length"], lengths)
        # CartPole pays +1 per step, so the raw return equals the length even though rewards are normalised
        assert torch.equal(info["episode_return"], lengths.double())
        seen += lengths[done].tolist()
        lengths[done] = 0
        assert not torch.allclose(reward, torch.ones(3))
    assert len(seen) >= 3


def test_box_actions_are_clipped_to_the_space() -> None:
    venv = th.envs.make("Pendulum-v1", n_envs=2, seed=0, backend="gymnasium")
    obs = venv.reset(seed=0)
    reference = gym.make("Pendulum-v1")
    reference.reset(seed=0)
    _, reward, *_ = venv.step(torch.tensor([[100.0], [-100.0]]))
    _, ref_reward, *_ = reference.step(np.array([2.0], dtype=np.float32))
    assert obs.dtype == torch.float32
    assert reward[0].item() == pytest.approx(ref_reward, rel=1e-6)


def test_reward_normalizer_state_round_trips_and_freezes() -> None:
    venv = th.envs.make("CartPole-v1", n_envs=4, seed=0, normalize_reward=True)
    for _ in range(50):
        venv.step(torch.randint(0, 2, (4,)))
    state = venv.state_dict()
    other = th.envs.make("CartPole-v1", n_envs=4, seed=9, normalize_reward=True)
    other.load_state_dict(state)
    assert isinstance(venv, NormalizeReward)
    torch.testing.assert_close(other.stats.var, venv.stats.var)
    # after loading, both continue identically (the env copies themselves were restored too)
    actions = torch.randint(0, 2, (4,), generator=torch.Generator().manual_seed(0))
    a = venv.step(actions)
    b = other.step(actions)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    # frozen statistics do not move
    venv.train(False)
    before = venv.stats.var.clone()
    venv.step(actions)
    torch.testing.assert_close(venv.stats.var, before)


def test_callable_and_module_path_envs() -> None:
    venv = th.envs.make(lambda: gym.make("CartPole-v1"), n_envs=2, seed=0)
    assert venv.reset(seed=0).shape == (2, 4)
    builder = env_builder("gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    assert isinstance(builder(), gym.Env)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(env="CartPol-v1"), "Did you mean 'CartPole-v1'"),
        (dict(env="CartPole-v1", n_envs=0), "n_envs must be a positive int"),
        (dict(env="CartPole-v1", backend="jax"), "backend must be one of"),
        (dict(env="Blackjack-v1", backend="torch"), "no native torch env"),
        (dict(env="nosuchmodule:make"), "cannot import env builder"),
    ],
)
def test_bad_env_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        th.envs.make(**kwargs)


def test_state_dict_restores_mid_episode_dynamics() -> None:
    venv = GymnasiumVecEnv(env_builder("CartPole-v1"), 2)
    venv.reset(seed=4)
    for _ in range(5):
        venv.step(torch.tensor([0, 1]))
    state = venv.state_dict()
    expected = [venv.step(torch.tensor([1, 0]))[0] for _ in range(20)]
    venv.load_state_dict(state)
    for obs in expected:
        torch.testing.assert_close(venv.step(torch.tensor([1, 0]))[0], obs)
