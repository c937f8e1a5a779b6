"""The few-runs path (thorndike.tabular.scalar) gives bit for bit what the tensor path gives.

Its pieces are checked against their tensor twins (generator draws in one op, epsilon-greedy and greedy choices,
expected values summed in torch's order, the env's plain step), then whole runs of Q-learning, SARSA and expected
SARSA on FrozenLake (slippery), CliffWalking and Taxi are played both ways and compared in every table, count,
ledger row, log row, generator state and checkpoint, also across a resume from a checkpoint in the middle.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import thorndike as th
from tests.test_contract import learning_rows, same_state
from thorndike.core import exploration
from thorndike.core.checkpoint import list_checkpoints, load_checkpoint
from thorndike.core.targets import row_sum, row_sum_is_torch_sum
from thorndike.envs.batched.tabular import toy_text_env
from thorndike.run import RunOptions
from thorndike.tabular import scalar

QUIET = dict(progress=False, tensorboard=False, pictures=False)


# ---- the pieces ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 6), (3, 6), (5, 7), (2,), (1,), (40,)])
def test_one_draw_of_many_steps_is_those_steps_draws(shape: tuple[int, ...]) -> None:
    steps = 37
    for dtype in (torch.float64, torch.int64):
        one_by_one = torch.Generator().manual_seed(7)
        at_once = torch.Generator().manual_seed(7)
        if dtype == torch.float64:
            each = [torch.rand(shape, generator=one_by_one, dtype=dtype) for _ in range(steps)]
            together = torch.rand((steps, *shape), generator=at_once, dtype=dtype)
        else:
            each = [torch.empty(shape, dtype=dtype).random_(generator=one_by_one) for _ in range(steps)]
            together = torch.empty((steps, *shape), dtype=dtype).random_(generator=at_once)
        assert torch.equal(torch.stack(each), together)
        assert torch.equal(one_by_one.get_state(), at_once.get_state())


def random_rows(n_rows: int, n_actions: int, seed: int) -> torch.Tensor:
    """Action values with many ties (few distinct values), where the choices are hardest to get equal."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 3, (n_rows, n_actions), generator=generator).double() * 0.25 - 0.1


@pytest.mark.parametrize("n_actions", [1, 4, 6])
def test_choices_on_one_row_match_the_tensor_functions(n_actions: int) -> None:
    q = random_rows(500, n_actions, n_actions)
    generator = torch.Generator().manual_seed(1)
    epsilon = torch.rand(500, generator=generator, dtype=torch.float64)
    state = generator.get_state()
    actions = exploration.epsilon_greedy_sample(q, epsilon, generator)
    generator.set_state(state)
    uniforms = torch.rand(500, n_actions + 2, generator=generator, dtype=torch.float64)
    assert actions.tolist() == [exploration.epsilon_greedy_sample_row(row, e, u) for row, e, u in
                                zip(q.tolist(), epsilon.tolist(), uniforms.tolist(), strict=True)]
    assert len(set(actions.tolist())) == n_actions  # every action was chosen somewhere: the test can tell them apart

    state = generator.get_state()
    greedy = exploration.sample(exploration.greedy_probs(q), generator)
    generator.set_state(state)
    u = torch.rand(500, generator=generator, dtype=torch.float64)
    assert greedy.tolist() == [exploration.sample_row(exploration.greedy_probs_row(row), v)
                               for row, v in zip(q.tolist(), u.tolist(), strict=True)]
    probs = exploration.epsilon_greedy_probs(q, epsilon)
    rows = [exploration.epsilon_greedy_probs_row(row, e) for row, e in zip(q.tolist(), epsilon.tolist(), strict=True)]
    assert torch.equal(probs, torch.tensor(rows, dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 13])
