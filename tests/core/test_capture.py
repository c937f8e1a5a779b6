"""The captured gradient step (thorndike.core.capture) and the compiled GAE: the same numbers as the eager paths on
the CPU (parameters and Adam's state after three steps on the same data: PPO, DQN, SAC), a changed learning rate
taken without error, and the eager fallback when compiling fails. Each captured program compiles once here (tens
of seconds on a small CPU)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import thorndike as th
from thorndike.core.buffers import RolloutBuffer
from thorndike.core.capture import GradientStep, capture, capture_by_default
from thorndike.core.networks import adam
from thorndike.core.on_policy import CompiledGAE, gae_targets

QUIET = dict(progress=False, tensorboard=False)


def state_of(agent: Any) -> dict[str, Any]:
    """Deep copies of the agent's components (networks, optimisers, a replay buffer: prioritised replay's
    priorities decide the next minibatches) and its generator's state."""
    saved = {name: copy.deepcopy(part.state_dict()) for name, part in agent.components.items()
             if hasattr(part, "state_dict")}
    return {"components": saved, "generator": agent.generator.get_state()}


def restore(agent: Any, saved: dict[str, Any]) -> None:
    for name, state in saved["components"].items():
        agent.components[name].load_state_dict(copy.deepcopy(state))
    agent.generator.set_state(saved["generator"])


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Every parameter and every optimiser state tensor equal to float tolerance (Adam's step counts exactly)."""
    for name, state in a["components"].items():
        if name == "buffer":
            continue
        other = b["components"][name]
        if "state" in state:  # an optimiser
            assert state["state"].keys() == other["state"].keys()
            for index, entries in state["state"].items():
                for key, value in entries.items():
                    torch.testing.assert_close(other["state"][index][key], value, rtol=1e-4, atol=1e-6,
                                               msg=lambda m, n=name, i=index, k=key: f"{n} {i} {k}: {m}")
        else:
            for key, value in state.items():
                torch.testing.assert_close(other[key], value, rtol=1e-4, atol=1e-6,
                                           msg=lambda m, n=name, k=key: f"{n} {k}: {m}")


def eager_then_captured(agent: Any, step: Any, steps: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """The agent's state after ``steps`` calls of ``step()`` eagerly, and after the same calls captured, from the
    same state (the same minibatches: the generator is restored too). The captured calls must really have run
    compiled: a fall back to eager (which warns) would make the comparison say nothing."""
    start = state_of(agent)
    agent.capture = False
    for _ in range(steps):
        step()
    eager = state_of(agent)
    restore(agent, start)
    agent.capture = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            step()
    fallbacks = [str(w.message) for w in caught if "eagerly" in str(w.message)]
    assert not fallbacks, fallbacks
    return eager, state_of(agent)


def test_capture_is_the_default_with_compile_on_cpu_and_cuda() -> None:
    assert capture_by_default(True, "cuda") and capture_by_default(True, "cuda:1") and capture_by_default(True, "cpu")
    assert not capture_by_default(False, "cuda") and not capture_by_default(False, "cpu")
    assert not capture_by_default(True, "meta")


def test_ppo_captured_step_equals_the_eager_step(tmp_path: Path) -> None:
    agent = th.make("ppo", env="CartPole-v1", config="ppo_cartpole_fast", seed=0, run_root=str(tmp_path), **QUIET)
    assert agent.capture is False  # the CPU default, compile off
    agent.collect()
    advantages, returns = agent.targets()
    flat = agent.buffer.flat(advantages=advantages, returns=returns)
    batch = {k: flat[k] for k in ("obs", "actions", "log_probs", "values", "advantages", "returns")}
    agent.gradient_step(batch)  # Adam's state exists before the comparison starts, as after any first step
    eager, captured = eager_then_captured(agent, lambda: agent.gradient_step(batch))
    assert_same_state(eager, captured)
    assert agent.captured_step is not None
    # a new learning rate (PPO anneals it every iteration) is taken by the captured step without error
    before = [p.clone() for p in agent.model.parameters()]
    agent.optimizer.param_groups[0]["lr"] = 0.0
    agent.gradient_step(batch)
    assert all(torch.equal(p, q) for p, q in zip(agent.model.parameters(), before, strict=True))
    agent.optimizer.param_groups[0]["lr"] = 1e-3
    agent.gradient_step(batch)
    assert not all(torch.equal(p, q) for p, q in zip(agent.model.parameters(), before, strict=True))


def test_dqn_captured_step_equals_the_eager_step(tmp_path: Path) -> None:
    # with every branch of the step: double targets, prioritised replay's weights and priorities, the clip
    agent = th.make("dqn", env="CartPole-v1", config="dqn_cartpole_fast", seed=0, learning_starts=100,
                    buffer_size=1000, double=True, prioritized=True, max_grad_norm=1.0, run_root=str(tmp_path),
                    **QUIET)
    agent.learn(104)  # 100 random steps and one vectorised step: the buffer has minibatches to draw
    eager, captured = eager_then_captured(agent, agent.gradient_step)
    assert_same_state(eager, captured)
    assert agent.captured_descent is not None


def test_sac_captured_step_equals_the_eager_step(tmp_path: Path) -> None:
    agent = th.make("sac", env="Pendulum-v1", seed=0, batch_size=32, hidden_sizes=(16, 16), learning_starts=64,
                    run_root=str(tmp_path), **QUIET)
    agent.learn(64)
    eager, captured = eager_then_captured(agent, agent.gradient_step)
    assert_same_state(eager, captured)  # critics, actor, temperature, the critics' targets, the three Adams


def test_compiled_gae_equals_eager_gae_with_episode_ends_inside() -> None:
    T, N = 40, 3  # two programs: 32 steps and 8, the second handing its first advantage to the first
    generator = torch.Generator().manual_seed(0)
    fields = {name: ((), torch.float32) for name in ("rewards", "values", "next_values")}
    fields |= {name: ((), torch.bool) for name in ("terminated", "truncated")}
    buffer = RolloutBuffer(T, N, fields)
    for name in ("rewards", "values", "next_values"):
        buffer[name].copy_(torch.randn(T, N, generator=generator))
    buffer["terminated"][[3, 20, 33], [0, 1, 2]] = True  # ends in both blocks and at the block boundary's sides
    buffer["truncated"][[9, 31, 32], [2, 0, 1]] = True
    eager = gae_targets(buffer, 0.99, 0.95)
    compiled = CompiledGAE(T, 0.99, 0.95, "cpu")
    assert len(compiled.blocks) == 2
    result = gae_targets(buffer, 0.99, 0.95, compiled)
    for got, want in zip(result, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_failed_compile_warns_and_runs_the_step_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn: Any, mode: Any = None, dynamic: Any = None, options: Any = None) -> Any:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken_compile)
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    reference = copy.deepcopy(net)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    optimizer, reference_optimizer = adam(net.parameters(), lr=0.1), adam(reference.parameters(), lr=0.1)
    step = GradientStep({"net": net}, optimizer, max_grad_norm=0.5)
    with pytest.warns(UserWarning, match="torch.compile is unavailable for the test step .*no C\\+\\+ compiler"):
        program = capture(lambda x, y: step(lambda x, y: ((net(x) - y).square().mean(), ()), x, y), [step], "cpu",
                          "the test step")
    for _ in range(3):
        loss, _ = program(x, y)
        reference_loss = (reference(x) - y).square().mean()
        reference_optimizer.zero_grad()
        reference_loss.backward()
        nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        reference_optimizer.step()
        torch.testing.assert_close(loss, reference_loss.detach())
    for p, q in zip(net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_gradient_step_refuses_optimisers_that_do_not_match_the_modules() -> None:
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    with pytest.raises(ValueError, match="exactly the parameters"):
        GradientStep({"a": a}, adam(list(a.parameters()) + list(b.parameters()), lr=0.1))


def test_the_step_updates_the_state_a_checkpoint_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_state_dict replaces the optimiser's state and groups: the step must update the new ones (eagerly here:
    the bookkeeping is outside the program)."""
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None, options=None: fn)
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    optimizer = adam(net.parameters(), lr=0.1)
    step = GradientStep({"net": net}, optimizer)
    program = capture(lambda x: step(lambda x: (net(x).square().mean(), ()), x), [step], "cpu", "the test step")
    x = torch.randn(8, 3)
    program(x)
    saved = copy.deepcopy(optimizer.state_dict())
    saved["param_groups"][0]["lr"] = 0.0  # a checkpoint's rate: it must be the one used from now on
    optimizer.load_state_dict(saved)
    before = [p.clone() for p in net.parameters()]
    program(x)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))
    assert all(int(optimizer.state[p]["step"]) == 2 for p in net.parameters())
