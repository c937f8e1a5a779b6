"""Callbacks (thorndike/callbacks.py): the built-ins' rules on hand-made evaluations, and their calls and state in
real runs (the contract suite checks every registered algorithm; here q_learning and PPO stop early for sure)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import thorndike as th
from thorndike.callbacks import Callback, Callbacks, SaveBest, StopOnNoImprovement, StopOnReturn
from thorndike.config import ConfigError
from thorndike.core.checkpoint import load_checkpoint
from thorndike.core.logger import read_progress

QUIET = dict(progress=False, tensorboard=False, pictures=False)


def result(mean: float) -> Any:
    return SimpleNamespace(mean=mean)


def test_no_improvement_counts_evaluations_that_do_not_beat_the_best_by_min_delta() -> None:
    stop = StopOnNoImprovement(patience=2, min_delta=0.5)
    # best 1 (0), 1.4 is not > 1 + 0.5 (1), 2 is (best 2, 0), 2.5 is not (1), 2.4 is not (2: stop)
    decisions = [stop.on_evaluation(None, result(m)) for m in (1.0, 1.4, 2.0, 2.5, 2.4)]
    assert decisions == [False, False, False, False, True]
    assert stop.state_dict() == {"best": 2.0, "without_improvement": 2}
    again = StopOnNoImprovement(patience=2, min_delta=0.5)
    again.load_state_dict({"best": 2.0, "without_improvement": 1})
    assert again.on_evaluation(None, result(2.4)) is True
    with pytest.raises(ConfigError, match="patience"):
        StopOnNoImprovement(patience=0)


def test_stop_on_return_reads_the_evaluation_or_the_training_return() -> None:
    on_eval, on_train = StopOnReturn(10.0), StopOnReturn(10.0, source="train")
    assert [on_eval.on_evaluation(None, result(m)) for m in (9.9, 10.0)] == [False, True]
    assert on_eval.on_iteration(None, {"return_mean": 50.0}) is False
    assert on_train.on_evaluation(None, result(50.0)) is False
    rows = [{"return_mean": math.nan}, {}, {"return_mean": 9.0}, {"return_mean": 11.0}]
    assert [on_train.on_iteration(None, row) for row in rows] == [False, False, False, True]
    assert on_eval.needs_evaluations and not on_train.needs_evaluations


def test_callbacks_of_one_class_get_distinct_keys_and_every_hook_runs_even_after_a_stop() -> None:
    first, second = StopOnNoImprovement(1), StopOnNoImprovement(5)
    callbacks = Callbacks([first, second, Callback()])
    assert callbacks.keys == ["StopOnNoImprovement", "StopOnNoImprovement#2", "Callback"]
    assert callbacks.evaluation(None, result(1.0)) is False
    assert callbacks.evaluation(None, result(0.0)) is True  # the first asks to stop; the second still counted
    assert second.without_improvement == 1
    fresh = Callbacks([StopOnNoImprovement(1), StopOnNoImprovement(5)])
    fresh.load_state_dict(callbacks.state_dict())
    assert [c.state_dict() for c in fresh.items] == [first.state_dict(), second.state_dict()]


def test_a_callback_reading_evaluations_needs_eval_every(tmp_path: Path) -> None:
    agent = th.make("q_learning", env="FrozenLake-v1", run_root=str(tmp_path), **QUIET)
    with pytest.raises(ConfigError, match="StopOnNoImprovement read evaluations, but eval_every is 0"):
        agent.learn(100, callbacks=[StopOnNoImprovement(2)])
    assert not any(tmp_path.iterdir()), "refused before the run folder is made"
    agent.learn(100, callbacks=[StopOnReturn(1.0, source="train")])  # the training return needs no evaluation


class Interrupt(Callback):
    """Stops the process's learn (like Ctrl-C) right after the ``after``-th periodic checkpoint is written."""

    def __init__(self, after: int) -> None:
        self.after, self.seen = after, 0

    def on_checkpoint(self, agent: Any, path: Path) -> None:
        self.seen += 1
        if self.seen == self.after:
            raise KeyboardInterrupt


