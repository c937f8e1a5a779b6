"""QR-DQN's own oracles: its target and loss on a hand-built batch, the greedy action, and a short run whose loss
falls (the contract suite covers saving, exact resume and bad configs; the quantile Huber loss has its tests in
tests/core)."""

from __future__ import annotations

from pathlib import Path

import torch

import thorndike as th
from tests.value_based.test_c51 import QUIET, logged_losses
from thorndike.core.distributional import quantile_midpoints
from thorndike.value_based.qr_dqn import qr_loss, qr_target


def qr_dqn(tmp_path: Path, **fields):
    return th.make("qr_dqn", env="CartPole-v1", seed=0, tuned=False, run_root=str(tmp_path), **{**QUIET, **fields})


def test_the_target_quantiles_by_hand() -> None:
    # two actions, two quantiles: means 1.5 (action 0) and 2.0 (action 1, picked though its lower quantile is less)
    next_quantiles = torch.tensor([[[1.0, 2.0], [0.0, 4.0]], [[1.0, 2.0], [0.0, 4.0]]])
    target = qr_target(torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.0]), next_quantiles)
    torch.testing.assert_close(target, torch.tensor([[1.0, 3.0], [3.0, 3.0]]))


def test_the_loss_by_hand() -> None:
    taus = quantile_midpoints(2)  # 0.25, 0.75
    quantiles = torch.tensor([[[0.0, 1.0], [5.0, 5.0]]])
    target = torch.tensor([[0.5, 3.0]])
    # action 0: theta = (0, 1); u_ij = target_j - theta_i
    # i=0 (tau .25): u = .5 (huber .125, weight .25), 3 (huber 2.5, weight .25) -> mean .328125
    # i=1 (tau .75): u = -.5 (huber .125, weight .25), 2 (huber 1.5, weight .75) -> mean (.03125 + 1.125) / 2
    by_hand = (0.25 * 0.125 + 0.25 * 2.5) / 2 + (0.25 * 0.125 + 0.75 * 1.5) / 2
    torch.testing.assert_close(qr_loss(quantiles, torch.tensor([0]), target, taus), torch.tensor([by_hand]))


def test_the_greedy_action_is_the_argmax_of_the_mean_quantile(tmp_path: Path) -> None:
    agent = qr_dqn(tmp_path, n_quantiles=5, hidden_sizes=(16,))
    obs = torch.randn(256, 4)
    quantiles = agent.q(obs).view(256, 2, 5)
    assert torch.equal(agent.policy(obs, True, None), quantiles.mean(-1).argmax(-1))


def test_a_short_cartpole_run_lowers_the_loss(tmp_path: Path) -> None:
    # gamma 0.5 keeps the returns' scale near 2, so the targets settle within the 300 gradient steps
    agent = qr_dqn(tmp_path, gamma=0.5, learning_starts=100, train_freq=1, target_update_interval=50, epsilon_steps=300,
                   hidden_sizes=(32,), n_quantiles=10, batch_size=32, log_every=100).learn(400)
    losses = logged_losses(agent)
    assert len(losses) == 3 and losses[-1] < 0.7 * losses[0]
