"""PPO's two objectives on CartPole-v1 over seeds: the clip (L^CLIP) against the adaptive KL penalty
(``objective="kl_penalty"``: r A - beta KL(pi_old || pi), beta halved or doubled towards d_targ = 0.01), both with
the fast config (``thorndike/configs/ppo_cartpole_fast.yaml``) on the native env (``backend="torch"``).

A run stops at the first greedy evaluation (16 episodes, every 8192 steps) whose mean is >= 475, or at 100k steps;
then its greedy policy plays 20 fresh episodes (seed 1000 + seed), the number reported as ``final``.

    .venv/bin/python benchmarks/ppo_kl_penalty.py [--seeds 0 1 ... 9] [--workers 1]

Prints one JSON line per run, writes benchmarks/results/ppo_kl_penalty.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BUDGET, SOLVED, EVERY = 100_000, 475.0, 8192
OBJECTIVES = ("clip", "kl_penalty")


def run(objective: str, seed: int, run_root: str) -> dict:
    import csv

    import torch

    import thorndike as th

    torch.set_num_threads(1)
    start = time.perf_counter()
    agent = th.make("ppo", env="CartPole-v1", seed=seed, config="ppo_cartpole_fast", objective=objective,
                    backend="torch", eval_every=EVERY, eval_episodes=16, stop_return=SOLVED, progress=False,
                    tensorboard=False, pictures=False, run_root=run_root)
    agent.learn(BUDGET)
    wall = time.perf_counter() - start
    final = agent.evaluate(episodes=20, seed=1000 + seed).mean
    with open(agent.run_dir / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    betas = sorted({float(r["kl_beta"]) for r in rows}) if objective == "kl_penalty" else []
    kls = [float(r["kl"]) for r in rows] if objective == "kl_penalty" else []
    return dict(objective=objective, seed=seed, steps=agent.global_step, wall_s=round(wall, 1),
                final=round(final, 1), reached=final >= SOLVED, beta_range=[min(betas), max(betas)] if betas else None,
                kl_median=round(sorted(kls)[len(kls) // 2], 5) if kls else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    run_root = tempfile.mkdtemp(prefix="thorndike-ppo-kl-")
    jobs = [(objective, seed) for objective in OBJECTIVES for seed in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        results = []
        for future in [pool.submit(run, objective, seed, run_root) for objective, seed in jobs]:
            results.append(future.result())
            print(json.dumps(results[-1]), flush=True)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ppo_kl_penalty.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# PPO on CartPole-v1: clip against the adaptive KL penalty", "",
             f"Command: `python benchmarks/ppo_kl_penalty.py --seeds {' '.join(map(str, args.seeds))}`. Fast config "
             "(`ppo_cartpole_fast.yaml`) on the native env; a run stops at the first 16-episode greedy evaluation "
             f">= {SOLVED:.0f} (every {EVERY} steps) or at {BUDGET:,} steps; `final` is the greedy mean of 20 fresh "
             "episodes (seed 1000 + seed). kl_penalty: d_targ = 0.01, beta starts at 1; `beta` is the range it took, "
             "`KL` the median per-iteration mean KL(pi_old || pi).", "",
             "| objective | seed | steps | final (20 greedy episodes) | >= 475 | wall s | beta | KL |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        beta = "" if r["beta_range"] is None else f"{r['beta_range'][0]:g} - {r['beta_range'][1]:g}"
        kl = "" if r["kl_median"] is None else f"{r['kl_median']:.4f}"
        lines.append(f"| {r['objective']} | {r['seed']} | {r['steps']:,} | {r['final']:.1f} | "
                     f"{'yes' if r['reached'] else 'no'} | {r['wall_s']} | {beta} | {kl} |")
    lines.append("")
    for objective in OBJECTIVES:
        mine = [r for r in results if r["objective"] == objective]
        steps = sorted(r["steps"] for r in mine)
        lines.append(f"- {objective}: {sum(r['reached'] for r in mine)}/{len(mine)} seeds reach >= 475 "
                     f"(median {steps[len(steps) // 2]:,} steps, total wall {sum(r['wall_s'] for r in mine):.0f} s)")
    (RESULTS / "ppo_kl_penalty.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
