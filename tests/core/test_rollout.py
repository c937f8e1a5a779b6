"""core.rollout: what one rollout stores, the critic's bootstrap on truncation, the observe hook, and non-finite
data named by step and env copy, checked against a scripted two-copy env."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from thorndike.core.buffers import RolloutBuffer
from thorndike.core.diagnostics import NonFiniteError
from thorndike.core.rollout import collect_rollout, rollout_fields


class Scripted:
    """Two copies whose observation is the step count (copy 1: minus it); copy 0's episode is cut by a time limit
    at step 2 (its final observation 20.0, then a reset to 0.0), copy 1's terminates at step 3."""

    def __init__(self, nan_at: int | None = None) -> None:
        self.obs = torch.zeros(2, 1)
        self.t = 0
        self.nan_at = nan_at
        self.recorded: list[int] = []

    def step(self, actions: Tensor, step: int) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Any]]:
        self.t += 1
        self.recorded.append(step)
        obs = torch.tensor([[float(self.t)], [-float(self.t)]])
        final = obs.clone()
        truncated = torch.tensor([self.t == 2, False])
        terminated = torch.tensor([False, self.t == 3])
        if self.t == 2:
            final[0] = 20.0
            obs[0] = 0.0
        if self.nan_at == self.t:
            obs[1] = float("nan")
        rewards = torch.ones(2)
        self.obs = obs
        return obs, rewards, terminated, truncated, {"final_obs": final}


def buffer(steps: int) -> RolloutBuffer:
    return RolloutBuffer(steps, 2, rollout_fields(((1,), torch.float32), ((), torch.long)))


def sample(obs: Tensor) -> tuple[Tensor, Tensor]:
    return torch.zeros(len(obs), dtype=torch.long), torch.zeros(len(obs))


def value(obs: Tensor) -> Tensor:
    return obs[:, 0] * 10  # V(s) = 10 s, to read the bootstrap off by hand


def test_values_bootstrap_from_the_final_observation_where_an_episode_was_cut() -> None:
    envs, buf, seen = Scripted(), buffer(3), []
    collect_rollout(envs, buf, sample, value, first_step=100, observe=seen.append)
    assert envs.recorded == [102, 104, 106]  # each step's episodes are recorded at the global step it ends
    assert buf["obs"][:, :, 0].tolist() == [[0.0, 0.0], [1.0, -1.0], [0.0, -2.0]]
    assert buf["values"].tolist() == [[0.0, 0.0], [10.0, -10.0], [0.0, -20.0]]
    # V(s_{t+1}): the next row, or after the last step the current observation; at copy 0's time-limit cut (step 2)
    # the value of its final observation 20.0, not of the reset state 0.0
    assert buf["next_values"].tolist() == [[10.0, -10.0], [200.0, -20.0], [30.0, -30.0]]
    assert [o[:, 0].tolist() for o in seen] == [[1.0, -1.0], [0.0, -2.0], [3.0, -3.0]]


def test_a_nan_observation_is_named_by_its_step_and_copy() -> None:
    with pytest.raises(NonFiniteError, match=r"observation is not finite \(NaN or inf\) at step 14 \(iteration 2\), "
                                             r"env copy 1"):
        collect_rollout(Scripted(nan_at=2), buffer(3), sample, value, first_step=10, where="iteration 2")


def test_a_sampling_failure_caused_by_a_nan_observation_is_named_too() -> None:
    def strict_sample(obs: Tensor) -> tuple[Tensor, Tensor]:
        probs = torch.softmax(torch.cat([obs, -obs], 1), 1)
        actions = torch.multinomial(probs, 1).squeeze(1)  # refuses NaN probabilities with a RuntimeError
        return actions, torch.zeros(len(obs))

    with pytest.raises(NonFiniteError, match="observation is not finite .* at step 4, env copy 1"):
        collect_rollout(Scripted(nan_at=2), buffer(3), strict_sample, None, first_step=0)


def test_an_unrelated_error_is_not_disguised() -> None:
    def broken(obs: Tensor) -> tuple[Tensor, Tensor]:
        raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        collect_rollout(Scripted(), buffer(3), broken, None, first_step=0)
