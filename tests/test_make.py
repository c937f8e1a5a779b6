"""th.make: config precedence and clear errors at construction."""

from __future__ import annotations

from pathlib import Path

import pytest

import thorndike as th
from thorndike.config import ConfigError


def test_tuned_config_then_file_then_keywords(tmp_path: Path) -> None:
    agent = th.make("ppo", env="CartPole-v1", progress=False)
    assert agent.config.n_steps == 32 and agent.config.gamma == 0.98  # thorndike/configs/ppo.yaml
    untuned = th.make("ppo", env="CartPole-v1", tuned=False, progress=False)
    assert untuned.config.n_steps == 256
    config_file = tmp_path / "c.yaml"
    config_file.write_text("n_steps: 16\nminibatch_size: 64\ngamma: 0.9\nhidden_sizes: [32]\n")
    agent = th.make("ppo", env="CartPole-v1", config=config_file, gamma=0.95, progress=False)
    assert (agent.config.n_steps, agent.config.gamma, agent.config.hidden_sizes) == (16, 0.95, (32,))


def test_a_shipped_config_is_found_by_its_bare_name_and_a_missing_one_lists_them() -> None:
    agent = th.make("ppo", env="CartPole-v1", config="ppo_cartpole_fast", progress=False)
    assert (agent.config.n_envs, agent.config.n_epochs, agent.config.hidden_sizes) == (64, 6, (32, 32))
    with pytest.raises(FileNotFoundError,
                       match="configs shipped with thorndike: \\['dqn_cartpole_fast', 'ppo_cartpole_fast', "
                             "'ppo_cartpole_gpu', 'ppo_pendulum_gpu'\\]"):
        th.make("ppo", env="CartPole-v1", config="ppo_cartpole_fastest", progress=False)


@pytest.mark.parametrize(
    ("algo", "fields", "message"),
    [
        ("ppoo", {}, "unknown algorithm 'ppoo'. Did you mean ppo"),
        ("ppo", {"n_envs": 0}, "n_envs=0; n_envs must be >= 1"),
        ("ppo", {"lr": -3e-4}, "lr=-0.0003; lr must be > 0"),
        ("ppo", {"clip": 0}, "clip=0.0; clip must be > 0"),
        ("ppo", {"gamma": 1.5}, "gamma must be in \\(0, 1\\]"),
        ("ppo", {"minibatch_size": 10_000}, "minibatch_size must be <= n_envs \\* n_steps"),
        ("ppo", {"activation": "gelu"}, "activation must be one of"),
    ],
)
def test_bad_config_is_refused_at_construction(algo: str, fields: dict, message: str) -> None:
    with pytest.raises((ConfigError, ValueError), match=message):
        th.make(algo, env="CartPole-v1", progress=False, **fields)


def test_unknown_env_names_close_matches() -> None:
    with pytest.raises(ValueError, match="Did you mean 'CartPole-v1'"):
        th.make("ppo", env="CartPole-v9")


def test_algorithms_lists_ppo_with_its_spaces() -> None:
    rows = {name: spaces for name, spaces, _ in th.algorithms()}
    assert rows["ppo"] == "Discrete, Box"
