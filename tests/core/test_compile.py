"""torch.compile on the hot path: same numbers as eager, and a clean fallback when compiling fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.core.compile import maybe_compile


def test_disabled_returns_the_function_itself() -> None:
    def f(x):
        return x + 1

    assert maybe_compile(f, enabled=False) is f


def test_failure_warns_once_and_runs_eagerly(monkeypatch) -> None:
    def broken_compile(fn, mode=None, dynamic=None, options=None):
        def run(*args, **kwargs):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    calls = []
    f = maybe_compile(lambda x: calls.append(x) or x * 2, enabled=True, name="f")
    with pytest.warns(UserWarning, match="compiling f failed .*no C\\+\\+ compiler.*eagerly"):
        assert f(3) == 6
    assert f(4) == 8 and calls == [3, 4]


def test_ppo_compiled_loss_matches_eager_and_learns(tmp_path: Path) -> None:
    agent = th.make("ppo", env="CartPole-v1", seed=0, tuned=False, n_envs=8, n_steps=16, minibatch_size=64,
                    n_epochs=1, compile=True, progress=False, tensorboard=False, run_root=str(tmp_path))
    agent.learn(256)
    assert agent.native_collection is not None and agent.native_collection.programs[0].compiled  # rollouts compiled too
    advantages, returns = agent.targets()
    mb = {k: v[:64] for k, v in agent.buffer.flat(advantages=advantages, returns=returns).items()}
    compiled_loss, compiled_parts = agent.loss(mb)
    eager_loss, eager_parts = agent.minibatch_loss(mb)
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
    for key in eager_parts:
        torch.testing.assert_close(compiled_parts[key], eager_parts[key], rtol=1e-5, atol=1e-6)