def test_row_sum_adds_in_torchs_order(n: int) -> None:
    generator = torch.Generator().manual_seed(n)
    rows = torch.randn(300, n, generator=generator, dtype=torch.float64) * torch.tensor([1e16, 1.0, 1e-3])[
        torch.randint(0, 3, (300, n), generator=generator)]
    assert rows.sum(-1).tolist() == [row_sum(row) for row in rows.tolist()]
    assert row_sum_is_torch_sum(n)
    if n >= 5:  # from 5 columns torch does not add left to right: the order matters on these rows
        assert any(sum(row) != total for row, total in zip(rows.tolist(), rows.sum(-1).tolist(), strict=True))


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CliffWalking-v1", "Taxi-v4"])
def test_the_plain_step_is_the_env_step(env_id: str) -> None:
    # a short time limit, so that episodes end by truncation too (CliffWalking has none and rarely terminates)
    tensor_env, plain_env = (toy_text_env(env_id, 3, max_episode_steps=30) for _ in range(2))
    tensor_env.reset(seed=5)
    plain_env.reset(seed=5)
    model = plain_env.plain_model()
    assert model is not None
    states, elapsed, returns = plain_env.plain_state()
    generator = torch.Generator().manual_seed(0)
    ended = 0
    transition_bits, start_bits = plain_env.draw_steps(400)
    assert (len(transition_bits), len(start_bits)) == {"FrozenLake-v1": (1200, 0), "CliffWalking-v1": (0, 0),
                                                       "Taxi-v4": (0, 1200)}[env_id]
    for t in range(400):
        actions = torch.randint(0, tensor_env.n_actions, (3,), generator=generator)
        obs, reward, terminated, truncated, info = tensor_env.step(actions)
        for r in range(3):
            i = 3 * t + r
            (next_s, r_seen, term, trunc, states[r], elapsed[r], returns[r], episode_return,
             length) = model.step(states[r], int(actions[r]), elapsed[r], returns[r],
                                  transition_bits[i] if transition_bits else 0, start_bits[i] if start_bits else 0)
            assert (next_s, r_seen, term, trunc, states[r]) == (int(info["final_obs"][r]), float(reward[r]),
                                                                bool(terminated[r]), bool(truncated[r]), int(obs[r]))
            if term or trunc:
                ended += 1
                assert (episode_return, length) == (float(info["episode_return"][r]), int(info["episode_length"][r]))
    assert ended > 0
    assert [s.tolist() for s in tensor_env.get_state()] == [states, elapsed]
    assert tensor_env._returns.tolist() == returns
    assert torch.equal(tensor_env.state_dict()["generator"], plain_env.state_dict()["generator"])


# ---- when it applies ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fields", "expected"), [
    ("q_learning", {}, True),
    ("sarsa", {"n_runs": 32}, True),
    ("expected_sarsa", {"exploration": "greedy"}, True),
    ("q_learning", {"n_runs": 33}, False),  # 33 runs x 4 actions > MAX_ENTRIES
    ("q_learning", {"exploration": "boltzmann"}, False),
    ("sarsa", {"exploration": "ucb"}, False),
    ("double_q_learning", {}, False),
    ("n_step_sarsa", {}, False),
    ("q_learning", {"backend": "gymnasium"}, False),
])
def test_the_fast_path_is_chosen_once_where_it_applies(tmp_path: Path, name: str, fields: dict[str, Any],
                                                       expected: bool) -> None:
    agent = th.make(name, env="FrozenLake-v1", run_root=str(tmp_path), **QUIET, **fields)
    assert (getattr(agent, "scalar", None) is not None) is expected


