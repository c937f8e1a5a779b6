"""DQN's own oracles (the contract suite covers saving, exact resume with the buffer and bad configs; the targets,
replay and schedule have their hand-checked tests in tests/core): warm-up, epsilon, target updates, the buffer in
checkpoints, and what a minibatch step moves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.config import ConfigError

QUIET = dict(progress=False, tensorboard=False, pictures=False)


def dqn(tmp_path: Path, **fields):
    return th.make("dqn", env="CartPole-v1", seed=0, tuned=False, run_root=str(tmp_path), **{**QUIET, **fields})


def test_warm_up_steps_act_uniformly_then_epsilon_falls_linearly(tmp_path: Path) -> None:
    agent = dqn(tmp_path, n_envs=4, learning_starts=100, epsilon_start=1.0, epsilon_end=0.1, epsilon_steps=1000)
    obs = torch.zeros(4000, 4)
    assert agent.schedule.random_actions(0) and not agent.schedule.random_actions(100)
    assert agent.schedule.epsilon(100) == pytest.approx(1.0 - 0.9 * 100 / 1100)
    assert agent.schedule.epsilon(1100) == pytest.approx(0.1) and agent.schedule.epsilon(10**6) == pytest.approx(0.1)
    agent.global_step = 10**6  # past the schedule: greedy except for epsilon = 0.1 of the rows
    greedy = agent.q(obs[:1]).argmax(-1)
    taken = agent.act_epsilon_greedy(obs)
    off_greedy = (taken != greedy).double().mean()  # a random action differs from the greedy one half the time
    assert 0.03 < float(off_greedy) < 0.07


def test_the_target_network_is_copied_every_interval_and_otherwise_held(tmp_path: Path) -> None:
    # target updates count from learning_starts, as gradient steps do: the first at env step 50 + 100
    agent = dqn(tmp_path, learning_starts=50, train_freq=1, target_update_interval=100, log_every=1)
    initial = [p.clone() for p in agent.q_target.parameters()]
    agent.learn(149)
    assert all(torch.equal(a, b) for a, b in zip(initial, agent.q_target.parameters(), strict=True))  # held
    assert any(not torch.equal(a, b) for a, b in zip(initial, agent.q.parameters(), strict=True))  # q moved on
    agent.learn(150)
    assert all(torch.equal(a, b) for a, b in zip(agent.q_target.parameters(), agent.q.parameters(), strict=True))


def test_soft_updates_move_the_target_by_tau_each_step(tmp_path: Path) -> None:
    agent = dqn(tmp_path, learning_starts=10, train_freq=1, tau=0.5, log_every=1)
    agent.learn(10)
    before = [p.clone() for p in agent.q_target.parameters()]
    agent.learn(11)  # one step: one gradient step, then theta^- <- theta^- + 0.5 (theta - theta^-)
    for old, new, online in zip(before, agent.q_target.parameters(), agent.q.parameters(), strict=True):
        torch.testing.assert_close(new, old + 0.5 * (online - old))


def test_a_gradient_step_lowers_the_loss_on_its_own_minibatch(tmp_path: Path) -> None:
    agent = dqn(tmp_path, learning_starts=200, lr=1e-3)
    agent.learn(200)
    batch = agent.buffer.sample(64, torch.Generator().manual_seed(0))
    y = agent.targets(batch)

    def loss() -> float:
        q = agent.q(batch["obs"]).gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
        return float(torch.nn.functional.smooth_l1_loss(q, y).detach())

    before = loss()
    generator_state = agent.generator.get_state()
    agent.generator.manual_seed(0)  # the same minibatch
    agent.gradient_step()
    agent.generator.set_state(generator_state)
    assert loss() < before


def test_small_buffers_are_checkpointed_and_large_ones_only_when_asked(tmp_path: Path) -> None:
    assert "buffer" in dqn(tmp_path, buffer_size=1000).components
    assert "buffer" not in dqn(tmp_path, buffer_size=1000, buffer_in_checkpoint="never").components
    with pytest.raises(ConfigError, match="batch_size"):
        dqn(tmp_path, buffer_size=10, batch_size=64)
