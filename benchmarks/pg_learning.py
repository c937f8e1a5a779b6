"""Do A2C, VPG and TRPO learn CartPole-v1 / Pendulum-v1 (issue #16)? Greedy return against env steps, per seed.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/pg_learning.py trpo --env CartPole-v1 --steps 100000 --seeds 0 1 2
    PYTHONPATH=$PWD .venv/bin/python benchmarks/pg_learning.py trpo vpg a2c --env Pendulum-v1 --backend torch \\
        --steps trpo=300000 vpg=300000 a2c=1000000 --seeds 0-9 --jobs 2 --out pg_learning

Each algorithm is made with ``th.make(algo, env=ENV, seed=s)``, so it starts from the tuned values for that env in
``thorndike/configs/<algo>.yaml``; ``--set field=value`` overrides a field for every algorithm, ``--set
algo.field=value`` for one (for tuning). One ``learn(steps)`` call per seed (so a learning-rate schedule spans the
whole budget); the run's own evaluation (``eval_every = --every``, ``eval_episodes = 20``) plays the greedy policy on
fresh env copies at the first iteration boundary at or past each multiple of ``--every``, and once more at the end.
A seed is *solved* at the first evaluation whose mean reaches the target (CartPole-v1 475, Pendulum-v1 -300).

Prints one line per evaluation and a RESULT line per seed. With ``--out NAME`` it also writes
``benchmarks/results/NAME.{json,md,png}``: per seed the first step at which the greedy 20-episode mean reached the
target, the final mean and the wall seconds (training and evaluations, one torch thread), the solved counts, and the
learning curves (mean over seeds with the 25-75% band, thin lines per seed; the target dashed).
``--jobs N`` runs N seeds at once in worker processes (each one torch thread).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
import yaml

import thorndike as th
from thorndike.callbacks import Callback
from thorndike.experiment import parse_seeds

RESULTS = Path(__file__).parent / "results"
TARGETS = {"CartPole-v1": 475.0, "Pendulum-v1": -300.0}
COLORS = {"trpo": "tab:blue", "vpg": "tab:orange", "a2c": "tab:green", "ppo": "tab:red", "reinforce": "tab:purple"}


def parse_value(text: str) -> object:
    """A field's value read as YAML: ``0.5`` a float, ``true`` a bool, ``[64, 64]`` a list, else the string."""
    return yaml.safe_load(text)


def parse_steps(items: list[str], algos: list[str]) -> dict[str, int]:
    """``300000`` for every algorithm, or ``trpo=300000 a2c=1000000`` (an algorithm not named: the plain number)."""
    steps: dict[str, int] = {}
    default = None
    for item in items:
        key, sep, value = item.partition("=")
        if sep:
            steps[key] = int(float(value))
        else:
            default = int(float(item))
    for algo in algos:
        if algo not in steps:
            if default is None:
                raise SystemExit(f"--steps: no budget for {algo}")
            steps[algo] = default
    return steps


def fields_for(algo: str, items: list[str]) -> dict[str, Any]:
    """The ``--set`` overrides that apply to ``algo``: ``field=value`` (all) and ``algo.field=value`` (this one)."""
    fields: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        target, dot, name = key.partition(".")
        if not dot:
            fields[key] = parse_value(value)
        elif target == algo:
            fields[name] = parse_value(value)
    return fields


