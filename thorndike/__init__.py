"""thorndike: reinforcement learning from value iteration to GRPO, in PyTorch and Gymnasium.

    import thorndike as th
    agent = th.make("ppo", env="CartPole-v1", seed=0)
    agent.learn(total_steps=100_000)
    print(agent.evaluate(episodes=10))
"""

import importlib
from typing import Any

from thorndike import callbacks, envs
from thorndike.agent import EvalResult, NonFiniteError
from thorndike.config import ConfigError, RunOptions
from thorndike.core.checkpoint import CheckpointError
from thorndike.registry import algorithms, load, make, resume

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EvalResult",
    "NonFiniteError",
    "RunOptions",
    "algorithms",
    "callbacks",
    "envs",
    "load",
    "make",
    "plot",
    "resume",
]


def __getattr__(name: str) -> Any:
    # matplotlib (plot) and scipy (planning) are imported only when used.
    if name in ("plot", "planning"):
        return importlib.import_module(f"thorndike.{name}")
    raise AttributeError(f"module 'thorndike' has no attribute {name!r}")
