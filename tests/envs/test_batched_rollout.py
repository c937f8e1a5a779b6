"""BatchedRollout: T steps of a native env as one program, eager (bit for bit the env's own steps) and compiled."""

from __future__ import annotations

import pytest
import torch

import thorndike as th
from thorndike.envs.batched import CartPole, Pendulum
from thorndike.envs.batched.rollout import ROLLOUT_OUTPUTS, BatchedRollout, uniform_policy


def stepped(env, actions: torch.Tensor) -> dict[str, torch.Tensor]:
    """``env.step`` once per row of ``actions``, its outputs stacked like a rollout's."""
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in ROLLOUT_OUTPUTS}
    for step_actions in actions:
        obs, reward, terminated, truncated, info = env.step(step_actions)
        for name, value in (("obs", obs), ("actions", step_actions), ("reward", reward), ("terminated", terminated),
                            ("truncated", truncated), *((key, info[key]) for key in
                                                        ("final_obs", "done", "episode_return", "episode_length"))):
            rows[name].append(value)
    return {name: torch.stack(values) for name, values in rows.items()}


@pytest.mark.parametrize("env_class", [CartPole, Pendulum])
def test_an_eager_rollout_is_the_envs_own_steps_bit_for_bit(env_class) -> None:
    """Two calls of 30 steps (episodes end and reset inside, the state carries over) equal 60 env.step calls with
    the same actions: the same initial-state draws from the env's generator, the same numbers everywhere; and the
    env is left where the steps leave it (its next step, state and generator)."""
    limit = 13 if env_class is Pendulum else None  # Pendulum's episodes end by the time limit: a short one
    rolled, reference = env_class(16, max_episode_steps=limit), env_class(16, max_episode_steps=limit)
    rolled.reset(seed=5)
    reference.reset(seed=5)
    rollout = BatchedRollout(rolled, 30)
    generator, replay = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    policy = uniform_policy(rolled.single_action_space)
    for _ in range(2):
        out = rollout(generator)
        uniforms = torch.rand((30, 16, rollout.policy_draws), generator=replay)
        expected = stepped(reference, torch.stack([policy(None, u) for u in uniforms]))
        for name in ROLLOUT_OUTPUTS:
            assert out[name].shape[:2] == (30, 16)
            assert torch.equal(out[name], expected[name]), name
    assert bool(out["done"].any())
    assert torch.equal(generator.get_state(), replay.get_state())  # the caller's stream moved on as torch.rand's
    assert torch.equal(rolled.state_dict()["generator"], reference.state_dict()["generator"])
    assert torch.equal(rolled.get_state()[0], reference.get_state()[0])
    actions = torch.zeros(16, *rolled.single_action_space.shape, dtype=out["actions"].dtype)
    assert torch.equal(rolled.step(actions)[0], reference.step(actions)[0])


def test_a_policy_of_the_observation_is_played_inside_the_rollout() -> None:
    """A deterministic policy of the observation (push toward the pole's lean, no uniforms): the rollout's actions
    are that policy's at every step's observation, and the steps equal the env's own."""
    def lean(obs: torch.Tensor, uniforms: torch.Tensor, carry: tuple = ()) -> torch.Tensor:
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).to(torch.int64)

    rolled, reference = CartPole(8), CartPole(8)
    rolled.reset(seed=2)
    obs = reference.reset(seed=2)
    out = BatchedRollout(rolled, 50, policy=lean, policy_draws=0)()
    for t in range(50):
        action = lean(obs, torch.empty(8, 0))
        assert torch.equal(out["actions"][t], action)
        obs = reference.step(action)[0]
        assert torch.equal(out["obs"][t], obs)
    assert int(out["done"].sum()) < 8  # the lean policy balances for a while: it really acts on the observation


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_policys_uniform_noise_is_torch_rand_to_the_bit(dtype) -> None:
    """On the CPU the rollout draws its uniforms as raw bits and converts them inside the program: the noise a
    policy sees is exactly what torch.rand draws from the same generator, for both float widths, and the generator
    ends where torch.rand leaves it."""
    def noise_out(obs: torch.Tensor, uniforms: torch.Tensor, carry: tuple = ()) -> tuple:
        return (uniforms[:, 0] * 2).to(torch.int64).clamp_max(1), {"noise": uniforms}

    env = CartPole(8, dtype=dtype)
    env.reset(seed=0)
    generator, replay = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    out = BatchedRollout(env, 5, policy=noise_out, policy_draws=3)(generator)
    expected = torch.rand((5, 8, 3), generator=replay, dtype=dtype)
    assert out["noise"].dtype == dtype
    assert torch.equal(out["noise"], expected)
    assert torch.equal(generator.get_state(), replay.get_state())


def test_a_compiled_rollout_matches_the_eager_one(recwarn: pytest.WarningsRecorder) -> None:
    """torch.compile of the 8-step program: the same random streams and actions, observations equal to float
    rounding (inductor's sin and cos are not ATen's to the last bit), the same episode ends, and the env's
    generator left where the eager rollout leaves it. float64 keeps rounding far from every threshold."""
    compiled_env, eager_env = (CartPole(32, dtype=torch.float64) for _ in range(2))
    compiled_env.reset(seed=4)
    eager_env.reset(seed=4)
    compiled = BatchedRollout(compiled_env, 8, compile=True)
    eager = BatchedRollout(eager_env, 8)
    for call in range(3):
        got, expected = compiled(torch.Generator().manual_seed(call)), eager(torch.Generator().manual_seed(call))
        for name in ROLLOUT_OUTPUTS:
            if expected[name].is_floating_point():
                torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-12)
            else:
                assert torch.equal(got[name], expected[name]), name
    assert torch.equal(compiled_env.state_dict()["generator"], eager_env.state_dict()["generator"])
    assert not [w for w in recwarn if "eagerly" in str(w.message)]  # it compiled: no fallback to eager


def test_rollout_refuses_what_it_cannot_play() -> None:
    env = CartPole(4)
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        BatchedRollout(env, 0)
    with pytest.raises(ValueError, match="policy_draws"):
        BatchedRollout(env, 4, policy=lambda obs, u, carry: obs[:, 0].long())
    with pytest.raises(RuntimeError, match="call reset"):
        BatchedRollout(env, 4)()
    frozen_lake = th.envs.make("FrozenLake-v1", n_envs=4, seed=0, backend="torch")  # slippery: random dynamics
    with pytest.raises(ValueError, match="draws nothing but initial states"):
        BatchedRollout(frozen_lake, 4)