class Curve(Callback):
    """Records every evaluation's (step, mean) during training."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def on_evaluation(self, agent: Any, result: Any) -> None:
        self.points.append((agent.global_step, float(result.mean)))
        print(f"{agent.name} {agent.env_setup.name} seed {agent.seed} step {agent.global_step} greedy mean "
              f"{result.mean:.1f}", flush=True)


def train(task: dict[str, Any]) -> dict[str, Any]:
    """One seed of one algorithm: learn the budget with evaluations every ``every`` steps; its record."""
    torch.set_num_threads(1)
    algo, env, seed, fields = task["algo"], task["env"], task["seed"], task["fields"]
    target = TARGETS.get(env, float("inf"))
    curve = Curve()
    start = time.time()
    with tempfile.TemporaryDirectory() as root:
        agent = th.make(algo, env=env, seed=seed, run_root=root, progress=False, tensorboard=False, pictures=False,
                        backend=task["backend"], eval_every=task["every"], eval_episodes=20, **fields)
        agent.learn(task["steps"], callbacks=[curve])
        if not curve.points or curve.points[-1][0] != agent.global_step:
            curve.points.append((agent.global_step, float(agent.evaluate(episodes=20).mean)))
        config = {k: v for k, v in vars(agent.config).items()}
    wall = time.time() - start
    solved_at = next((step for step, mean in curve.points if mean >= target), None)
    final = curve.points[-1][1]
    print(f"RESULT {algo} {env} seed {seed} {fields} first >= {target}: {solved_at}, final {final:.1f} "
          f"({wall:.0f} s)", flush=True)
    return {"algo": algo, "env": env, "seed": seed, "steps": task["steps"], "every": task["every"],
            "backend": task["backend"], "overrides": fields, "config": {k: _plain(v) for k, v in config.items()},
            "target": target, "solved_at": solved_at, "final": final, "best": max(m for _, m in curve.points),
            "wall_s": round(wall, 1), "curve": curve.points}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def summary(records: list[dict[str, Any]], algo: str) -> dict[str, Any]:
    rows = [r for r in records if r["algo"] == algo]
    solved = [r["solved_at"] for r in rows if r["solved_at"] is not None]
    return {"seeds": len(rows), "solved": len(solved),
            "median_solved_at": statistics.median(solved) if solved else None,
            "final_at_target": sum(r["final"] >= r["target"] for r in rows),
            "median_final": statistics.median(r["final"] for r in rows), "budget": rows[0]["steps"],
            "wall_s": round(sum(r["wall_s"] for r in rows), 1)}


def write(name: str, command: str, env: str, algos: list[str], records: list[dict[str, Any]], jobs: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    summaries = {algo: summary(records, algo) for algo in algos}
    data = {"command": command, "env": env, "jobs": jobs, "torch_threads": 1, "summary": summaries,
            "records": records}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    target = records[0]["target"]
    lines = [f"# On-policy learning on {env} (benchmarks/pg_learning.py)", "",
             "```", command, "```", "",
             f"Greedy mean return over 20 fresh episodes, evaluated at the first iteration boundary at or past every "
             f"{records[0]['every']:,} env steps and at the end; *solved at* is the first evaluation >= {target:g}. "
             f"Configs: the tuned `thorndike/configs/<algo>.yaml` section for {env} (overrides below). Wall seconds "
             f"include the evaluations; one torch thread per seed, {jobs} seed(s) at a time on a shared 2-core CPU.",
             "", "| algo | budget | solved | median solved at | final >= target | median final | overrides |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for algo, s in summaries.items():
        overrides = next(r["overrides"] for r in records if r["algo"] == algo)
        median = f"{s['median_solved_at']:,.0f}" if s["median_solved_at"] is not None else "-"
        lines.append(f"| {algo} | {s['budget']:,} | {s['solved']}/{s['seeds']} | {median} | "
                     f"{s['final_at_target']}/{s['seeds']} | {s['median_final']:.1f} | {overrides or ''} |")
    lines += ["", "| algo | seed | first step >= target | final | best | wall s |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in sorted(records, key=lambda r: (algos.index(r["algo"]), r["seed"])):
        solved = f"{r['solved_at']:,}" if r["solved_at"] is not None else "not reached"
        lines.append(f"| {r['algo']} | {r['seed']} | {solved} | {r['final']:.1f} | {r['best']:.1f} | "
                     f"{r['wall_s']:.0f} |")
    lines += ["", f"![learning curves]({name}.png)", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))
    plot(RESULTS / f"{name}.png", env, algos, records)


def plot(path: Path, env: str, algos: list[str], records: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for algo in algos:
        rows = [r for r in records if r["algo"] == algo]
        color = COLORS.get(algo)
        for r in rows:
            steps, means = zip(*r["curve"], strict=True)
            ax.plot(steps, means, color=color, alpha=0.2, linewidth=0.7)
        # seeds are evaluated at nearly the same steps: align them on the shortest curve's evaluation index
        n = min(len(r["curve"]) for r in rows)
        grid = np.array([[p[0] for p in r["curve"][:n]] for r in rows]).mean(axis=0)
        values = np.array([[p[1] for p in r["curve"][:n]] for r in rows])
        ax.plot(grid, values.mean(axis=0), color=color, linewidth=2, label=f"{algo} (mean of {len(rows)} seeds)")
        ax.fill_between(grid, np.percentile(values, 25, axis=0), np.percentile(values, 75, axis=0), color=color,
                        alpha=0.2)
    ax.axhline(records[0]["target"], color="black", linestyle="--", linewidth=1, label="target")
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy mean return (20 episodes)")
    ax.set_title(f"{env}: seeds {min(r['seed'] for r in records)}-{max(r['seed'] for r in records)}")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("algos", nargs="+", help="a2c, vpg, trpo (any on-policy algorithm)")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", nargs="+", default=["100000"], help="budget: N, or algo=N per algorithm")
    parser.add_argument("--every", type=int, default=10_000, help="evaluate every this many env steps")
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"], help="0 1 2, or 0-9")
    parser.add_argument("--set", nargs="*", default=[], help="field=value or algo.field=value overrides")
    parser.add_argument("--backend", default="auto", help="auto, torch (native batched env) or gymnasium")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once (worker processes)")
    parser.add_argument("--out", default=None, help="write benchmarks/results/OUT.{json,md,png}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = parse_steps(args.steps, args.algos)
    tasks = [{"algo": algo, "env": args.env, "seed": seed, "steps": steps[algo], "every": args.every,
              "backend": args.backend, "fields": fields_for(algo, args.set)}
             for algo in args.algos for seed in parse_seeds(args.seeds)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            records = list(pool.map(train, tasks))
    else:
        records = [train(task) for task in tasks]
    for algo in args.algos:
        print(f"SUMMARY {algo} {args.env}: {summary(records, algo)}", flush=True)
    if args.out:
        import shlex
        import sys

        command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/pg_learning.py " + shlex.join(sys.argv[1:])
        write(args.out, command, args.env, args.algos, records, args.jobs)


if __name__ == "__main__":
    main()
