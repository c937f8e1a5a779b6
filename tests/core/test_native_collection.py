"""NativeCollection: an on-policy rollout on a native env as one program, the same transitions as collect_rollout
with the same sampling, and a compiled program that agrees with the eager one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.core.rollout import NativeCollection, collect_rollout

QUIET = dict(progress=False, tensorboard=False, pictures=False)


def agents(tmp_path: Path, env: str, n_steps: int = 24, **fields):
    """Two identical PPO agents (same seed) on the native env, with reward and observation normalisation."""
    return [th.make("ppo", env=env, seed=3, backend="torch", n_envs=16, n_steps=n_steps, normalize_obs=True,
                    normalize_reward=True, run_root=str(tmp_path / name), **QUIET, **fields) for name in ("a", "b")]


@pytest.mark.parametrize(("env", "n_steps"), [("CartPole-v1", 24), ("Pendulum-v1", 24), ("CartPole-v1", 70)])
def test_the_program_fills_the_buffer_as_collect_rollout_does(tmp_path: Path, env: str, n_steps: int) -> None:
    """Uncompiled, two rollouts of the program equal collect_rollout's with a sampler drawing the same noise per step
    from the same generator: every stored field, the critic's values, the scaled rewards, the observation
    statistics, the episode ledger and the interaction's current observations. 70 steps are played as programs of
    32, 32 and 6 steps."""
    native, reference = agents(tmp_path, env, n_steps)
    collection = NativeCollection.build(native.interaction, native.model, n_steps, compile=False)
    assert collection is not None
    assert [p.n_steps for p in collection.programs] == ([24] if n_steps == 24 else [32, 32, 6])

    reference_policy = NativeCollection.build(reference.interaction, reference.model, n_steps, compile=False).policy

    def sample(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        draw = torch.rand if collection.discrete else torch.randn
        normalizer = reference.model.normalizer  # collect_rollout updates it in place, step by step
        actions, extras = reference_policy(obs, draw((obs.shape[0], collection.programs[0].policy_draws),
                                                     generator=reference.generator),
                                           (normalizer.mean, normalizer.var, normalizer.count))
        return actions, extras["log_probs"]

    for iteration in range(2):
        first = iteration * 16 * n_steps
        collection(native.buffer, native.generator, native.model.value, first)
        collect_rollout(reference.interaction, reference.buffer, sample, reference.model.value, first,
                        observe=reference.model.normalizer.update)
        for name in native.buffer.data:
            assert torch.equal(native.buffer[name], reference.buffer[name]), name
    assert torch.equal(native.interaction.obs, reference.interaction.obs)
    assert torch.equal(native.model.normalizer.mean, reference.model.normalizer.mean)
    native.interaction.ledger.flush()
    reference.interaction.ledger.flush()
    assert native.interaction.ledger.total == reference.interaction.ledger.total
    assert torch.equal(native.generator.get_state(), reference.generator.get_state())



def test_the_compiled_program_agrees_with_the_eager_one_as_the_weights_change(tmp_path: Path) -> None:
    """Compiled, the rollouts equal the eager program's to float rounding, through three rollouts with the weights
    changed between them (the program reads the live weights and observation statistics, not a copy)."""
    compiled_agent, eager_agent = agents(tmp_path, "CartPole-v1")
    compiled = NativeCollection.build(compiled_agent.interaction, compiled_agent.model, 24, compile=True)
    eager = NativeCollection.build(eager_agent.interaction, eager_agent.model, 24, compile=False)
    for iteration in range(3):
        first = iteration * 16 * 24
        compiled(compiled_agent.buffer, compiled_agent.generator, compiled_agent.model.value, first)
        eager(eager_agent.buffer, eager_agent.generator, eager_agent.model.value, first)
        for name in eager_agent.buffer.data:
            got, expected = compiled_agent.buffer[name], eager_agent.buffer[name]
            if expected.is_floating_point():
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=name)
            else:
                assert torch.equal(got, expected), name
        torch.testing.assert_close(compiled_agent.model.normalizer.mean, eager_agent.model.normalizer.mean)
        with torch.no_grad():
            for agent in (compiled_agent, eager_agent):
                for parameter in agent.model.parameters():
                    parameter.add_(0.3 * torch.sin(torch.arange(parameter.numel(), dtype=parameter.dtype))
                                   .view_as(parameter))
