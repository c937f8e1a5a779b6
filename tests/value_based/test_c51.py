"""C51's own oracles: its target and loss on a hand-built batch, the greedy action, and a short run whose loss falls
(the contract suite covers saving, exact resume and bad configs; the projection has its tests in tests/core)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.config import ConfigError
from thorndike.value_based.c51 import c51_loss, c51_target, expected_q

QUIET = dict(progress=False, tensorboard=False, pictures=False)
SUPPORT = torch.tensor([0.0, 1.0, 2.0])
# Two actions at s' with the expectations 0.6 (action 0) and 1.2 (action 1) on the support 0, 1, 2.
NEXT_PROBS = torch.tensor([[[0.6, 0.2, 0.2], [0.2, 0.4, 0.4]]])


def c51(tmp_path: Path, **fields):
    return th.make("c51", env="CartPole-v1", seed=0, tuned=False, run_root=str(tmp_path), **{**QUIET, **fields})


def logged_losses(agent) -> list[float]:
    with (agent.run_dir / "progress.csv").open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f) if row["loss"] not in ("", "nan")]


def test_the_target_distribution_by_hand() -> None:
    logits = NEXT_PROBS.log()
    # a* = 1; r + 0.5 z = 0.5, 1, 1.5: 0.2 splits 0.1/0.1 over atoms 0 and 1, 0.4 lands on 1, 0.4 splits 0.2/0.2
    m = c51_target(torch.tensor([0.5]), torch.tensor([0.5]), logits, SUPPORT)
    torch.testing.assert_close(m, torch.tensor([[0.1, 0.7, 0.2]]))
    # after a termination (discount 0) all the mass is on r
    torch.testing.assert_close(c51_target(torch.tensor([2.0]), torch.tensor([0.0]), logits, SUPPORT),
                               torch.tensor([[0.0, 0.0, 1.0]]))
    # double: the online network prefers action 0, whose target distribution 0.6, 0.2, 0.2 is then shifted
    online = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]).flip(-1)  # action 0: E near 2 > 1
    m = c51_target(torch.tensor([0.5]), torch.tensor([0.5]), logits, SUPPORT, online)
    torch.testing.assert_close(m, torch.tensor([[0.3, 0.6, 0.1]]))


def test_the_loss_is_the_cross_entropy_of_the_taken_action() -> None:
    logits = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]], [[1.0, 1.0, 1.0], [0.5, -0.5, 0.0]]])
    actions = torch.tensor([1, 0])
    target = torch.tensor([[0.1, 0.7, 0.2], [0.0, 0.0, 1.0]])
    p0 = [math.exp(x) / sum(math.exp(y) for y in (3.0, 0.0, -1.0)) for x in (3.0, 0.0, -1.0)]
    by_hand = [-(0.1 * math.log(p0[0]) + 0.7 * math.log(p0[1]) + 0.2 * math.log(p0[2])), -math.log(1 / 3)]
    torch.testing.assert_close(c51_loss(logits, actions, target), torch.tensor(by_hand))


def test_the_greedy_action_is_the_argmax_of_the_expectation(tmp_path: Path) -> None:
    # the logits' own argmax would pick action 0 (its largest logit, 3, is on z = 0); the expectation picks 1
    logits = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 1.0, 1.0]]])
    assert expected_q(logits, SUPPORT).argmax(-1).item() == 1 and logits.amax(-1).argmax(-1).item() == 0
    agent = c51(tmp_path, n_atoms=11, v_min=0.0, v_max=10.0, hidden_sizes=(16,))
    obs = torch.randn(256, 4)
    q = (torch.softmax(agent.q(obs), -1) * torch.linspace(0, 10, 11)).sum(-1)
    assert torch.equal(agent.policy(obs, True, None), q.argmax(-1))


def test_a_short_cartpole_run_lowers_the_loss(tmp_path: Path) -> None:
    # gamma 0.5 keeps the returns' scale near 2, so the targets settle within the 300 gradient steps
    agent = c51(tmp_path, gamma=0.5, learning_starts=100, train_freq=1, target_update_interval=50, epsilon_steps=300,
                hidden_sizes=(32,), n_atoms=21, v_min=0.0, v_max=4.0, batch_size=32, log_every=100).learn(400)
    losses = logged_losses(agent)
    assert len(losses) == 3 and losses[-1] < 0.7 * losses[0]


def test_the_support_must_be_ordered(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="v_max"):
        c51(tmp_path, v_min=1.0, v_max=1.0)
