"""A2C's own oracles (its n-step advantages are tested in tests/core/test_returns.py; the contract suite covers
saving, exact resume and bad configs): the optimiser choice and a run that learns CartPole for a fixed seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.config import ConfigError

QUIET = dict(progress=False, tensorboard=False, pictures=False)


def test_rmsprop_with_the_a2c_settings_or_adam(tmp_path: Path) -> None:
    agent = th.make("a2c", env="CartPole-v1", tuned=False, run_root=str(tmp_path), **QUIET)
    assert isinstance(agent.optimizer, torch.optim.RMSprop)
    group = agent.optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"]) == (7e-4, 0.99, 1e-5)
    assert isinstance(th.make("a2c", env="CartPole-v1", optimizer="adam", run_root=str(tmp_path), **QUIET).optimizer,
                      torch.optim.Adam)
    with pytest.raises(ConfigError, match="optimizer"):
        th.make("a2c", env="CartPole-v1", optimizer="sgd", run_root=str(tmp_path), **QUIET)


def test_one_iteration_is_n_steps_from_every_copy_and_one_gradient_step(tmp_path: Path) -> None:
    agent = th.make("a2c", env="CartPole-v1", n_envs=4, n_steps=5, run_root=str(tmp_path), **QUIET)
    before = [p.detach().clone() for p in agent.model.parameters()]
    agent.learn(1)
    assert agent.global_step == 20
    assert int(agent.optimizer.state_dict()["state"][0]["step"]) == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.model.parameters(), strict=True))


def test_a2c_solves_cartpole(tmp_path: Path) -> None:
    # The defaults (8 copies x 5 steps, RMSprop 7e-4): seed 0's greedy policy scores 477.5 over 20 episodes after
    # 20,000 steps (measured; A2C is unstable on CartPole: the same seed dips to 139 at 40,000 and holds 500 from
    # 140,000 on).
    agent = th.make("a2c", env="CartPole-v1", seed=0, tuned=False, run_root=str(tmp_path), **QUIET).learn(20_000)
    assert agent.evaluate(episodes=20).mean >= 475
