"""Population policies (weights ``[P, n_params]``, one batched forward) and evaluate_population: the batch equals P
separate forwards, hand-computed outputs and squashing, and lockstep episodes equal each candidate played alone."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.core.population import PopulationPolicy, evaluate_population

CARTPOLE_SPACES = (gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(2))


def forward_one(weights: torch.Tensor, obs: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """One candidate's forward from its flat vector, layer by layer (the documented layout: W row-major, then b)."""
    x, start = obs, 0
    for i, (n_in, n_out) in enumerate(sizes):
        w = weights[start:start + n_in * n_out].reshape(n_in, n_out)
        start += n_in * n_out
        b = weights[start:start + n_out]
        start += n_out
        x = x @ w + b
        if i < len(sizes) - 1:
            x = torch.tanh(x)
    return x


@pytest.mark.parametrize("hidden", [0, 5], ids=["linear", "mlp"])
def test_the_batched_forward_equals_one_forward_per_candidate(hidden: int) -> None:
    policy = PopulationPolicy(*CARTPOLE_SPACES, hidden_size=hidden)
    expected_params = 4 * 2 + 2 if hidden == 0 else 4 * 5 + 5 + 5 * 2 + 2
    assert policy.n_params == expected_params
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(3, policy.n_params, generator=g)
    obs = torch.randn(3, 7, 4, generator=g)
    out = policy.outputs(weights, obs)
    assert out.shape == (3, 7, 2)
    sizes = [(4, 2)] if hidden == 0 else [(4, 5), (5, 2)]
    for p in range(3):  # the loop over candidates lives in the test only
        torch.testing.assert_close(out[p], forward_one(weights[p], obs[p], sizes))
    layers = policy.unflatten(weights)
    assert [(w.shape, b.shape) for w, b in layers] == [((3, i, o), (3, o)) for i, o in sizes]
    assert torch.equal(policy.act(weights, obs), out.argmax(-1))


def test_a_linear_policy_by_hand() -> None:
    # obs_dim 2, 2 actions: W = [[1, -1], [2, 0]], b = [0, 0.5]; flat = W row-major then b.
    policy = PopulationPolicy(gym.spaces.Box(-1, 1, (2,), np.float32), gym.spaces.Discrete(2))
    weights = torch.tensor([[1.0, -1.0, 2.0, 0.0, 0.0, 0.5]])
    obs = torch.tensor([[[1.0, 1.0], [-1.0, 0.0]]])
    # [1, 1] -> [1 + 2, -1 + 0] + b = [3, -0.5] (action 0); [-1, 0] -> [-1, 1] + b = [-1, 1.5] (action 1)
    torch.testing.assert_close(policy.outputs(weights, obs), torch.tensor([[[3.0, -0.5], [-1.0, 1.5]]]))
    assert policy.act(weights, obs).tolist() == [[0, 1]]


def test_scaled_observations_map_finite_bounds_onto_minus_one_to_one() -> None:
    # MountainCarContinuous' bounds: position [-1.2, 0.6], velocity [-0.07, 0.07]; a third, unbounded dimension.
    space = gym.spaces.Box(np.array([-1.2, -0.07, -np.inf], np.float32), np.array([0.6, 0.07, np.inf], np.float32))
    scaled = PopulationPolicy(space, gym.spaces.Discrete(3), scale_obs=True)
    raw = PopulationPolicy(space, gym.spaces.Discrete(3))
    weights = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])  # W = I, b = 0: y = x
    obs = torch.tensor([[[0.6, -0.07, 5.0], [-0.3, 0.035, -2.0]]])
    # (x - center) / halfwidth: position center -0.3, halfwidth 0.9; velocity center 0, halfwidth 0.07; 5 and -2 pass
    torch.testing.assert_close(scaled.outputs(weights, obs), torch.tensor([[[1.0, -1.0, 5.0], [0.0, 0.5, -2.0]]]))
    torch.testing.assert_close(raw.outputs(weights, obs), obs)


