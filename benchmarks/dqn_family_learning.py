"""Does the DQN family (dqn, c51, qr_dqn, rainbow) solve CartPole-v1 or LunarLander-v3 with its tuned config? Per
seed, the env steps until the greedy mean return of the evaluation episodes first reaches the threshold.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/dqn_family_learning.py [--algos c51,qr_dqn,rainbow] [--seeds 0-2]
        [--env CartPole-v1] [--threshold 475] [--budget 50000] [--eval-every 5000] [--eval-episodes 20]
        [--set algo.field=value ...] [--tag NAME]

Each run is ``th.make(algo, env=env, seed=s)`` (the tuned values in ``thorndike/configs/<algo>.yaml``, ``--set``
overriding single fields); every ``--eval-every`` env steps its greedy policy plays ``--eval-episodes`` episodes on
fresh env copies (seed 10_000, the same starts each time; evaluation changes nothing training does next). A seed is
solved at the first evaluation with mean >= the threshold (475 on CartPole-v1, 200 on LunarLander-v3 unless
``--threshold`` says otherwise); the run stops there or at the budget. Prints one line per run and, after each run
(so a killed benchmark keeps what finished), rewrites ``benchmarks/results/dqn_family_learning_<env>[_<tag>]``
``.{md,json,png}`` (the figure: each run's evaluation means against env steps, with the threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

import thorndike as th
from thorndike.experiment import parse_seeds

RESULTS = Path(__file__).parent / "results"
# The score each env counts as solved (Gymnasium's reward_threshold).
THRESHOLDS = {"CartPole-v1": 475.0, "LunarLander-v3": 200.0}


def run_one(algo: str, env: str, seed: int, budget: int, eval_every: int, eval_episodes: int, threshold: float,
            fields: dict[str, Any]) -> dict[str, Any]:
    """Train one (algo, seed) until its first evaluation at or above the threshold or the budget."""
    with tempfile.TemporaryDirectory() as root:
        agent = th.make(algo, env=env, seed=seed, run_root=root, progress=False, tensorboard=False, pictures=False,
                        **fields)
        start, solved_at, curve = time.perf_counter(), None, []
        for steps in range(eval_every, budget + 1, eval_every):
            agent.learn(steps)
            mean = agent.evaluate(eval_episodes, deterministic=True, seed=10_000).mean
            curve.append((steps, round(mean, 1)))
            if mean >= threshold:
                solved_at = steps
                break
        wall = time.perf_counter() - start
    return {"algo": algo, "seed": seed, "solved_at": solved_at, "evaluations": curve, "wall_s": round(wall, 1)}


def plot(rows: list[dict[str, Any]], env: str, threshold: float, path: Path) -> None:
    """Each run's evaluation means against env steps (one colour per algo, one line style per seed)."""
    from thorndike.plot import _save, plt

    algos = list(dict.fromkeys(r["algo"] for r in rows))
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 3))]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for row in rows:
        if not row["evaluations"]:
            continue
        steps, means = zip(*row["evaluations"])
        ax.plot(steps, means, marker="o", markersize=2.5, lw=1.2, color=f"C{algos.index(row['algo'])}",
                ls=styles[seeds.index(row["seed"]) % len(styles)], label=f"{row['algo']} seed {row['seed']}")
    ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return (greedy policy, mean)")
    ax.set_title(f"DQN family on {env}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    _save(fig, path)


def write(rows: list[dict[str, Any]], name: str, command: str, env: str, threshold: float, budget: int,
          overrides: dict[str, dict]) -> None:
    """The results so far: JSON, a Markdown table and the figure."""
    RESULTS.mkdir(exist_ok=True)
    solved = sum(r["solved_at"] is not None for r in rows)
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"env": env, "threshold": threshold, "budget": budget, "overrides": overrides, "command": command,
         "solved": solved, "runs": len(rows), "rows": rows}, indent=1))
    lines = [f"# DQN family on {env}: threshold {threshold:g}, budget {budget:,} env steps", "", f"`{command}`", "",
             "| algo | seed | solved at (env steps) | evaluation means (env steps: mean) | wall s |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['algo']} | {r['seed']} | {r['solved_at'] if r['solved_at'] is not None else 'not solved'} | "
              + ", ".join(f"{s // 1000}k: {m:.0f}" for s, m in r["evaluations"]) + f" | {r['wall_s']:.0f} |"
              for r in rows]
    lines += [""] + [f"- {algo}: {sum(r['solved_at'] is not None for r in rows if r['algo'] == algo)}/"
                     f"{sum(r['algo'] == algo for r in rows)} seeds solved"
                     for algo in dict.fromkeys(r["algo"] for r in rows)]
    lines += ["", f"Curves: `{name}.png` (each run's evaluation means against env steps, with the threshold)."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    plot(rows, env, threshold, RESULTS / f"{name}.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="c51,qr_dqn,rainbow")
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--threshold", type=float, help="default: 475 on CartPole-v1, 200 on LunarLander-v3")
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--set", nargs="*", default=[], help="algo.field=value (YAML value)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    threshold = THRESHOLDS.get(args.env) if args.threshold is None else args.threshold
    if threshold is None:
        parser.error(f"no default threshold for {args.env}: pass --threshold")
    torch.set_num_threads(1)
    overrides: dict[str, dict] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        algo, _, field = key.partition(".")
        overrides.setdefault(algo, {})[field] = yaml.safe_load(value)
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/dqn_family_learning.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    name = f"dqn_family_learning_{args.env}{'_' + args.tag if args.tag else ''}"
    rows: list[dict[str, Any]] = []
    for algo in args.algos.split(","):
        for seed in parse_seeds([args.seeds]):
            row = run_one(algo, args.env, seed, args.budget, args.eval_every, args.eval_episodes, threshold,
                          overrides.get(algo, {}))
            rows.append(row)
            print(f"{algo} seed {seed}: solved at {row['solved_at']} env steps; eval means "
                  f"{[m for _, m in row['evaluations']]}; {row['wall_s']:.0f} s", flush=True)
            write(rows, name, command, args.env, threshold, args.budget, overrides)


if __name__ == "__main__":
    main()
