"""DQN learning across seeds on CartPole-v1 (issue #14): does it solve (greedy evaluation >= 475) within 50k steps?

    PYTHONPATH=$PWD .venv/bin/python benchmarks/dqn_learning.py [--seeds 0-9] [--steps 50000] [--eval-every 5000]
        [--eval-episodes 20] [--set field=value ...] [--workers 2] [--tag NAME] [--plot-only]

Each seed is ``th.make("dqn", env="CartPole-v1", seed=s)``, so it starts from the tuned values in
``thorndike/configs/dqn.yaml``; ``--set`` overrides single fields (for tuning). The run's own evaluation does the
measuring: every ``--eval-every`` env steps (at the first log row at or past each multiple) the greedy policy plays
``--eval-episodes`` episodes on fresh env copies, and the mean lands in ``progress.csv``. The issue's criterion: a
seed is *solved* at the first evaluation whose mean is >= 475; the goal is 9 of 10 seeds within 50k env steps.
Training is not stopped at the solve, so "final" (the evaluation at the budget) shows whether the policy stays solved.

Prints one line per seed and a table (steps to the first solve, final and best evaluation, wall time), and writes
``benchmarks/results/dqn_learning[_<tag>].{json,md,png}``: the figure is the mean evaluation return over seeds
against env steps with the 25-75% band over seeds and the threshold dashed, and beside it the fraction of seeds
solved so far.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from thorndike.experiment import parse_seeds

RESULTS = Path(__file__).parent / "results"
ENV = "CartPole-v1"
THRESHOLD = 475.0


def parse_pairs(items: list[str]) -> dict[str, Any]:
    """``field=value`` pairs, the value read as YAML (so ``0.5`` is a float, ``true`` a bool, ``[64, 64]`` a list)."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected field=value, got {item!r}")
        pairs[key] = yaml.safe_load(value)
    return pairs


def run_seed(seed: int, steps: int, eval_every: int, eval_episodes: int, fields: dict[str, Any],
             run_root: str) -> dict[str, Any]:
    """Learn one seed for ``steps`` env steps with a greedy evaluation every ``eval_every``; its curve and summary."""
    import torch

    import thorndike as th
    from thorndike.core.logger import read_progress

    torch.set_num_threads(1)
    agent = th.make("dqn", env=ENV, seed=seed, run_root=run_root, progress=False, tensorboard=False, pictures=False,
                    checkpoint_every=10**15, eval_every=eval_every, eval_episodes=eval_episodes, **fields)
    began = time.perf_counter()
    agent.learn(steps)
    wall = time.perf_counter() - began
    progress = read_progress(agent.run_dir)
    curve = {"steps": [], "returns": []}
    for step, mean in zip(progress["step"], progress["eval_mean"], strict=True):
        if not math.isnan(mean):
            curve["steps"].append(int(step))
            curve["returns"].append(mean)
    solved = next((s for s, r in zip(curve["steps"], curve["returns"], strict=True) if r >= THRESHOLD), None)
    return {"seed": seed, "solved_steps": solved, "final_return": curve["returns"][-1],
            "best_return": max(curve["returns"]), "steps": agent.global_step, "wall_s": round(wall, 1),
            "curve": curve, "config": dataclasses.asdict(agent.config)}


