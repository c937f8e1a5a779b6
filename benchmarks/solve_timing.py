"""What the time-to-solve benchmarks share: one run of a thorndike agent or of an SB3 model until its first
evaluation at or above the target, recorded the same way, and the small helpers of their summaries.

Used by ``ppo_time_to_solve.py`` and ``pg_time_to_solve.py`` (this folder is on their ``sys.path``).
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from ppo_cartpole_vs_sb3 import FINAL_EVAL_SEED_OFFSET, EvalAndStop, learn_timing_evaluation
from stable_baselines3.common.evaluation import evaluate_policy

from thorndike.core.logger import read_progress

__all__ = ["fmt", "median_or_none", "per_seed_table", "plot_seeds", "record", "sb3_time_to_solve",
           "thorndike_time_to_solve"]


def record(contender: str, seed: int, solved_at: int | None, time_to_solve_s: float, steps_run: int,
           final_eval_mean: float, eval_curve: list[tuple[int, float]], eval_episodes: int, **extra: Any
           ) -> dict[str, Any]:
    """One run's JSON row."""
    return {
        "contender": contender,
        "seed": seed,
        "solved": solved_at is not None,
        "solved_at_step": solved_at,
        "time_to_solve_s": round(time_to_solve_s, 3),
        "steps_run": steps_run,
        "final_eval_mean": round(final_eval_mean, 2),
        "eval_episodes": eval_episodes,
        **extra,
        "eval_curve": [[s, round(m, 1)] for s, m in eval_curve],
    }


def thorndike_time_to_solve(contender: str, agent: Any, seed: int, steps: int, target: float, eval_episodes: int,
                            final_episodes: int, setup_s: float) -> dict[str, Any]:
    """``agent.learn(steps)`` for an agent built with ``eval_every``, ``eval_episodes`` and ``stop_return=target``.

    Time to solve is the session's own clock, the last ``time/elapsed_s`` of ``progress.csv``: with ``stop_return``
    the session ends right after the solving evaluation, so its last row is that evaluation's (``learn_call_s``
    also counts writing final.pt and curve.png after the stop). The final evaluation (untimed) plays
    ``final_episodes`` deterministic episodes on seeds no training or periodic evaluation used.
    """
    eval_s, learn_call_s = learn_timing_evaluation(agent, steps)
    progress = read_progress(agent.run_dir)
    curve = [(int(s), m) for s, m in zip(progress["step"], progress["eval_mean"], strict=True) if not math.isnan(m)]
    solved_at = next((s for s, m in curve if m >= target), None)
    final = agent.evaluate(episodes=final_episodes, seed=seed + FINAL_EVAL_SEED_OFFSET)
    return record(contender, seed, solved_at, progress["time/elapsed_s"][-1], int(progress["step"][-1]), final.mean,
                  curve, eval_episodes, eval_s=round(eval_s, 3), setup_s=round(setup_s, 3),
                  learn_call_s=round(learn_call_s, 3))


def sb3_time_to_solve(contender: str, model: Any, eval_env: Any, final_env: Any, seed: int, steps: int,
                      eval_every: int, target: float, eval_episodes: int, final_episodes: int, setup_s: float,
                      before_final: Any = None) -> dict[str, Any]:
    """``model.learn(steps)`` with :class:`EvalAndStop` (``eval_episodes`` deterministic episodes on ``eval_env``
    every ``eval_every`` steps, after the update that crosses the mark; training stops at the first mean >=
    ``target``); time from SB3's training start. Then ``final_episodes`` on ``final_env`` (untimed), after
    ``before_final()`` if given (e.g. copying normalisation statistics). Closes the model's env and both others."""
    callback = EvalAndStop(eval_env, eval_every, eval_episodes, target)
    start = time.perf_counter()
    model.learn(steps, callback=callback)
    learn_call_s = time.perf_counter() - start
    if before_final is not None:
        before_final()
    final_mean, _ = evaluate_policy(model, final_env, n_eval_episodes=final_episodes, deterministic=True)
    for env in (model.get_env(), eval_env, final_env):
        env.close()
    return record(contender, seed, callback.solved_at, callback.stop_time, callback.stop_step, float(final_mean),
                  callback.eval_means, eval_episodes, eval_s=round(callback.eval_time, 3), setup_s=round(setup_s, 3),
                  learn_call_s=round(learn_call_s, 3))


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def per_seed_table(names: list[str], labels: dict[str, str], results: list[dict[str, Any]], seeds: list[int],
                   command: str, notes: list[str]) -> list[str]:
    """The summaries' last lines: time to solve per contender and seed (empty where a run is missing), the command
    and the notes."""
    lines = ["", "Per seed, time to solve in s (step of the solving evaluation; — = not solved within the budget):",
             "", "| contender | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "| --- | " + " | ".join("---:" for _ in seeds) + " |"]
    for name in names:
        cells = []
        for seed in seeds:
            run = next((r for r in results if r["contender"] == name and r["seed"] == seed), None)
            step = "" if run is None else f"{run['solved_at_step']:,}" if run["solved"] else "—"
            cells.append("" if run is None else f"{run['time_to_solve_s']:.2f} ({step})")
        lines.append(f"| {labels[name]} | " + " | ".join(cells) + " |")
    return lines + ["", "Command:", "", f"    {command}", "", "Notes:", "", *[f"- {note}" for note in notes], ""]


def plot_seeds(ax: Any, x: float, median: float, runs: list[dict[str, Any]], label: str, spread: float = 0.08,
               markersize: float = 5, fontsize: float = 9) -> None:
    """One dot per run beside the bar at ``x`` (black: solved; open red: not solved, at its full time) and the
    median with ``label`` above the highest of them."""
    for i, run in enumerate(runs):
        dx = (i - (len(runs) - 1) / 2) * spread
        ax.plot(x + dx, run["time_to_solve_s"], "o", color="black" if run["solved"] else "red",
                markerfacecolor="black" if run["solved"] else "none", markersize=markersize, zorder=3)
    top = max([median] + [r["time_to_solve_s"] for r in runs])
    ax.annotate(f"{median:.2f} s\n{label}", (x, top), xytext=(0, 6), textcoords="offset points", ha="center",
                va="bottom", fontsize=fontsize)
