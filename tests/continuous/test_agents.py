"""The continuous learners as agents: TD3's delayed updates fall exactly every policy_delay critic updates, actions
are [-1, 1] in replay and the Box's bounds at the env, and the losses' hand-checked values."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.continuous import td3 as td3_module
from thorndike.continuous.ddpg import deterministic_actor_loss
from thorndike.continuous.sac import sac_actor_loss, twin_critic_loss
from thorndike.continuous.sac_discrete import discrete_sac_actor_loss
from thorndike.core.spaces import scale_action

QUIET = dict(progress=False, tensorboard=False, pictures=False)
SMALL = dict(buffer_size=500, learning_starts=32, batch_size=16, hidden_sizes=(16,), log_every=100)


def adam_steps(optimizer: torch.optim.Optimizer) -> int:
    return int(next(iter(optimizer.state.values()))["step"]) if optimizer.state else 0


def test_td3_updates_the_actor_and_targets_exactly_every_policy_delay_critic_updates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = th.make("td3", env="Pendulum-v1", run_root=str(tmp_path), policy_delay=3, train_freq=2, gradient_steps=1,
                    **SMALL, **QUIET)
    at: list[tuple[str, int]] = []
    real = td3_module.soft_update

    def recording(target: Any, source: Any, tau: float) -> None:
        at.append(("actor" if source is agent.actor else "critic", agent.critic_updates.count))
        real(target, source, tau)

    monkeypatch.setattr(td3_module, "soft_update", recording)
    agent.learn(160)
    critic_updates = agent.critic_updates.count
    assert critic_updates == (160 - 32) // 2 == adam_steps(agent.critic_optimizer)
    assert adam_steps(agent.actor_optimizer) == critic_updates // 3
    delayed = list(range(3, critic_updates + 1, 3))
    assert [n for kind, n in at if kind == "actor"] == delayed == [n for kind, n in at if kind == "critic"]


class AsymmetricBox(gym.Env):
    """Box(1) observations, Box actions in [-3, 1]; remembers every action it was given; episodes of 5 steps."""

    received: list[float] = []
    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Box(np.array([-3.0], np.float32), np.array([1.0], np.float32))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        AsymmetricBox.received.append(float(action[0]))
        self.t += 1
        return np.full(1, self.t / 5, np.float32), -abs(float(action[0]) + 2.0), self.t >= 5, False, {}


gym.register("thorndike_test/AsymmetricBox-v0", entry_point=AsymmetricBox)


@pytest.mark.parametrize("name", ["ddpg", "td3", "sac"])
def test_replay_holds_unit_actions_and_the_env_gets_them_scaled_to_its_bounds(tmp_path: Path, name: str) -> None:
    AsymmetricBox.received = []
    agent = th.make(name, env="thorndike_test/AsymmetricBox-v0", run_root=str(tmp_path), **SMALL, **QUIET)
    agent.learn(100)
    stored = agent.loop.buffer.data["actions"][:100, 0]  # one copy: row i is step i
    received = torch.tensor(AsymmetricBox.received)
    assert received.min() >= -3.0 and received.max() <= 1.0 and received.min() < -1.0  # the env's own units
    assert stored.abs().max() <= 1.0
    torch.testing.assert_close(scale_action(stored, AsymmetricBox.action_space).squeeze(-1), received)
    acted = agent.act(torch.zeros(64, 1), deterministic=False)
    assert acted.min() >= -3.0 and acted.max() <= 1.0


def test_the_losses_by_hand() -> None:
    q = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    torch.testing.assert_close(twin_critic_loss(q, torch.tensor([2.0, 1.0])), torch.tensor([1.0 + 1.0, 1.0 + 1.0]))
    assert deterministic_actor_loss(torch.tensor([1.0, 3.0])).item() == -2.0
    # mean(alpha log pi - min Q) = mean(.5 (-1) - 2, .5 (-3) - 0) = (-2.5 - 1.5) / 2
    assert sac_actor_loss(torch.tensor([-1.0, -3.0]), torch.tensor([2.0, 0.0]), 0.5).item() == -2.0
    probs = torch.tensor([[0.5, 0.5]])
    value = discrete_sac_actor_loss(probs, probs.log(), torch.tensor([[1.0, 3.0]]), 1.0).item()
    assert value == pytest.approx(0.5 * (math.log(0.5) - 1.0) + 0.5 * (math.log(0.5) - 3.0))


def test_sac_logs_its_temperature_and_entropy(tmp_path: Path) -> None:
    agent = th.make("sac", env="Pendulum-v1", run_root=str(tmp_path), **SMALL, **QUIET).learn(200)
    with open(agent.run_dir / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"alpha", "entropy", "actor_loss", "loss"} <= rows[-1].keys()
    assert 0 < float(rows[-1]["alpha"]) < 1.0  # started at 1; the entropy of a fresh policy is above -1


def test_ddpg_ou_noise_starts_afresh_where_an_episode_ends(tmp_path: Path) -> None:
    # AsymmetricBox episodes last 5 steps: after step 100 every copy's episode has just ended, after 102 none has.
    agent = th.make("ddpg", env="thorndike_test/AsymmetricBox-v0", run_root=str(tmp_path), action_noise="ou",
                    noise_std=0.5, n_envs=2, **SMALL, **QUIET)
    agent.learn(100)
    assert torch.equal(agent.noise.state, torch.zeros(2, 1))
    agent.learn(104)
    assert (agent.noise.state != 0).all()
