"""PPO's learning targets across seeds (slow: run with `pytest -m slow`; benchmarks/ppo_learning.py reports the
same runs as a table)."""

from __future__ import annotations

from pathlib import Path

import pytest

import thorndike as th


def final_eval(env: str, seed: int, steps: int, tmp_path: Path, **options) -> float:
    agent = th.make("ppo", env=env, seed=seed, backend="gymnasium", progress=False, tensorboard=False,
                    run_root=str(tmp_path), **options)
    agent.learn(steps)
    return agent.evaluate(episodes=10).mean


@pytest.mark.slow
def test_cartpole_solved_within_100k_steps_for_4_of_5_seeds(tmp_path: Path) -> None:
    means = [final_eval("CartPole-v1", seed, 100_000, tmp_path, eval_every=8192, stop_return=475.0)
             for seed in range(5)]
    assert sum(m >= 475 for m in means) >= 4, means


@pytest.mark.slow
def test_pendulum_reaches_minus_250_within_300k_steps_for_3_of_5_seeds(tmp_path: Path) -> None:
    means = [final_eval("Pendulum-v1", seed, 300_000, tmp_path) for seed in range(5)]
    assert sum(m >= -250 for m in means) >= 3, means