def without_time(run_dir: Path) -> dict[str, list[float]]:
    return {k: v for k, v in read_progress(run_dir).items() if not k.startswith("time/")}


def same_columns(a: dict[str, list[float]], b: dict[str, list[float]]) -> bool:
    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k]) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a[k], b[k]))
        for k in a)


@pytest.mark.parametrize("algo, env, fields, steps, every", [
    ("q_learning", "FrozenLake-v1", {"n_runs": 2, "epsilon": 0.5, "log_every": 50}, 2000, 100),
    ("ppo", "CartPole-v1", {"n_envs": 4, "n_steps": 16, "minibatch_size": 64, "n_epochs": 1, "hidden_sizes": (8,),
                            "lr": 1e-5}, 2048, 128),
])
def test_a_stopped_and_resumed_run_stops_at_the_same_step_as_an_uninterrupted_one(
        tmp_path: Path, algo: str, env: str, fields: dict[str, Any], steps: int, every: int) -> None:
    options = dict(eval_every=every, eval_episodes=3, checkpoint_every=every, keep_checkpoints=0,
                   run_root=str(tmp_path / "reference"), **QUIET)

    def callbacks() -> list[Any]:
        return [StopOnNoImprovement(patience=4), SaveBest()]

    reference = th.make(algo, env=env, seed=3, **fields, **options)
    ref_callbacks = callbacks()
    reference.learn(steps, callbacks=ref_callbacks)
    stopped_at = reference.global_step
    assert stopped_at < steps, "the patience must run out before the budget for this test to mean something"

    options["run_root"] = str(tmp_path / "interrupted")
    interrupted = th.make(algo, env=env, seed=3, **fields, **options)
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(steps, callbacks=[*callbacks(), Interrupt(after=3)])
    run_dir = interrupted.run_dir
    saved = load_checkpoint(interrupted.last_checkpoint)["callbacks"]
    # The counter is under way at the checkpoint: a resume that forgot it would stop later than the reference.
    assert 1 <= saved["StopOnNoImprovement"]["without_improvement"] < 4

    resumed = th.resume(run_dir, progress=False)
    assert 0 < resumed.global_step < stopped_at
    resumed_callbacks = callbacks()
    resumed.learn(resumed.total_steps, callbacks=resumed_callbacks)
    assert resumed.global_step == stopped_at
    assert [c.state_dict() for c in resumed_callbacks] == [c.state_dict() for c in ref_callbacks]
    assert same_columns(without_time(run_dir), without_time(reference.run_dir))
    best = th.load(run_dir / "best.pt")
    assert best.global_step == ref_callbacks[1].best_step == th.load(reference.run_dir / "best.pt").global_step
    assert best.evaluate(episodes=3).mean == ref_callbacks[1].best


def test_save_best_keeps_the_best_evaluation(tmp_path: Path) -> None:
    agent = th.make("q_learning", env="FrozenLake-v1", env_kwargs={"is_slippery": False}, epsilon=0.5, alpha=0.5,
                    n_runs=1, log_every=100, eval_every=100, eval_episodes=1, run_root=str(tmp_path), **QUIET)
    means: list[tuple[int, float]] = []

    class Record(Callback):
        def on_evaluation(self, agent: Any, result: Any) -> None:
            means.append((agent.global_step, result.mean))

    save_best = SaveBest()
    agent.learn(3000, callbacks=[Record(), save_best])
    first_best = next(step for step, mean in means if mean == max(m for _, m in means))
    assert save_best.best == max(m for _, m in means) == 1.0  # the deterministic lake is solved
    assert save_best.best_step == first_best  # later ties do not overwrite it
    best = th.load(agent.run_dir / "best.pt")
    assert best.global_step == first_best
    obs = torch.arange(16)
    assert torch.equal(best.act(obs), th.load(agent.run_dir / "best.pt").act(obs))
    assert best.evaluate(episodes=1).mean == 1.0