def test_stochastic_discrete_actions_follow_the_softmax() -> None:
    policy = PopulationPolicy(gym.spaces.Box(-1, 1, (1,), np.float32), gym.spaces.Discrete(2))
    weights = torch.tensor([[0.0, 0.0, 0.0, 1.0]])  # logits [0, 1] whatever the obs: P(1) = e / (1 + e) = 0.731
    obs = torch.zeros(1, 20_000, 1)
    actions = policy.act(weights, obs, deterministic=False, generator=torch.Generator().manual_seed(0))
    assert abs(actions.double().mean().item() - np.e / (1 + np.e)) < 0.01
    again = policy.act(weights, obs, deterministic=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(actions, again)


def test_box_actions_are_the_tanh_squashed_means_scaled_to_the_bounds() -> None:
    policy = PopulationPolicy(gym.spaces.Box(-1, 1, (1,), np.float32), gym.spaces.Box(-2.0, 2.0, (1,), np.float32))
    weights = torch.tensor([[1.0, 0.0], [0.0, 100.0]])  # candidate 0: a = tanh(x) scaled; candidate 1: y = 100
    obs = torch.tensor([[[0.0], [0.5]], [[0.3], [-0.3]]])
    actions = policy.act(weights, obs)
    assert actions.shape == (2, 2, 1)
    # low + (tanh(y) + 1) / 2 * (high - low) = 2 tanh(y) for bounds [-2, 2]
    torch.testing.assert_close(actions[0, :, 0], torch.tensor([0.0, 2 * np.tanh(0.5)], dtype=torch.float32))
    torch.testing.assert_close(actions[1, :, 0], torch.tensor([2.0, 2.0]))
    with pytest.raises(ValueError, match="unbounded"):
        PopulationPolicy(gym.spaces.Box(-1, 1, (1,)), gym.spaces.Box(-np.inf, np.inf, (1,)))


def play_alone(state: torch.Tensor, weights: torch.Tensor, max_steps: int) -> tuple[float, int]:
    """One candidate's episode from ``state`` on a one-copy CartPole, acting greedily with a per-candidate forward."""
    env = th.envs.make("CartPole-v1", n_envs=1, backend="torch")
    env.reset(seed=0)
    obs = env.set_state(state.unsqueeze(0), 0)
    total, length = 0.0, 0
    for _ in range(max_steps):
        action = forward_one(weights, obs, [(4, 2)]).argmax(-1)
        obs, reward, terminated, truncated, _ = env.step(action)
        total, length = total + float(reward), length + 1
        if bool(terminated | truncated):
            break
    return total, length


@pytest.mark.parametrize("max_steps", [500, 30])
def test_lockstep_episodes_equal_each_candidate_played_alone(max_steps: int) -> None:
    P, k = 3, 2
    policy = PopulationPolicy(*CARTPOLE_SPACES)
    weights = torch.randn(P, policy.n_params, generator=torch.Generator().manual_seed(3))
    weights[0] = torch.tensor([0.0, 0.0, 0.0, 0.0, -1.0, 1.0, -1.0, 1.0, 0.0, 0.0])  # push with the pole: a long run
    envs = th.envs.make("CartPole-v1", n_envs=P * k, backend="torch")
    envs.reset(seed=11)
    twin = th.envs.make("CartPole-v1", n_envs=P * k, backend="torch")
    twin.reset(seed=11)
    twin.reset()  # evaluate_population resets once more: these are the start states its copies play from
    starts, _ = twin.get_state()

    returns, lengths = evaluate_population(envs, policy, weights, k, max_steps)
    assert returns.shape == lengths.shape == (P, k) and returns.dtype == torch.float64
    for p in range(P):
        for j in range(k):
            alone = play_alone(starts[p * k + j], weights[p], max_steps)
            assert (returns[p, j].item(), lengths[p, j].item()) == alone, (p, j)
    assert int(lengths.max()) <= max_steps and int(lengths.min()) < int(lengths.max())  # episodes of unequal length
    if max_steps == 500:
        assert returns[0].min() > 100  # the hand-made candidate balances the pole for a while


def test_evaluate_population_needs_one_copy_per_episode() -> None:
    policy = PopulationPolicy(*CARTPOLE_SPACES)
    envs = th.envs.make("CartPole-v1", n_envs=5)
    with pytest.raises(ValueError, match="needs 6 env copies"):
        evaluate_population(envs, policy, policy.initial_weights(3), 2, 10)


class Stepped:
    """A native env seen only through the VecEnv protocol, so evaluate_population steps it (autoreset included)."""

    def __init__(self, envs) -> None:
        self.envs, self.n_envs = envs, envs.n_envs

    def reset(self):
        return self.envs.reset()

    def step(self, actions):
        return self.envs.step(actions)


@pytest.mark.parametrize(("env_id", "hidden", "deterministic"), [
    ("CartPole-v1", 0, True), ("CartPole-v1", 6, False), ("Pendulum-v1", 6, True),
    ("MountainCarContinuous-v0", 0, True), ("FrozenLake-v1", 0, False)])
def test_the_native_fast_path_equals_stepping_with_autoreset(env_id: str, hidden: int, deterministic: bool) -> None:
    """begin/continue_episodes give the same returns, lengths and random streams as ``step`` (the slow path)."""
    fast, slow = (th.envs.make(env_id, n_envs=12, seed=5, backend="torch") for _ in range(2))
    obs_space = fast.single_observation_space
    if not isinstance(obs_space, gym.spaces.Box):  # FrozenLake (random dynamics): the state index as one number
        obs_space = gym.spaces.Box(0.0, 15.0, (1,), np.float32)
    policy = PopulationPolicy(obs_space, fast.single_action_space, hidden)
    policy_generators = [torch.Generator().manual_seed(2) for _ in range(2)]
    for population in range(3):  # consecutive populations continue both random streams
        weights = torch.randn(4, policy.n_params, generator=torch.Generator().manual_seed(population))
        ours = evaluate_population(fast, policy, weights, 3, 150, policy_generators[0], deterministic)
        stepped = evaluate_population(Stepped(slow), policy, weights, 3, 150, policy_generators[1], deterministic)
        assert torch.equal(ours[0], stepped[0]) and torch.equal(ours[1], stepped[1])
    # (the fast path defers the draws it throws away; saving the env settles them)
    assert torch.equal(fast.state_dict()["generator"], slow.state_dict()["generator"])
    assert torch.equal(policy_generators[0].get_state(), policy_generators[1].get_state())


def test_native_checks_report_a_nan_of_a_playing_copy_and_ignore_one_past_its_episode() -> None:
    """On a native env a copy keeps moving after its episode; NaN there is masked out, NaN in play names step and
    copy."""
    from thorndike.core.diagnostics import NonFiniteError
    from thorndike.envs.batched.cartpole import CartPole

    class Faulty(CartPole):
        nan_copy = 0  # copy 0 ends at step 2 and turns NaN at step 5, after its episode

        def _dynamics(self, state, actions):
            next_state, reward, terminated = super()._dynamics(state, actions)
            self.steps_taken = getattr(self, "steps_taken", 0) + 1
            if self.steps_taken == 2:
                terminated = terminated.clone()
                terminated[0] = True
            if self.steps_taken == 5:
                next_state[self.nan_copy] = float("nan")
            return next_state, reward, terminated

    policy = PopulationPolicy(*CARTPOLE_SPACES)
    weights = torch.zeros(3, policy.n_params)
    returns, lengths = evaluate_population(Faulty(n_envs=3), policy, weights, 1, 20)
    assert lengths[0, 0] == 2 and torch.isfinite(returns).all()
    env = Faulty(n_envs=3)
    env.nan_copy = 1
    with pytest.raises(NonFiniteError, match=r"observation is not finite .* at step 5, env copy 1"):
        evaluate_population(env, policy, weights, 1, 20)


class ClockedCartPole:
    """CartPole with a step clock in a fifth state column (observed: the first four): copy 1 turns NaN at step 5."""

    @staticmethod
    def make(n_envs: int, dtype: torch.dtype = torch.float64):
        from thorndike.envs.batched.cartpole import CartPole

        class Clocked(CartPole):
            state_names = (*CartPole.state_names, "clock")
            reset_low, reset_high = (-0.05,) * 4 + (0.0,), (0.05,) * 4 + (0.0,)

            def _observe(self, state):
                return state[:, :4]

            def _dynamics(self, state, actions):
                next_physics, reward, terminated = super()._dynamics(state[:, :4].contiguous(), actions)
                clock = state[:, 4:] + 1
                poisoned = (clock == 5) & (torch.arange(len(state)).unsqueeze(1) == 1)
                next_physics = torch.where(poisoned, float("nan"), next_physics)
                return torch.cat((next_physics, clock), 1), reward, terminated

        return Clocked(n_envs=n_envs, dtype=dtype)


@pytest.mark.parametrize("max_steps", [7, 40])
def test_the_compiled_evaluation_equals_the_eager_one(max_steps: int) -> None:
    """compile=True: the same episodes as eager (float64 env: rounding too small to flip an end in 40 steps), the
    max_steps cut inside a compiled block, and the env's random stream left as the eager loop leaves it."""
    compiled_env, eager_env = (th.envs.make("CartPole-v1", n_envs=24, seed=3, backend="torch", dtype=torch.float64)
                               for _ in range(2))
    policy = PopulationPolicy(*CARTPOLE_SPACES)
    for population in range(2):
        weights = torch.randn(8, policy.n_params, generator=torch.Generator().manual_seed(population))
        compiled = evaluate_population(compiled_env, policy, weights, 3, max_steps, compile=True)
        eager = evaluate_population(eager_env, policy, weights, 3, max_steps)
        assert torch.equal(compiled[1], eager[1])
        torch.testing.assert_close(compiled[0], eager[0], rtol=0, atol=0)
        assert int(compiled[1].max()) <= max_steps
    assert torch.equal(compiled_env.state_dict()["generator"], eager_env.state_dict()["generator"])


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_a_nan_in_play_is_named_by_step_and_copy(compile: bool) -> None:
    from thorndike.core.diagnostics import NonFiniteError

    policy = PopulationPolicy(*CARTPOLE_SPACES)
    with pytest.raises(NonFiniteError, match=r"observation is not finite .* at step 5, env copy 1"):
        evaluate_population(ClockedCartPole.make(3), policy, torch.zeros(3, policy.n_params), 1, 20, compile=compile)
