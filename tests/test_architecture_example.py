"""The worked example of docs/architecture.md runs as written: a new algorithm on the shared parts, registered,
trained, saved and loaded."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.registry import ALGORITHMS

DOC = Path(__file__).parents[1] / "docs" / "architecture.md"


@pytest.fixture
def example_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    module = types.ModuleType("architecture_example")
    monkeypatch.setitem(sys.modules, "architecture_example", module)  # dataclasses look their module up there
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102  (our own documentation)
    monkeypatch.setitem(ALGORITHMS, "simple_ac", "architecture_example:SimpleAC")
    return module


def test_the_worked_example_trains_saves_and_loads(tmp_path: Path, example_module: types.ModuleType) -> None:
    agent = th.make("simple_ac", env="CartPole-v1", seed=0, run_root=str(tmp_path), progress=False,
                    tensorboard=False, pictures=False)
    agent.learn(20_000)
    # A random policy lasts about 22 steps; the last 20 training episodes (seeds 0-11: 112 to 253) are far longer.
    assert agent.episode_columns()["return_mean"] > 60
    header = (agent.run_dir / "progress.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["step", "iteration", "episodes", "return_mean", "eval_mean"] and "policy_loss" in header
    batch = th.envs.make("CartPole-v1", n_envs=8, seed=1).reset(seed=1)
    assert torch.equal(th.load(agent.run_dir / "final.pt").act(batch), agent.act(batch))
    with pytest.raises(th.ConfigError, match="gamma"):
        th.make("simple_ac", env="CartPole-v1", gamma=1.5)
