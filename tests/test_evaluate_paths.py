"""Evaluation on a native batched env plays each copy's first episode with ``continue_episodes`` (no autoreset):
the same returns, lengths and cuts, bit for bit, as stepping the env, for greedy and sampled policies."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from thorndike.envs.batched import Acrobot, CartPole, MountainCar, Pendulum
from thorndike.interaction import play_by_stepping, play_first_episodes


def linear_policy(env_cls: type, seed: int):
    """A fixed random linear policy: greedy is its largest score (Discrete) or its output (Box); sampled draws from
    the softmax of the scores, or adds Gaussian noise, with the evaluation's generator."""
    env = env_cls(1)
    obs_dim = env.single_observation_space.shape[0]
    space = env.single_action_space
    n_out = int(space.n) if hasattr(space, "n") else space.shape[0]
    weights = torch.randn(obs_dim, n_out, generator=torch.Generator().manual_seed(seed))

    def policy(obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        scores = obs.float() @ weights
        if hasattr(space, "n"):
            if deterministic:
                return scores.argmax(-1)
            return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)
        noise = 0.0 if deterministic else torch.randn(scores.shape, generator=generator)
        return (scores + noise).clamp(-2.0, 2.0)

    return policy


@pytest.mark.parametrize("env_cls", [CartPole, Pendulum, MountainCar, Acrobot])
@pytest.mark.parametrize("deterministic", [True, False])
def test_first_episodes_equal_stepping(env_cls: type, deterministic: bool) -> None:
    for policy_seed in range(2):
        policy = linear_policy(env_cls, policy_seed)
        results = []
        for play in (play_by_stepping, play_first_episodes):
            env = env_cls(6)
            generator = torch.Generator().manual_seed(11)
            results.append(play(env, policy, deterministic, generator, 5 + policy_seed, 10_000, torch.device("cpu")))
        (r1, l1, c1), (r2, l2, c2) = results
        assert torch.equal(r1, r2) and r1.dtype == r2.dtype == torch.float64
        assert torch.equal(l1, l2)
        assert torch.equal(c1, c2)


def test_caps_and_time_limit() -> None:
    """Below the env's time limit the caller's cap cuts the episodes (counted as cut); at the limit they are
    truncated (not cut), in both paths."""
    policy = linear_policy(Pendulum, 0)  # Pendulum never terminates: every episode runs to a cap
    for cap, cut in ((50, 6), (200, 0), (10_000, 0)):
        for play in (play_by_stepping, play_first_episodes):
            returns, lengths, running = play(Pendulum(6), policy, True, torch.Generator(), 3, cap, torch.device("cpu"))
            assert lengths.tolist() == [min(cap, 200)] * 6
            assert int(running.sum()) == cut
