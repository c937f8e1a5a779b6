"""VPG's own oracles (the contract suite covers saving, exact resume and bad configs): one policy step and
``value_steps`` regression steps on V per update, V apart from the policy's loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import thorndike as th

QUIET = dict(progress=False, tensorboard=False, pictures=False)


def adam_steps(optimizer: torch.optim.Optimizer) -> int:
    return int(optimizer.state_dict()["state"][0]["step"])


@pytest.mark.parametrize("minibatch_size", [None, 24])
def test_one_policy_step_and_value_steps_regression_steps_per_update(tmp_path: Path,
                                                                     minibatch_size: int | None) -> None:
    agent = th.make("vpg", env="CartPole-v1", seed=0, n_envs=2, n_steps=50, value_steps=7,
                    value_minibatch_size=minibatch_size, run_root=str(tmp_path), **QUIET)
    actor = [p.detach().clone() for p in agent.model.actor.parameters()]
    agent.collect()
    advantages, returns = agent.targets()
    obs = agent.buffer.flat()["obs"]
    targets = returns.reshape(-1)
    with torch.no_grad():
        error_before = float((agent.model.value(obs) - targets).square().mean())
    stats = agent.update(advantages, returns)
    per_pass = 1 if minibatch_size is None else math.ceil(100 / minibatch_size)
    assert adam_steps(agent.policy_optimizer) == 1
    assert adam_steps(agent.value_optimizer) == 7 * per_pass
    # the policy's optimiser holds no critic weight, and V's no policy weight: each learns only from its own loss
    critic = {id(p) for p in agent.model.critic.parameters()}
    assert not any(id(p) in critic for group in agent.policy_optimizer.param_groups for p in group["params"])
    assert all(id(p) in critic for group in agent.value_optimizer.param_groups for p in group["params"])
    assert any(not torch.equal(a, b) for a, b in zip(actor, agent.model.actor.parameters(), strict=True))
    with torch.no_grad():
        error_after = float((agent.model.value(obs) - targets).square().mean())
    assert error_after < error_before  # the regression steps fitted V to this batch's lambda-returns
    assert stats["value_loss"] >= 0


def test_more_value_steps_fit_v_closer(tmp_path: Path) -> None:
    errors = []
    for steps in (1, 40):
        agent = th.make("vpg", env="CartPole-v1", seed=0, n_envs=2, n_steps=50, value_steps=steps, value_lr=0.01,
                        run_root=str(tmp_path / str(steps)), **QUIET)
        agent.collect()
        advantages, returns = agent.targets()
        agent.update(advantages, returns)
        with torch.no_grad():
            errors.append(float((agent.model.value(agent.buffer.flat()["obs"]) - returns.reshape(-1)).square().mean()))
    assert errors[1] < 0.5 * errors[0]
