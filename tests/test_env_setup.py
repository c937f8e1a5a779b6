"""Env construction a user steers through th.make and the CLI: env_kwargs, wrappers and the vectorisation are
recorded, so th.load and `thorndike eval` rebuild the same env; a missing optional dependency is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
import yaml

import thorndike as th
from thorndike.cli import main
from thorndike.envs import MissingDependencyError

QUIET = dict(progress=False, tensorboard=False, pictures=False)


def test_env_kwargs_reach_the_env_the_model_and_the_saved_agent(tmp_path: Path) -> None:
    agent = th.make("q_learning", env="FrozenLake-v1", env_kwargs={"is_slippery": False}, n_runs=4, alpha=0.5,
                    epsilon=0.5, run_root=str(tmp_path), **QUIET)
    agent.learn(3000)
    # the deterministic lake: the model the agent is judged on has no slips, so the greedy policy is worth gamma^5
    assert torch.allclose(agent.exact_values()[:, 0], torch.full((4,), 0.99**5, dtype=torch.float64))
    assert yaml.safe_load((agent.run_dir / "config.yaml").read_text())["env_kwargs"] == {"is_slippery": False}
    loaded = th.load(agent.run_dir / "final.pt")
    assert loaded.env_setup.kwargs == {"is_slippery": False}
    assert loaded.evaluate(episodes=4).mean == 1.0  # the greedy path only works on the non-slippery lake


def test_the_cli_takes_env_kwargs_and_wrappers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "q_learning", "--env", "FrozenLake-v1", "--steps", "200", "--env-kwargs",
                 "is_slippery=false", "map_name=8x8", "--wrappers", "time_limit:max_episode_steps=20",
                 "--run-root", str(tmp_path), "--progress", "false", "--tensorboard", "false", "--pictures", "false"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = tmp_path.iterdir()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["env_kwargs"] == {"is_slippery": False, "map_name": "8x8"}
    assert config["wrappers"] == [{"name": "time_limit", "max_episode_steps": 20}]
    agent = th.load(run_dir)
    assert agent.envs.single_observation_space.n == 64  # the 8x8 map, rebuilt from the record
    assert max(agent.evaluate(episodes=2).lengths) <= 20  # and the time limit with it

    assert main(["train", "q_learning", "--env", "FrozenLake-v1", "--env-kwargs", "is_slippery"]) == 2
    assert "--env-kwargs takes KEY=VALUE pairs" in capsys.readouterr().err


def test_async_vectorization_trains_the_same_run_as_sync(tmp_path: Path) -> None:
    runs = []
    for vectorization in ("sync", "async"):
        agent = th.make("ppo", env="CartPole-v1", backend="gymnasium", vectorization=vectorization, n_envs=2,
                        n_steps=32, minibatch_size=64, n_epochs=2, run_root=str(tmp_path / vectorization), **QUIET)
        agent.learn(256)
        runs.append(agent.model.state_dict())
        agent.interaction.close()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_missing_optional_dependency_is_one_line(tmp_path: Path) -> None:
    try:
        import Box2D  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("Box2D is installed here")
    with pytest.raises(MissingDependencyError, match=r'LunarLander-v3 needs Box2D: pip install -e "\.\[box2d\]"'):
        th.make("ppo", env="LunarLander-v3", run_root=str(tmp_path), **QUIET)
    result = subprocess.run([sys.executable, "-m", "thorndike.cli", "train", "ppo", "--env", "LunarLander-v3",
                             "--run-root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'thorndike: error: LunarLander-v3 needs Box2D: pip install -e ".[box2d]"']


class Chatty(gym.Env):
    """Text observations, which no thorndike algorithm can store."""

    observation_space = gym.spaces.Text(8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "hello", {}

    def step(self, action):
        return "again", 0.0, True, False, {}


def test_unsupported_observations_are_refused_before_the_first_reset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ppo does not support the observation space Text\(.*\); no thorndike "
                                         "algorithm supports these spaces yet"):
        th.make("ppo", env=Chatty, run_root=str(tmp_path), **QUIET)


def test_env_kwargs_and_wrappers_of_the_wrong_form_are_named_at_construction(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quiet = dict(run_root=str(tmp_path), progress=False)
    with pytest.raises(th.ConfigError, match=r"wrappers='time_limit'.*use \['time_limit'\]"):
        th.make("q_learning", env="FrozenLake-v1", wrappers="time_limit", **quiet)
    with pytest.raises(th.ConfigError, match="env_kwargs='is_slippery=False'; env_kwargs must be a dict"):
        th.make("q_learning", env="FrozenLake-v1", env_kwargs="is_slippery=False", **quiet)
    with pytest.raises(ValueError, match=r"FrozenLake-v1 could not be built with env_kwargs \{'no_such_kwarg': 1\}"):
        th.make("q_learning", env="FrozenLake-v1", env_kwargs={"no_such_kwarg": 1}, backend="gymnasium", **quiet)
    assert main(["train", "q_learning", "--env", "FrozenLake-v1", "--env-kwargs", "no_such_kwarg=1", "--steps",
                 "100", "--run-root", str(tmp_path), "--progress", "false"]) == 2
    assert "could not be built with env_kwargs {'no_such_kwarg': 1}" in capsys.readouterr().err
