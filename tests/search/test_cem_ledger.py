"""The tabular CEM's sessions in its episode ledger (thorndike/search/cem.py, thorndike/core/ledger.py)."""

from pathlib import Path

import torch

import thorndike as th


def test_every_session_is_one_ledger_episode_of_its_copy(tmp_path: Path) -> None:
    runs, sessions = 2, 6
    agent = th.make("cem", env="FrozenLake-v1", seed=0, n_runs=runs, n_sessions=sessions, max_episode_steps=50,
                    run_root=str(tmp_path), progress=False, tensorboard=False)
    assert agent.n_env_copies() == runs * sessions
    agent.learn(200)
    iterations = agent.iteration
    assert agent.ledger.total == len(agent.ledger) == agent.episodes == iterations * runs * sessions
    # Each iteration's sessions are recorded together, in copy order, with that iteration's step count.
    copies = agent.ledger.columns["copy"].view(iterations, runs * sessions)
    assert torch.equal(copies, torch.arange(runs * sessions).expand(iterations, -1))
    steps = agent.ledger.columns["step"].view(iterations, runs * sessions)
    assert torch.equal(steps[:, 0].double(), agent.curves.matrix("step")[:, 0])
    # The mean return of a run's sessions is the curve's return_mean of that run.
    returns = agent.ledger.columns["return"].view(iterations, runs, sessions).mean(-1)
    torch.testing.assert_close(returns, agent.curves.matrix("return_mean"))
    assert agent.ledger.matrix("length").shape == (runs * sessions, iterations)
