"""The tabular family's shape: every learner at most one level below Agent, no inherited method overridden to raise."""

import inspect
from pathlib import Path

import pytest

import thorndike as th
from thorndike.agent import Agent
from thorndike.registry import ALGORITHMS, get_algorithm

TABULAR = sorted(name for name, where in ALGORITHMS.items()
                 if where.startswith(("thorndike.tabular", "thorndike.search.cem")))


@pytest.mark.parametrize("name", TABULAR)
def test_at_most_one_level_below_agent(name: str) -> None:
    cls = get_algorithm(name)
    below_agent = [c for c in cls.__mro__ if issubclass(c, Agent) and c is not Agent]
    assert len(below_agent) <= 2, [c.__name__ for c in below_agent]  # the algorithm and at most one family base


def test_prediction_learners_have_no_q_to_refuse(tmp_path: Path) -> None:
    agent = th.make("td0", env="FrozenLake-v1", run_root=str(tmp_path), progress=False, tensorboard=False)
    assert not any("q" in vars(c) for c in inspect.getmro(type(agent)))
    with pytest.raises(AttributeError, match="values"):
        _ = agent.q
    with pytest.raises(AttributeError, match="no attribute 'w'"):
        _ = agent.w
    assert agent.envs.n_envs == agent.config.n_runs == 1
