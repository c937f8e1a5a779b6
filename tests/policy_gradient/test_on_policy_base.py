"""The on-policy family's shared options (policy_gradient/base.py): reward scaling for every member, and the
linear learning-rate decay of A2C's and VPG's optimisers run by the family's loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import thorndike as th
from thorndike.callbacks import Callback
from thorndike.envs.normalize import NormalizeReward

QUIET = dict(progress=False, tensorboard=False, pictures=False)


class Rates(Callback):
    """Each log row's step and lr column (None when there is none)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float | None]] = []

    def on_iteration(self, agent: Any, row: dict[str, Any]) -> None:
        self.rows.append((row["step"], row.get("lr")))


@pytest.mark.parametrize("algo", ["a2c", "vpg", "trpo"])
def test_normalize_reward_scales_what_the_learner_sees_not_the_ledger(tmp_path: Path, algo: str) -> None:
    # One rollout of 200 steps from 2 copies is exactly one whole Pendulum episode each, so each copy's summed
    # buffer rewards are its episode's return as the learner sees it; the ledger keeps the raw returns.
    summed, ledger = {}, {}
    for scaled in (False, True):
        agent = th.make(algo, env="Pendulum-v1", seed=3, n_envs=2, n_steps=200, gamma=0.9, normalize_reward=scaled,
                        run_root=str(tmp_path), **QUIET)
        assert isinstance(agent.interaction.envs, NormalizeReward) == scaled
        if scaled:
            assert agent.interaction.envs.gamma == 0.9
        agent.collect()
        summed[scaled] = agent.buffer["rewards"].sum(dim=0).double()
        agent.interaction.ledger.flush()
        ledger[scaled] = torch.tensor(agent.interaction.ledger.recent_returns(2), dtype=torch.float64)
    # same seed, same first policy: the same episodes; raw rewards sum to the ledger's returns
    torch.testing.assert_close(ledger[True], ledger[False])
    torch.testing.assert_close(summed[False].sort().values, ledger[False].sort().values, rtol=1e-5, atol=1e-3)
    # scaled: every reward divided by the same growing std (> 1 here), so each sum is well inside the raw one
    assert bool((summed[True].abs() < 0.5 * summed[False].abs()).all())


def test_a2c_anneal_lr_decays_linearly_to_zero_over_the_budget(tmp_path: Path) -> None:
    agent = th.make("a2c", env="CartPole-v1", n_envs=2, n_steps=5, anneal_lr=True, lr=1e-3, run_root=str(tmp_path),
                    **QUIET)
    rates = Rates()
    agent.learn(40, callbacks=[rates])
    # each update's rate is lr * (1 - step / budget), the step counted after its rollout
    assert [step for step, _ in rates.rows] == [10, 20, 30, 40]
    for (step, lr), expected in zip(rates.rows, [7.5e-4, 5e-4, 2.5e-4, 0.0], strict=True):
        assert lr == pytest.approx(expected), step
    assert agent.optimizer.param_groups[0]["lr"] == 0.0


def test_without_anneal_lr_the_rate_stays_and_is_not_logged(tmp_path: Path) -> None:
    agent = th.make("a2c", env="CartPole-v1", n_envs=2, n_steps=5, lr=1e-3, run_root=str(tmp_path), **QUIET)
    rates = Rates()
    agent.learn(20, callbacks=[rates])
    assert [lr for _, lr in rates.rows] == [None, None]
    assert agent.optimizer.param_groups[0]["lr"] == 1e-3


def test_vpg_anneal_lr_decays_the_policy_step_only(tmp_path: Path) -> None:
    agent = th.make("vpg", env="CartPole-v1", n_envs=2, n_steps=10, anneal_lr=True, lr=2e-3, value_lr=1e-3,
                    value_steps=2, run_root=str(tmp_path), **QUIET)
    rates = Rates()
    agent.learn(40, callbacks=[rates])
    assert [lr for _, lr in rates.rows] == pytest.approx([1e-3, 0.0])
    assert agent.policy_optimizer.param_groups[0]["lr"] == 0.0
    assert agent.value_optimizer.param_groups[0]["lr"] == 1e-3