def test_a_subclass_that_acts_otherwise_keeps_the_tensor_path(tmp_path: Path) -> None:
    class Timid(th.tabular.q_learning.QLearning):
        def behaviour_action(self, states: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(states)

    agent = Timid("FrozenLake-v1", Timid.Config(), options=RunOptions(run_root=str(tmp_path), **QUIET))
    assert agent.scalar is None
    agent.learn(50)
    assert int(agent.tables.visits[0, :, 1:].sum()) == 0  # its own policy was used: only action 0 was ever taken


# ---- whole runs, both ways -----------------------------------------------------------------------------------------

VARIANTS = {
    # one run, constant epsilon and step size; an iteration fits in one chunk of draws
    "plain": {"n_runs": 1, "epsilon": 0.3, "log_every": 700},
    # several runs, epsilon decaying per episode, 1/n step sizes, a short time limit (truncations; CliffWalking
    # has none); iterations of two chunks of draws
    "decay": {"n_runs": 3, "epsilon": 1.0, "epsilon_decay": 0.99, "epsilon_end": 0.05, "alpha_schedule": "1/n",
              "log_every": 1300, "env_kwargs": {"max_episode_steps": 60}},
}


def learned(name: str, env: str, run_root: Path, tensor_path: bool, steps: int = 3000, **fields: Any) -> Any:
    """An agent after ``steps`` steps, on the tensor path or the plain-Python one."""
    with pytest.MonkeyPatch.context() as patch:
        if tensor_path:
            patch.setattr(scalar, "MAX_ENTRIES", 0)
        agent = th.make(name, env=env, seed=11, run_root=str(run_root), checkpoint_every=1000, **QUIET, **fields)
        assert (agent.scalar is None) is tensor_path
        agent.learn(steps)
    return agent


def without_run_root(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "options": {k: v for k, v in state["options"].items() if k != "run_root"}}


def assert_same_runs(ours: Any, theirs: Any) -> None:
    # everything but where the runs were written: tables, counts, env and agent generators, ledger, counters
    assert same_state(without_run_root(ours.state_dict()), without_run_root(theirs.state_dict()))
    assert torch.equal(ours.behaviour.current, theirs.behaviour.current)
    assert learning_rows(ours.run_dir) == learning_rows(theirs.run_dir)
    ours_saved, theirs_saved = (list_checkpoints(a.run_dir / "checkpoints") for a in (ours, theirs))
    assert [p.name for p in ours_saved] == [p.name for p in theirs_saved] and ours_saved
    for a, b in zip(ours_saved, theirs_saved, strict=True):
        assert same_state(load_checkpoint(a)["components"], load_checkpoint(b)["components"])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("env", ["FrozenLake-v1", "CliffWalking-v1", "Taxi-v4"])
@pytest.mark.parametrize("name", ["q_learning", "sarsa", "expected_sarsa"])
def test_a_run_is_the_same_on_both_paths(tmp_path: Path, name: str, env: str, variant: str) -> None:
    tensor = learned(name, env, tmp_path / "tensor", True, **VARIANTS[variant])
    plain = learned(name, env, tmp_path / "plain", False, **VARIANTS[variant])
    assert plain.history.ledger.total > 3  # episodes ended (and epsilon moved, where it decays)
    assert int(plain.tables.visits.sum()) == 3000 * plain.config.n_runs
    assert_same_runs(plain, tensor)


@pytest.mark.parametrize("name", ["q_learning", "sarsa", "expected_sarsa"])
def test_greedy_exploration_and_glie_are_the_same_on_both_paths(tmp_path: Path, name: str) -> None:
    for fields in ({"exploration": "greedy", "n_runs": 2, "q_init": 0.5},
                   {"epsilon_schedule": "glie", "epsilon": 1.0, "n_runs": 2}):
        tensor = learned(name, "FrozenLake-v1", tmp_path / "tensor", True, steps=2000, **fields)
        plain = learned(name, "FrozenLake-v1", tmp_path / "plain", False, steps=2000, **fields)
        assert_same_runs(plain, tensor)


@pytest.mark.parametrize("name", ["q_learning", "sarsa", "expected_sarsa"])
def test_a_resume_from_the_middle_crosses_paths(tmp_path: Path, name: str) -> None:
    # A plain-path run is cut back to its checkpoint at step 2000 and resumed on the tensor path (and the other way
    # round): both end where uninterrupted runs end, log rows included. SARSA's pending a' crosses the checkpoint.
    fields = {**VARIANTS["decay"], "log_every": 500}
    for first_tensor in (False, True):
        whole = learned(name, "FrozenLake-v1", tmp_path / f"whole{first_tensor}", not first_tensor, steps=4000,
                        **fields)
        cut = tmp_path / f"cut{first_tensor}"
        shutil.copytree(whole.run_dir, cut)
        (cut / "final.pt").unlink()
        for checkpoint in list_checkpoints(cut / "checkpoints"):
            if load_checkpoint(checkpoint)["counters"]["global_step"] > 2000:
                checkpoint.unlink()
        with pytest.MonkeyPatch.context() as patch:
            if not first_tensor:
                patch.setattr(scalar, "MAX_ENTRIES", 0)
            resumed = th.resume(cut, progress=False)
            assert resumed.global_step == 2000 and (resumed.scalar is None) is (not first_tensor)
            if name == "sarsa":
                assert resumed.pending_action.value is not None
            resumed.learn(resumed.total_steps)
        assert same_state(resumed.state_dict()["components"], whole.state_dict()["components"])
        assert learning_rows(cut) == learning_rows(whole.run_dir)