def fmt(value: float | int | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def table(runs: list[dict[str, Any]], steps: int) -> str:
    """A Markdown table of the seeds and a summary line."""
    lines = ["| seed | steps to first solve | final return | best return | wall s |", "|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['seed']} | {fmt(r['solved_steps'])} | {fmt(r['final_return'])} | "
                     f"{fmt(r['best_return'])} | {fmt(r['wall_s'])} |")
    solved = [r["solved_steps"] for r in runs if r["solved_steps"] is not None]
    final_ok = sum(r["final_return"] >= THRESHOLD for r in runs)
    median = statistics.median(solved) if solved else None
    lines.append(f"\nsolved (an evaluation >= {THRESHOLD:g}) within {steps:,} steps: {len(solved)}/{len(runs)} "
                 f"seeds (median {fmt(median, 0)} steps to the first solve); {final_ok}/{len(runs)} at or above "
                 f"{THRESHOLD:g} at the budget; mean final {statistics.mean(r['final_return'] for r in runs):.1f}")
    return "\n".join(lines)


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    runs = payload["runs"]
    fig, (ax, ax_solved) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2, 1]})
    n = min(len(r["curve"]["returns"]) for r in runs)
    x = torch.tensor(runs[0]["curve"]["steps"][:n], dtype=torch.float64)
    values = torch.tensor([r["curve"]["returns"][:n] for r in runs], dtype=torch.float64)  # [seeds, points]
    q25, q75 = torch.quantile(values, 0.25, dim=0), torch.quantile(values, 0.75, dim=0)
    for r in runs:
        ax.plot(r["curve"]["steps"], r["curve"]["returns"], color="tab:blue", lw=0.6, alpha=0.25)
    ax.plot(x, values.mean(0), color="tab:blue", lw=2, marker="o", ms=3, label=f"mean of {len(runs)} seeds")
    ax.fill_between(x, q25, q75, color="tab:blue", alpha=0.2, lw=0, label="25-75% of seeds")
    ax.axhline(THRESHOLD, color="black", ls="--", lw=1, label=f"solved ({THRESHOLD:g})")
    ax.set(xlabel="env steps", ylabel=f"greedy evaluation return ({payload['eval_episodes']} episodes)",
           title=f"DQN on {ENV}: mean over seeds, 25-75% band, thin lines: seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    solved = sorted(r["solved_steps"] for r in runs if r["solved_steps"] is not None)
    xs = [0.0] + [float(s) for s in solved] + [float(payload["steps"])]
    fraction = [0.0] + [(i + 1) / len(runs) for i in range(len(solved))] + [len(solved) / len(runs)]
    ax_solved.step(xs, fraction, where="post", color="tab:blue", lw=2)
    ax_solved.axhline(0.9, color="black", ls=":", lw=1, label="goal: 9 of 10")
    ax_solved.set(xlabel="env steps", ylabel="fraction of seeds solved", ylim=(-0.02, 1.02),
                  title="seeds solved so far (first evaluation >= 475)")
    ax_solved.grid(alpha=0.3)
    ax_solved.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--set", nargs="*", default=[], dest="fields", help="field=value config overrides")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the result files")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    args = parser.parse_args()
    out = Path(args.out)
    stem = "dqn_learning" + (f"_{args.tag}" if args.tag else "")
    if args.plot_only:
        plot(json.loads((out / f"{stem}.json").read_text()), out / f"{stem}.png")
        return
    fields = parse_pairs(args.fields)
    seeds = parse_seeds([args.seeds])
    run_root = tempfile.mkdtemp(prefix="thorndike-dqn-learning-")
    began = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_seed, s, args.steps, args.eval_every, args.eval_episodes, fields, run_root)
                   for s in seeds]
        runs = []
        for future in futures:
            r = future.result()
            runs.append(r)
            print(f"seed {r['seed']}: first solve at {fmt(r['solved_steps'])} steps; final {r['final_return']:.1f}, "
                  f"best {r['best_return']:.1f}; {r['wall_s']} s", flush=True)
    payload = {"command": " ".join(["python", *sys.argv]), "env": ENV, "threshold": THRESHOLD,
               "steps": args.steps, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
               "overrides": fields, "wall_s": round(time.perf_counter() - began, 1), "runs": runs}
    text = table(runs, args.steps)
    print(text, flush=True)
    config = runs[0]["config"]
    report = [f"# DQN on {ENV}\n", f"`{payload['command']}`\n",
              f"Solved: the greedy evaluation mean of {args.eval_episodes} episodes >= {THRESHOLD:g}, evaluated "
              f"every {args.eval_every:,} env steps; budget {args.steps:,} env steps; training goes on after a solve. "
              f"Wall s: learning with its evaluations ({args.workers} seeds in parallel on 2 shared CPU cores, "
              f"torch.set_num_threads(1)).\n", f"Config: `{json.dumps(config)}`\n", text + "\n"]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=1))
    (out / f"{stem}.md").write_text("\n".join(report))
    plot(payload, out / f"{stem}.png")
    print(f"wrote {out / stem}.json, .md, .png")


if __name__ == "__main__":
    main()
