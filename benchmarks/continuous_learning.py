"""Learning of the off-policy actor-critics across seeds (issue #15): SAC and TD3 >= -200 on Pendulum-v1 within 20k
env steps, DDPG >= -300 within 30k, discrete SAC solving CartPole-v1.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/continuous_learning.py --algo sac [--env Pendulum-v1] [--seeds 0-9]
        [--steps 20000] [--threshold -200] [--eval-every 2000] [--eval-episodes 10] [--workers 1]
        [--set field=value ...] [--tag NAME]

Each seed is ``th.make(algo, env=env, seed=s, threads=1)``, so it starts from ``thorndike/configs/<algo>.yaml``;
``--set`` overrides fields. The run's own evaluation measures: every ``--eval-every`` env steps the deterministic
policy plays ``--eval-episodes`` episodes on fresh copies and the mean lands in ``progress.csv``. A seed *reaches*
the threshold at its first evaluation whose mean is at or above it. Prints one line per seed and writes
``benchmarks/results/continuous_learning_<algo>[_<tag>].{json,md,png}`` (the figure: each seed's evaluations against
env steps, with the threshold).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from thorndike.experiment import parse_seeds

RESULTS = Path(__file__).parent / "results"
DEFAULTS = {"sac": ("Pendulum-v1", 20_000, -200.0), "td3": ("Pendulum-v1", 20_000, -200.0),
            "ddpg": ("Pendulum-v1", 30_000, -300.0), "sac_discrete": ("CartPole-v1", 50_000, 475.0)}


def run_seed(algo: str, env: str, seed: int, steps: int, eval_every: int, eval_episodes: int,
             fields: dict[str, Any]) -> dict[str, Any]:
    """One seed's run: its evaluations (step, mean) and wall time."""
    import torch

    import thorndike as th

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        agent = th.make(algo, env=env, seed=seed, run_root=root, threads=1, eval_every=eval_every,
                        eval_episodes=eval_episodes, progress=False, tensorboard=False, pictures=False,
                        checkpoint_every=2**62, **fields)
        agent.learn(steps)
        wall = time.perf_counter() - started
        with open(agent.run_dir / "progress.csv", newline="") as f:
            evals = [(int(r["step"]), float(r["eval_mean"])) for r in csv.DictReader(f)
                     if r.get("eval_mean") not in (None, "", "nan")]
    return {"seed": seed, "evaluations": evals, "wall_s": wall}


def plot(rows: list[dict[str, Any]], algo: str, env: str, threshold: float, path: Path) -> None:
    """Each seed's evaluation means against env steps, and the threshold."""
    from thorndike.plot import _save, plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for row in rows:
        steps, means = zip(*row["evaluations"]) if row["evaluations"] else ((), ())
        ax.plot(steps, means, "-o", markersize=2.5, lw=1.2, label=f"seed {row['seed']}")
    ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return (deterministic policy, mean)")
    ax.set_title(f"{algo} on {env}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", required=True, choices=sorted(DEFAULTS))
    parser.add_argument("--env")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    env, steps, threshold = DEFAULTS[args.algo]
    env, steps = args.env or env, args.steps or steps
    threshold = threshold if args.threshold is None else args.threshold
    fields = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    seeds = parse_seeds([args.seeds])
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_seed, args.algo, env, s, steps, args.eval_every, args.eval_episodes, fields)
                   for s in seeds]
        for future in futures:
            row = future.result()
            reached = next((step for step, mean in row["evaluations"] if mean >= threshold), None)
            row |= {"reached_at": reached,
                    "final": row["evaluations"][-1][1] if row["evaluations"] else math.nan,
                    "best": max((m for _, m in row["evaluations"]), default=math.nan)}
            rows.append(row)
            print(f"seed {row['seed']}: reached {threshold:g} at {reached}, final {row['final']:.1f}, best "
                  f"{row['best']:.1f}, {row['wall_s']:.0f} s; evaluations {row['evaluations']}", flush=True)
    n_reached = sum(r["reached_at"] is not None for r in rows)
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/continuous_learning.py " + " ".join(sys.argv[1:])
    summary = {"algo": args.algo, "env": env, "steps": steps, "threshold": threshold, "fields": fields,
               "reached": n_reached, "seeds": len(rows), "command": command, "rows": rows}
    name = f"continuous_learning_{args.algo}{'_' + args.tag if args.tag else ''}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=1))
    lines = [f"# {args.algo} on {env}: {n_reached}/{len(rows)} seeds reach {threshold:g} within {steps:,} steps",
             "", f"`{command}`", "", "| seed | reached at | final | best | wall s |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['seed']} | {r['reached_at']} | {r['final']:.1f} | {r['best']:.1f} | {r['wall_s']:.0f} |"
              for r in rows]
    lines += ["", f"Curves: `{name}.png` (each seed's evaluations against env steps)."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    plot(rows, args.algo, env, threshold, RESULTS / f"{name}.png")
    print(f"{n_reached}/{len(rows)} seeds reach {threshold:g}")


if __name__ == "__main__":
    main()
