"""Callbacks: code run at the lifecycle's hooks during ``learn``, the same for every registered algorithm.

    import thorndike as th
    from thorndike.callbacks import SaveBest, StopOnNoImprovement

    agent = th.make("ppo", env="CartPole-v1", eval_every=10_000)
    agent.learn(200_000, callbacks=[StopOnNoImprovement(patience=5), SaveBest()])

The hooks are called by the run's session (:class:`thorndike.run.Session`), never by an algorithm, so every
algorithm gets them without code of its own:

- ``on_evaluation(agent, result)``: after each evaluation during training (every ``eval_every`` steps; ``result``
  is the :class:`~thorndike.interaction.EvalResult`, ``agent.global_step`` the step), before the row is written;
- ``on_iteration(agent, row)``: after each row of ``progress.csv``, i.e. after each iteration. An iteration is
  thorndike's step batch (PPO: one rollout of ``n_envs * n_steps`` steps; a tabular learner: ``log_every`` steps
  per run), so this is also the "after every batch of steps" hook; ``row`` holds ``step`` and the logged columns;
- ``on_checkpoint(agent, path)``: after each periodic checkpoint is written.

A hook that returns ``True`` stops training at the end of this iteration, as ``stop_return`` does: the run ends
cleanly (``final.pt``, pictures). A callback's state (best return so far, patience counter) is saved in every
checkpoint through its ``state_dict``, keyed by its class name, and given back by ``load_state_dict`` when the run
is resumed with callbacks of the same classes (``th.resume(run).learn(n, callbacks=[...])``), so a resumed run
stops at the same step as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from thorndike.config import ConfigError

__all__ = ["Callback", "Callbacks", "SaveBest", "StopOnNoImprovement", "StopOnReturn"]


class Callback:
    """Base of the callbacks: every hook does nothing and returns ``None`` (go on); override the ones you need.

    ``needs_evaluations``: the callback reads evaluations, so a run without ``eval_every`` is refused at the start
    rather than silently never calling it.
    """

    needs_evaluations: ClassVar[bool] = False

    def on_evaluation(self, agent: Any, result: Any) -> bool | None:
        """After each evaluation during training; ``True`` stops training."""
        return None

    def on_iteration(self, agent: Any, row: dict[str, Any]) -> bool | None:
        """After each log row (each iteration, thorndike's batch of steps); ``True`` stops training."""
        return None

    def on_checkpoint(self, agent: Any, path: Path) -> None:
        """After each periodic checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs to go on exactly (saved in every checkpoint)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned."""


class StopOnReturn(Callback):
    """Stop once the return reaches ``threshold``: the evaluation mean (``source="eval"``) or the training
    ``return_mean`` of the log row (``source="train"``, the mean of the recent training episodes)."""

    def __init__(self, threshold: float, source: str = "eval") -> None:
        if source not in ("eval", "train"):
            raise ConfigError(f"invalid config: source={source!r}; source must be eval or train")
        self.threshold, self.source = float(threshold), source
        self.needs_evaluations = source == "eval"

    def on_evaluation(self, agent: Any, result: Any) -> bool:
        return self.source == "eval" and result.mean >= self.threshold

    def on_iteration(self, agent: Any, row: dict[str, Any]) -> bool:
        value = row.get("return_mean", math.nan)
        return self.source == "train" and not math.isnan(value) and value >= self.threshold


class StopOnNoImprovement(Callback):
    """Stop when ``patience`` evaluations in a row have not raised the best evaluation mean by more than
    ``min_delta``. The best mean and the count of evaluations without improvement go into checkpoints."""

    needs_evaluations = True

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"invalid config: patience={patience!r}; patience must be a whole number >= 1")
        if not min_delta >= 0:
            raise ConfigError(f"invalid config: min_delta={min_delta!r}; min_delta must be >= 0")
        self.patience, self.min_delta = patience, float(min_delta)
        self.best = -math.inf
        self.without_improvement = 0

    def on_evaluation(self, agent: Any, result: Any) -> bool:
        if result.mean > self.best + self.min_delta:
            self.best, self.without_improvement = result.mean, 0
        else:
            self.without_improvement += 1
        return self.without_improvement >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "without_improvement": self.without_improvement}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.without_improvement = state["best"], state["without_improvement"]


class SaveBest(Callback):
    """Save the agent to ``run_dir/<filename>`` (``best.pt``, a full checkpoint that ``th.load`` reads) each time
    an evaluation mean beats the best so far."""

    needs_evaluations = True

    def __init__(self, filename: str = "best.pt") -> None:
        self.filename = filename
        self.best = -math.inf
        self.best_step: int | None = None

    def on_evaluation(self, agent: Any, result: Any) -> None:
        if result.mean > self.best:
            self.best, self.best_step = result.mean, agent.global_step
            agent.save(Path(agent.run_dir) / self.filename)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step = state["best"], state["best_step"]


class Callbacks:
    """The callbacks of one ``learn`` call, as the session calls them: each hook of each callback in order; a stop
    asked by one does not skip the others (each sees every evaluation, so its state stays the same as in a run it
    did not stop)."""

    def __init__(self, callbacks: Iterable[Any] = ()) -> None:
        self.items = list(callbacks)
        self.keys: list[str] = []
        for callback in self.items:
            name = type(callback).__name__
            taken = sum(1 for key in self.keys if key == name or key.startswith(name + "#"))
            self.keys.append(name if taken == 0 else f"{name}#{taken + 1}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def check(self, eval_every: int) -> None:
        """Refuse, before training starts, callbacks that read evaluations in a run that makes none."""
        needing = [key for key, c in zip(self.keys, self.items) if getattr(c, "needs_evaluations", False)]
        if needing and not eval_every:
            raise ConfigError(f"the callback(s) {', '.join(needing)} read evaluations, but eval_every is 0 (no "
                              "evaluation during training); set eval_every, e.g. eval_every=10000")

    def _call(self, hook: str, *args: Any) -> bool:
        stop = False
        for callback in self.items:
            method = getattr(callback, hook, None)
            if method is not None and method(*args):
                stop = True
        return stop

    def evaluation(self, agent: Any, result: Any) -> bool:
        return self._call("on_evaluation", agent, result)

    def iteration(self, agent: Any, row: dict[str, Any]) -> bool:
        return self._call("on_iteration", agent, row)

    def checkpoint(self, agent: Any, path: Path) -> None:
        self._call("on_checkpoint", agent, path)

    def state_dict(self) -> dict[str, Any]:
        return {key: c.state_dict() for key, c in zip(self.keys, self.items) if hasattr(c, "state_dict")}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        """Give each callback the state saved under its key; callbacks the checkpoint did not have start fresh."""
        for key, callback in zip(self.keys, self.items):
            if key in states and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(states[key])
